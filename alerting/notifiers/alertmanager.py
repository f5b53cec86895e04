"""Forward alerts to a real Alertmanager (``POST /api/v2/alerts``) for teams that already run one:
its own routing, silences and receivers take over. Firing alerts carry no ``endsAt`` (Alertmanager
applies its resolve_timeout, and we re-post at every ``repeat_interval``); resolved ones carry their
resolve time, which closes them in Alertmanager."""

from __future__ import annotations

import orjson
from pydantic import Field

from logtide.config import Model

from logtide.alerting.notifiers.base import HttpIntegration
from logtide.alerting.state import RESOLVED, rfc3339


class AlertmanagerConfig(Model):
    url: str  # e.g. http://alertmanager:9093
    send_resolved: bool = True
    timeout_seconds: float = Field(10.0, gt=0)


class Alertmanager(HttpIntegration):
    kind = "alertmanager"


    def alerts(self, notification) -> list[dict]:
        out = []
        for a in notification.alerts:
            item = {"labels": a.labels, "annotations": a.annotations, "startsAt": rfc3339(a.fired_at or a.active_at),
                    "generatorURL": a.api(self.external_url)["generatorURL"]}
            if a.state == RESOLVED:
                item["endsAt"] = rfc3339(a.resolved_at)
            out.append(item)
        return out

    def send(self, notification) -> None:
        url = self.config.url.rstrip("/") + "/api/v2/alerts"
        self.post(url, orjson.dumps(self.alerts(notification)), {"Content-Type": "application/json"})

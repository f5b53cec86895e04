"""Forward alerts to a real Alertmanager (``POST /api/v2/alerts``) for teams that already run one:
its own routing, silences and receivers take over.

As Prometheus does it: firing alerts are re-sent every ``resend_interval_seconds`` (at group_interval
flushes, so in effect every max(resend, group_interval)) with ``endsAt`` = now + 4 × that interval,
so Alertmanager keeps them active however short its ``resolve_timeout``, and lets them expire on
its own if logtide dies; resolved alerts carry their resolve time as ``endsAt``, which closes them."""

from __future__ import annotations

import time

import orjson
from pydantic import Field

from logtide.config import Model

from logtide.timeutil import NS
from logtide.alerting.notifiers.base import HttpIntegration
from logtide.alerting.state import RESOLVED, rfc3339

#: firing alerts stay valid in Alertmanager for this many resend intervals (Prometheus uses 4)
VALID_FOR_RESENDS = 4


class AlertmanagerConfig(Model):
    url: str  # e.g. http://alertmanager:9093
    send_resolved: bool = True
    timeout_seconds: float = Field(10.0, gt=0)
    resend_interval_seconds: float = Field(
        60.0, gt=0, description="re-send firing alerts this often (Prometheus' --rules.alert.resend-delay)"
    )


class Alertmanager(HttpIntegration):
    kind = "alertmanager"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.resend_ns = int(self.config.resend_interval_seconds * NS)

    def alerts(self, notification, wall_ns: int | None = None) -> list[dict]:
        wall = wall_ns if wall_ns is not None else time.time_ns()
        valid_until = wall + VALID_FOR_RESENDS * max(self.resend_ns, notification.group_interval_ns)
        out = []
        for a in notification.alerts:
            item = {
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": rfc3339(a.fired_at or a.active_at),
                "generatorURL": a.api(self.external_url)["generatorURL"],
            }
            item["endsAt"] = rfc3339(a.resolved_at if a.state == RESOLVED else valid_until)
            out.append(item)
        return out

    def send(self, notification) -> None:
        url = self.config.url.rstrip("/") + "/api/v2/alerts"
        self.post(url, orjson.dumps(self.alerts(notification)), {"Content-Type": "application/json"})

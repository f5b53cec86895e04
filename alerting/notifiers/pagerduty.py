"""PagerDuty Events API v2: one ``trigger`` per group while it has firing alerts and a ``resolve``
when all are resolved, both with the same ``dedup_key`` (SHA-256 of the group key, as Alertmanager
does), so PagerDuty keeps one incident per group."""

from __future__ import annotations

import hashlib

import orjson
from pydantic import Field

from logtide.config import Model

from logtide.alerting.notifiers.base import HttpIntegration
from logtide.alerting.templates import DEFAULT_TITLE, Template, context, fallback_text

PD_SEVERITIES = ("critical", "error", "warning", "info")


class PagerDutyConfig(Model):
    routing_key: str
    url: str = "https://events.pagerduty.com/v2/enqueue"
    summary: Template = DEFAULT_TITLE
    source: str = "logtide"
    send_resolved: bool = True
    timeout_seconds: float = Field(10.0, gt=0)


def dedup_key(group_key: str) -> str:
    return hashlib.sha256(group_key.encode()).hexdigest()


class PagerDuty(HttpIntegration):
    kind = "pagerduty"

    def event(self, notification) -> dict:
        key = dedup_key(notification.group_key)
        if notification.status == "resolved":
            return {"routing_key": self.config.routing_key, "event_action": "resolve", "dedup_key": key}
        ctx = context(notification, self.external_url)
        summary = self.templates.render_or(
            self.config.summary, ctx, fallback_text(notification).splitlines()[0], self.receiver
        )
        sev = notification.common_labels.get("severity", "error")
        return {
            "routing_key": self.config.routing_key,
            "event_action": "trigger",
            "dedup_key": key,
            "client": "logtide",
            "client_url": self.external_url or None,
            "payload": {
                "summary": summary[:1024],
                "source": self.config.source,
                "severity": sev if sev in PD_SEVERITIES else "error",
                "custom_details": {
                    "firing": len(notification.firing),
                    "resolved": len(notification.resolved),
                    "groupLabels": notification.group_labels,
                    "alerts": [a.labels for a in notification.alerts[:20]],
                },
            },
        }

    def send(self, notification) -> None:
        self.post(self.config.url, orjson.dumps(self.event(notification)), {"Content-Type": "application/json"})

"""Receivers and their integrations (webhook, Slack, PagerDuty, Alertmanager forward)."""

from __future__ import annotations

from pydantic import Field, model_validator

from logtide.config import Model

from logtide.alerting.notifiers.alertmanager import Alertmanager, AlertmanagerConfig
from logtide.alerting.notifiers.base import HttpIntegration, Permanent, Retryable
from logtide.alerting.notifiers.pagerduty import PagerDuty, PagerDutyConfig
from logtide.alerting.notifiers.slack import Slack, SlackConfig
from logtide.alerting.notifiers.webhook import Webhook, WebhookConfig


class RateLimit(Model):
    """At most ``per_minute`` notifications per minute on average, in bursts of up to ``burst``."""

    per_minute: float = Field(60.0, gt=0)
    burst: int = Field(10, ge=1)


class RetryPolicy(Model):
    """Exponential backoff with full jitter between ``initial_seconds`` and ``max_seconds``; retried until delivered
    (or superseded by a newer notification for the same group)."""

    initial_seconds: float = Field(0.5, gt=0)
    max_seconds: float = Field(60.0, gt=0)


class Receiver(Model):
    name: str
    webhook: list[WebhookConfig] = Field(default_factory=list)
    slack: list[SlackConfig] = Field(default_factory=list)
    pagerduty: list[PagerDutyConfig] = Field(default_factory=list)
    alertmanager: list[AlertmanagerConfig] = Field(default_factory=list)
    rate_limit: RateLimit | None = None
    retry: RetryPolicy = Field(default_factory=RetryPolicy)

    @model_validator(mode="after")
    def _sane(self) -> Receiver:
        if self.retry.max_seconds < self.retry.initial_seconds:
            raise ValueError("retry.max_seconds must be at least retry.initial_seconds")
        return self


_KINDS = (("webhook", Webhook), ("slack", Slack), ("pagerduty", PagerDuty), ("alertmanager", Alertmanager))


def build_integrations(receiver: Receiver, external_url: str, templates) -> list[HttpIntegration]:
    out: list[HttpIntegration] = []
    for attr, cls in _KINDS:
        for i, cfg in enumerate(getattr(receiver, attr)):
            out.append(cls(receiver.name, i, cfg, external_url, templates))
    return out


__all__ = ["Receiver", "RateLimit", "RetryPolicy", "build_integrations", "Retryable", "Permanent", "HttpIntegration"]

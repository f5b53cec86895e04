"""Slack incoming webhook: a message with ``text`` (notifications, fallback) and ``blocks`` (a header,
the rendered text, and a context line with the group labels). Title and text are templates."""

from __future__ import annotations

import orjson
from pydantic import Field

from logtide.config import Model

from logtide.alerting.notifiers.base import HttpIntegration
from logtide.alerting.templates import DEFAULT_TEXT, DEFAULT_TITLE, Template, context, fallback_text


class SlackConfig(Model):
    url: str
    channel: str | None = None
    title: Template = DEFAULT_TITLE
    text: Template = DEFAULT_TEXT
    send_resolved: bool = True
    timeout_seconds: float = Field(10.0, gt=0)


class Slack(HttpIntegration):
    kind = "slack"

    def message(self, notification) -> dict:
        ctx = context(notification, self.external_url)
        fallback = fallback_text(notification)
        title = self.templates.render_or(self.config.title, ctx, fallback.splitlines()[0], self.receiver)
        text = self.templates.render_or(self.config.text, ctx, fallback, self.receiver)
        labels = ", ".join(f"{k}={v}" for k, v in sorted(notification.group_labels.items())) or "no group labels"
        msg = {
            "text": f"{title}\n{text}"[:3000],
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000] or " "}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": labels[:300]}]},
            ],
        }
        if self.config.channel:
            msg["channel"] = self.config.channel
        return msg

    def send(self, notification) -> None:
        self.post(self.config.url, orjson.dumps(self.message(notification)), {"Content-Type": "application/json"})

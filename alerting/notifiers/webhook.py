"""Generic webhook: the Alertmanager webhook payload (version 4), signed.

Headers sent with every POST (``Content-Type: application/json``):

- ``X-Logtide-Timestamp``: Unix time in seconds when the request was signed;
- ``X-Logtide-Signature``: ``v1=<hex>`` for each configured secret, comma-separated, where
  ``<hex>`` = HMAC-SHA256(secret, ``<timestamp>.`` + raw body) in lowercase hex;
- ``X-Logtide-Group-Key``: the group key (also in the body).

Secret rotation: list the new secret first and keep the old one (``secrets: [new, old]``) until
every receiver has the new one; each request then carries a signature for both, and a receiver
accepts the request when any signature matches a secret it knows. Receivers should also refuse a
timestamp older than a few minutes (replays); ``verify`` below does both.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import orjson
from pydantic import Field

from logtide.config import Model

from logtide.alerting.notifiers.base import HttpIntegration

H_TIMESTAMP = "X-Logtide-Timestamp"
H_SIGNATURE = "X-Logtide-Signature"
H_GROUP = "X-Logtide-Group-Key"


class WebhookConfig(Model):
    url: str
    secrets: list[str] = Field(default_factory=list, description="HMAC secrets, newest first (${ENV} or file:)")
    send_resolved: bool = True
    timeout_seconds: float = Field(10.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secrets: list[str], timestamp: str, body: bytes) -> str:
    return ",".join(f"v1={sign(s, timestamp, body)}" for s in secrets)


def verify(headers, body: bytes, secrets: list[str], tolerance: float = 300.0, now: float | None = None) -> bool:
    """True when one of the request's signatures matches one of ``secrets`` and it is recent."""
    ts = headers.get(H_TIMESTAMP)
    sig = headers.get(H_SIGNATURE) or ""
    if not ts or not sig:
        return False
    try:
        age = (now if now is not None else time.time()) - int(ts)
    except ValueError:
        return False
    if abs(age) > tolerance:
        return False
    given = [p.strip()[3:] for p in sig.split(",") if p.strip().startswith("v1=")]
    for secret in secrets:
        expected = sign(secret, ts, body)
        if any(hmac.compare_digest(expected, g) for g in given):
            return True
    return False


class Webhook(HttpIntegration):
    kind = "webhook"

    def body(self, notification) -> bytes:
        return orjson.dumps(notification.payload(self.external_url))

    def send(self, notification) -> None:
        body = self.body(notification)
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "logtide-alerting",
            H_TIMESTAMP: ts,
            H_GROUP: notification.group_key,
            **self.config.headers,
        }
        if self.config.secrets:
            headers[H_SIGNATURE] = signature_header(self.config.secrets, ts, body)
        self.post(self.config.url, body, headers)

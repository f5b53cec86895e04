"""What every notifier shares: the error classes that drive retries, and one HTTP POST that
classifies failures (5xx, 429 and network errors are retried; other 4xx are not)."""

from __future__ import annotations

import time

import requests

from logtide import log

from logtide.alerting import metrics

_log = log.get("alerting.notifiers")


class Retryable(Exception):
    """Worth trying again (server error, throttled, network); ``retry_after`` in seconds if known."""

    def __init__(self, message: str, retry_after: float | None = None, reason: str = "server"):
        super().__init__(message)
        self.retry_after = retry_after
        self.reason = reason


class Permanent(Exception):
    """Trying again would not help (4xx other than 429: bad URL, bad key, payload refused)."""


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class HttpIntegration:
    """Base of the HTTP notifiers: a keep-alive session and ``post`` with failure classification."""

    kind = "http"
    #: see dispatch.Integration.resend_ns
    resend_ns = 0

    def __init__(self, receiver: str, index: int, config, external_url: str = "", templates=None):
        self.receiver = receiver
        self.id = f"{receiver}/{self.kind}/{index}"
        self.config = config  # the integration's config model (url, timeout, send_resolved, ...)
        self.timeout = config.timeout_seconds
        self.send_resolved = config.send_resolved
        self.external_url = external_url
        self.templates = templates
        self.session = requests.Session()

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> requests.Response:
        started = time.monotonic()
        try:
            resp = self.session.post(url, data=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise Retryable(f"{type(exc).__name__}: {exc}", reason="network") from None
        metrics.NOTIFY_SECONDS.labels(self.kind).observe(time.monotonic() - started)
        if resp.status_code == 429:
            raise Retryable(f"HTTP 429 from {self.kind}", _retry_after(resp), reason="throttled")
        if resp.status_code >= 500:
            raise Retryable(f"HTTP {resp.status_code} from {self.kind}", _retry_after(resp), reason="server")
        if resp.status_code >= 400:
            raise Permanent(f"HTTP {resp.status_code} from {self.kind}: {resp.text[:200]}")
        return resp

    def send(self, notification) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.session.close()

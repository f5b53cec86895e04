"""Salesforce REST access for the collector, through simple-salesforce.

Every call goes through ``call()``: it logs in when there is no session, re-logs in once the session
expired (401 INVALID_SESSION_ID), backs off on 5xx and network errors, and honours the org's API
limits: it reads ``Sforce-Limit-Info`` (api-usage=used/total) after every response and pauses the
collector when usage reaches ``api_usage_limit`` (a 403 REQUEST_LIMIT_EXCEEDED pauses it too).
"""

from __future__ import annotations

import threading
from typing import Any
from collections.abc import Callable, Iterator

import requests
from prometheus_client import Gauge
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceRefusedRequest,
)
from simple_salesforce.util import exception_handler

from logtide.collectors.base import Backoff, CollectorMetrics, Stopped, log_error
from logtide.collectors.salesforce import auth
from logtide.collectors.salesforce.config import SalesforceConfig

API_USAGE = Gauge(
    "logtide_collector_salesforce_api_usage_ratio",
    "The org's daily API usage as Salesforce reports it in Sforce-Limit-Info (used/total)",
)


class CaBundleSession(requests.Session):
    """A session whose configured CA bundle wins over $REQUESTS_CA_BUNDLE (requests prefers the
    environment's over ``session.verify``); proxies from the environment still apply."""

    def __init__(self, ca_bundle: str):
        super().__init__()
        self.verify = self._ca_bundle = ca_bundle

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        settings["verify"] = self._ca_bundle
        return settings


class SalesforceApi:
    def __init__(self, config: SalesforceConfig, metrics: CollectorMetrics):
        self.config = config
        self.metrics = metrics
        self.session = CaBundleSession(config.ca_bundle) if config.ca_bundle else requests.Session()
        self._lock = threading.Lock()
        self._sf: Salesforce | None = None
        self.usage: tuple[int, int] | None = None
        self.logins = 0

    # --- session ------------------------------------------------------------------------------

    def _client(self, stop: threading.Event) -> Salesforce:
        with self._lock:
            if self._sf is not None:
                return self._sf
        backoff = Backoff(1.0, 300.0)
        while True:
            self.metrics.api_call("login")
            try:
                token = auth.login(self.config, self.session)
                break
            except auth.LoginRefused as exc:
                self.metrics.error("login_refused")
                log_error(
                    self.metrics.collector,
                    "login_refused",
                    "Salesforce refused the login; check the credentials (retrying)",
                    error=str(exc),
                )
            except auth.LoginUnavailable as exc:
                self.metrics.error(exc.kind)
                log_error(self.metrics.collector, exc.kind, f"Salesforce login failed: {exc}; retrying")
            backoff.wait(stop)
        sf = Salesforce(
            instance_url=token.instance_url,
            session_id=token.access_token,
            version=self.config.api_version,
            session=self.session,
        )
        with self._lock:
            self._sf = sf
            self.logins += 1
        return sf

    def _expire(self, sf: Salesforce) -> None:
        with self._lock:
            if self._sf is sf:
                self._sf = None

    # --- limits -------------------------------------------------------------------------------

    def note_limits(self, header: str | None) -> None:
        if not header:
            return
        usage = Salesforce.parse_api_usage(header).get("api-usage")
        if usage and usage.total:
            self.usage = (usage.used, usage.total)
            API_USAGE.set(usage.used / usage.total)

    def _respect_limits(self, stop: threading.Event) -> None:
        if self.usage and self.usage[0] >= self.config.api_usage_limit * self.usage[1]:
            self.metrics.throttles.inc()
            log_error(
                self.metrics.collector,
                "api_limit",
                "Salesforce API usage at the configured limit; pausing",
                used=self.usage[0],
                total=self.usage[1],
                seconds=self.config.limit_backoff_seconds,
            )
            self.usage = None  # the next response tells whether usage went down
            if stop.wait(self.config.limit_backoff_seconds):
                raise Stopped()

    # --- calls --------------------------------------------------------------------------------

    def call(self, name: str, fn: Callable[[Salesforce], Any], stop: threading.Event) -> Any:
        backoff = Backoff(0.5, 60.0)
        collector = self.metrics.collector
        while True:
            if stop.is_set():
                raise Stopped()
            sf = self._client(stop)
            self._respect_limits(stop)
            self.metrics.api_call(name)
            try:
                result = fn(sf)
                self.note_limits(sf.api_usage and _limit_header(sf))
                return result
            except SalesforceExpiredSession:
                self.metrics.error("session_expired")
                log_error(collector, "session_expired", "Salesforce session expired; logging in again")
                self._expire(sf)
                if backoff.attempt:
                    backoff.wait(stop)
                backoff.attempt += 1
                continue
            except SalesforceRefusedRequest as exc:
                if "REQUEST_LIMIT_EXCEEDED" in str(exc.content):
                    self.usage = (1, 1)  # at the limit: _respect_limits pauses before the next call
                    continue
                self.metrics.error("refused")
                raise
            except SalesforceGeneralError as exc:
                if exc.status < 500 and exc.status != 429:
                    self.metrics.error("request")
                    raise
                self.metrics.error("server")
                log_error(collector, "server", "Salesforce server error; retrying", status=exc.status, call=name)
            except requests.RequestException as exc:
                kind, message = auth.describe_request_error(exc, sf.base_url, self.config.ca_bundle)
                self.metrics.error(kind)
                log_error(collector, kind, f"{message}; retrying", call=name)
            backoff.wait(stop)

    def query_pages(self, soql: str, stop: threading.Event) -> Iterator[dict]:
        """Every page of a SOQL query, following nextRecordsUrl."""
        page = self.call("query", lambda sf: sf.query(soql), stop)
        yield page
        while not page.get("done", True) and page.get("nextRecordsUrl"):
            url = page["nextRecordsUrl"]
            page = self.call("query_more", lambda sf, url=url: sf.query_more(url, identifier_is_url=True), stop)
            yield page

    def open_log_file(self, file_id: str, stop: threading.Event) -> requests.Response:
        """The LogFile blob of one EventLogFile, as a streamed response (read it, then close it)."""

        def fetch(sf: Salesforce) -> requests.Response:
            url = f"{sf.base_url}sobjects/EventLogFile/{file_id}/LogFile"
            resp = self.session.get(url, headers=sf.headers, stream=True, timeout=self.config.request_timeout_seconds)
            if resp.status_code >= 300:
                try:
                    exception_handler(resp, name="LogFile")
                finally:
                    resp.close()
            self.note_limits(resp.headers.get("Sforce-Limit-Info"))
            return resp

        return self.call("LogFile", fetch, stop)


def _limit_header(sf: Salesforce) -> str | None:
    """simple-salesforce parsed the header already; rebuild it so one parser serves both paths."""
    usage = sf.api_usage.get("api-usage")
    return f"api-usage={usage.used}/{usage.total}" if usage else None


__all__ = ["SalesforceApi", "SalesforceError"]

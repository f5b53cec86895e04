"""AWS access for the CloudWatch collector: clients per region from the standard credential chain
(optionally assuming a role, refreshed before it expires), an adaptive request rate per region, and
one call wrapper that turns throttling, 5xx, network and credential errors into backoff + metrics.

botocore's own retries are switched off (total_max_attempts=1) so every throttle is seen and counted here.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError, ConnectionClosedError, EndpointConnectionError

from logtide.collectors.base import Backoff, CollectorMetrics, Stopped, log_error
from logtide.collectors.cloudwatch.config import CloudWatchConfig

THROTTLE_CODES = {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded",
                  "LimitExceededException"}
AUTH_CODES = {"ExpiredTokenException", "ExpiredToken", "UnrecognizedClientException", "InvalidSignatureException",
              "InvalidClientTokenId", "RequestExpired", "SignatureDoesNotMatch"}


class LogGroupGone(Exception):
    """The log group does not exist (deleted mid-run, or a typo)."""


class AdaptiveRate:
    """Client-side rate limit for one account and region: starts at the service quota, halves on each
    throttle, and climbs back additively after successes (AIMD, as TCP and botocore's adaptive mode)."""

    def __init__(self, max_rps: float, min_rps: float = 0.5):
        self.max_rps = max_rps
        self.min_rps = min(min_rps, max_rps)
        self.rate = max_rps
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self, stop: threading.Event) -> None:
        with self._lock:
            now = time.monotonic()
            at = max(now, self._next)
            self._next = at + 1.0 / self.rate
        if at > now and stop.wait(at - now):
            raise Stopped()

    def throttled(self) -> None:
        with self._lock:
            self.rate = max(self.min_rps, self.rate / 2)

    def succeeded(self) -> None:
        with self._lock:
            self.rate = min(self.max_rps, self.rate + 0.1 * self.max_rps)


class AwsClients:
    """CloudWatch Logs clients per region, with their rate limiters."""

    def __init__(self, config: CloudWatchConfig, metrics: CollectorMetrics):
        self.config = config
        self.metrics = metrics
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self.rates = {r: AdaptiveRate(config.max_requests_per_second, config.min_requests_per_second)
                      for r in config.regions}

    def _session(self, region: str) -> boto3.Session:
        base = boto3.Session(profile_name=self.config.profile, region_name=region)
        role = self.config.assume_role
        if role is None:
            return base
        sts = base.client("sts", endpoint_url=self.config.endpoint_url)

        def assume() -> dict:
            kwargs: dict[str, Any] = {"RoleArn": role.role_arn, "RoleSessionName": role.session_name,
                                      "DurationSeconds": role.duration_seconds}
            if role.external_id:
                kwargs["ExternalId"] = role.external_id
            self.metrics.api_call("AssumeRole")
            creds = sts.assume_role(**kwargs)["Credentials"]
            expiry = creds["Expiration"]
            if isinstance(expiry, datetime):
                expiry = expiry.astimezone(timezone.utc).isoformat()
            return {"access_key": creds["AccessKeyId"], "secret_key": creds["SecretAccessKey"],
                    "token": creds["SessionToken"], "expiry_time": expiry}

        # Refreshed by botocore itself shortly before expiry.
        creds = RefreshableCredentials.create_from_metadata(assume(), assume, "sts-assume-role")
        core = botocore.session.get_session()
        core._credentials = creds
        core.set_config_variable("region", region)
        return boto3.Session(botocore_session=core)

    def client(self, region: str):
        with self._lock:
            c = self._clients.get(region)
            if c is None:
                cfg = Config(retries={"total_max_attempts": 1, "mode": "standard"},
                             read_timeout=self.config.request_timeout_seconds,
                             connect_timeout=min(10.0, self.config.request_timeout_seconds))
                c = self._clients[region] = self._session(region).client(
                    "logs", region_name=region, endpoint_url=self.config.endpoint_url, config=cfg)
            return c

    def forget(self, region: str) -> None:
        """Drop a region's client: the next call builds a new one (fresh credentials from the chain)."""
        with self._lock:
            self._clients.pop(region, None)

    def call(self, region: str, operation: str, stop: threading.Event, **params: Any) -> dict:
        """Call one API operation until it succeeds; raise LogGroupGone or Stopped, or an
        unexpected ClientError (bad request: retrying will not help)."""
        rate = self.rates[region]
        backoff = Backoff(self.config.retry_initial_seconds, self.config.retry_max_seconds)
        name = self.metrics.collector
        while True:
            if stop.is_set():
                raise Stopped()
            rate.acquire(stop)
            self.metrics.api_call(operation)
            try:
                result = getattr(self.client(region), _snake(operation))(**params)
                rate.succeeded()
                return result
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if code in THROTTLE_CODES or status == 429:
                    self.metrics.throttles.inc()
                    rate.throttled()
                elif code == "ResourceNotFoundException":
                    raise LogGroupGone(params.get("logGroupName", "")) from None
                elif code in AUTH_CODES:
                    self.metrics.error("credentials")
                    log_error(name, "credentials", "AWS refused the credentials; rebuilding the client",
                              region=region, code=code)
                    self.forget(region)
                elif status >= 500 or code in ("ServiceUnavailableException", "InternalFailure"):
                    self.metrics.error("server")
                    log_error(name, "server", "CloudWatch Logs server error; retrying", region=region,
                              code=code, status=status)
                else:
                    self.metrics.error("request")
                    raise
            except (EndpointConnectionError, ConnectionClosedError, BotoCoreError) as exc:
                self.metrics.error("network")
                log_error(name, "network", "cannot reach CloudWatch Logs; retrying", region=region,
                          error=str(exc))
            backoff.wait(stop)


def _snake(operation: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in operation).lstrip("_")

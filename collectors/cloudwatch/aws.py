"""AWS access for the CloudWatch collector: clients per region from the standard credential chain
(optionally assuming a role, refreshed before it expires), an adaptive request rate per region, and
one call wrapper that turns throttling, 5xx, network, permission and credential errors into backoff,
metrics and one clear line each.

botocore's own retries are switched off (total_max_attempts=1) so every throttle is seen and counted here.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, UTC
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from logtide.collectors.base import Backoff, CollectorMetrics, ItemStatus, Stopped
from logtide.collectors.cloudwatch.config import CloudWatchConfig

THROTTLE_CODES = {
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "LimitExceededException",
}
AUTH_CODES = {
    "ExpiredTokenException",
    "ExpiredToken",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "InvalidClientTokenId",
    "RequestExpired",
    "SignatureDoesNotMatch",
}
DENIED_CODES = {"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"}
NO_CREDENTIALS = (NoCredentialsError, PartialCredentialsError)


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
        self.rates = {
            r: AdaptiveRate(config.max_requests_per_second, config.min_requests_per_second) for r in config.regions
        }

    def _session(self, region: str) -> boto3.Session:
        base = boto3.Session(profile_name=self.config.profile, region_name=region)
        role = self.config.assume_role
        if role is None:
            return base
        sts = base.client("sts", endpoint_url=self.config.endpoint_url)

        def assume() -> dict:
            kwargs: dict[str, Any] = {
                "RoleArn": role.role_arn,
                "RoleSessionName": role.session_name,
                "DurationSeconds": role.duration_seconds,
            }
            if role.external_id:
                kwargs["ExternalId"] = role.external_id
            self.metrics.api_call("AssumeRole")
            creds = sts.assume_role(**kwargs)["Credentials"]
            expiry = creds["Expiration"]
            if isinstance(expiry, datetime):
                expiry = expiry.astimezone(UTC).isoformat()
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": expiry,
            }

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
                cfg = Config(
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    read_timeout=self.config.request_timeout_seconds,
                    connect_timeout=min(10.0, self.config.request_timeout_seconds),
                )
                c = self._clients[region] = self._session(region).client(
                    "logs", region_name=region, endpoint_url=self.config.endpoint_url, config=cfg
                )
            return c

    def forget(self, region: str) -> None:
        """Drop a region's client: the next call builds a new one (fresh credentials from the chain)."""
        with self._lock:
            self._clients.pop(region, None)

    def call(self, region: str, operation: str, stop: threading.Event, status: ItemStatus, **params: Any) -> dict:
        """Call one API operation until it succeeds; raise LogGroupGone, Stopped, or an unexpected
        ClientError (a bad request: retrying will not help).

        Every retried failure goes to ``status`` as one line naming its cause and fix, then reminders
        (AccessDenied, no credentials, throttling, 5xx, network); the first success clears it.
        """
        rate = self.rates[region]
        backoff = Backoff(self.config.retry_initial_seconds, self.config.retry_max_seconds)
        where = {"region": region, "operation": operation}
        while True:
            if stop.is_set():
                raise Stopped()
            rate.acquire(stop)
            self.metrics.api_call(operation)
            try:
                result = getattr(self.client(region), _snake(operation))(**params)
                rate.succeeded()
                status.recovered()
                return result
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                message = exc.response.get("Error", {}).get("Message", "")
                http = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if code in THROTTLE_CODES or http == 429:
                    self.metrics.throttles.inc()
                    rate.throttled()
                    status.failed(
                        "throttled",
                        f"CloudWatch Logs throttles {operation} ({code}); slowing down to "
                        f"{rate.rate:.2g} requests/s (max_requests_per_second shares the account's quota)",
                        **where,
                    )
                elif code == "ResourceNotFoundException":
                    raise LogGroupGone(params.get("logGroupName", "")) from None
                elif code in DENIED_CODES:
                    status.failed(
                        "access_denied",
                        f"missing IAM permission logs:{operation}: grant it to the "
                        f"collector's role for this log group ({code}: {message})",
                        **where,
                        log_group=params.get("logGroupName"),
                    )
                elif code in AUTH_CODES:
                    status.failed(
                        "credentials",
                        f"AWS refused the credentials ({code}); rebuilding the client "
                        "with fresh ones from the credential chain",
                        **where,
                    )
                    self.forget(region)
                elif http >= 500 or code in ("ServiceUnavailableException", "InternalFailure"):
                    status.failed("server", f"CloudWatch Logs server error ({code or http}); retrying", **where)
                else:
                    self.metrics.error("request")
                    raise
            except NO_CREDENTIALS as exc:
                status.failed(
                    "no_credentials",
                    f"no AWS credentials found ({exc}): set AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY, a profile (cloudwatch.profile), or a role for the pod or "
                    "instance (IRSA, instance profile)",
                    **where,
                )
                self.forget(region)
            except (EndpointConnectionError, ConnectionClosedError, BotoCoreError) as exc:
                status.failed(
                    "network",
                    f"cannot reach CloudWatch Logs ({exc.__class__.__name__}); retrying",
                    **where,
                    error=str(exc),
                )
            backoff.wait(stop)


def _snake(operation: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in operation).lstrip("_")

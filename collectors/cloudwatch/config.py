"""Config of the CloudWatch Logs collector (the ``cloudwatch:`` section of `logtide collect`)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from logtide.config import Model


class LogGroupSelector(Model):
    """One log group by exact ``name``, or every group whose name starts with ``prefix``
    (optionally narrowed by the regular expression ``match``); optionally only some of its streams:
    ``log_stream_names`` (up to 100) or ``log_stream_prefix``, as FilterLogEvents takes them."""

    name: str | None = None
    prefix: str | None = None
    match: str | None = None
    log_stream_names: list[str] | None = Field(default=None, min_length=1, max_length=100)
    log_stream_prefix: str | None = Field(default=None, min_length=1)

    @field_validator("match")
    @classmethod
    def _match_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"'match' is not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_kind(self):
        if bool(self.name) == bool(self.prefix):
            raise ValueError("give exactly one of 'name' or 'prefix'")
        if self.match and not self.prefix:
            raise ValueError("'match' narrows a 'prefix' selection; with 'name' it would be ignored")
        if self.log_stream_names and self.log_stream_prefix:
            raise ValueError(
                "give at most one of 'log_stream_names' or 'log_stream_prefix' (FilterLogEvents takes one)"
            )
        return self

    def streams_key(self) -> str:
        """The stream filter as text ("" when every stream is read)."""
        if self.log_stream_names:
            return "streams=" + ",".join(sorted(self.log_stream_names))
        return f"stream_prefix={self.log_stream_prefix}" if self.log_stream_prefix else ""

    def stream_params(self) -> dict:
        if self.log_stream_names:
            return {"logStreamNames": sorted(self.log_stream_names)}
        return {"logStreamNamePrefix": self.log_stream_prefix} if self.log_stream_prefix else {}

    def wants_stream(self, stream: str) -> bool:
        """Also checked on each event: an endpoint that ignores the stream parameters must not widen the read."""
        if self.log_stream_names:
            return stream in self.log_stream_names
        return stream.startswith(self.log_stream_prefix) if self.log_stream_prefix else True

    def key(self) -> str:
        base = f"name:{self.name}" if self.name else f"prefix:{self.prefix}" + (f"~{self.match}" if self.match else "")
        streams = self.streams_key()
        return f"{base}|{streams}" if streams else base


class AssumeRole(Model):
    role_arn: str
    external_id: str | None = None
    session_name: str = "logtide-collector"
    duration_seconds: int = 3600


class CloudWatchConfig(Model):
    #: Kafka topic of the events.
    topic: str = "logtide.raw.cloudwatch"
    regions: list[str] = Field(min_length=1)
    log_groups: list[LogGroupSelector] = Field(min_length=1)
    #: Credentials come from the standard chain (env, profile, web identity, instance/pod role);
    #: optionally a named profile and/or a role to assume on top of them.
    profile: str | None = None
    assume_role: AssumeRole | None = None
    #: Another endpoint (VPC endpoint, LocalStack, moto in tests); empty = AWS.
    endpoint_url: str | None = None
    filter_pattern: str | None = None
    #: Seconds re-read behind the cursor for events CloudWatch ingests late; dedup by eventId inside it.
    lookback_seconds: float = Field(default=300, ge=0)
    #: Where a log group without checkpoint starts: this many seconds before now, or, with
    #: ``start_position``, at its oldest event (``beginning``) or at now (``end``, no history).
    start_seconds_ago: float = Field(default=3600, ge=0)
    start_position: Literal["beginning", "end"] | None = None
    poll_interval_seconds: float = Field(default=10, gt=0)
    page_limit: int = Field(default=10_000, ge=1, le=10_000)
    #: CloudWatch allows 5 FilterLogEvents/s per account and region; we start there and adapt down.
    max_requests_per_second: float = Field(default=5, gt=0)
    min_requests_per_second: float = Field(default=0.5, gt=0)
    #: Retry backoff (exponential with jitter) after throttling, 5xx, network or credential errors.
    retry_initial_seconds: float = Field(default=0.25, gt=0)
    retry_max_seconds: float = Field(default=20, gt=0)
    #: Bound on remembered eventIds (per log group), each ~31 bytes of the checkpoint record (which must
    #: stay under Kafka's 1 MB message limit). Past the bound the oldest are forgotten and the next read
    #: starts after the newest forgotten one's time: nothing is shipped twice, but a busy group's
    #: effective lookback shrinks to max_seen_ids / (events per second).
    max_seen_ids: int = Field(default=20_000, ge=100, le=30_000)
    #: A failure that lasts (missing permission, deleted group) is logged once, then every this often.
    reminder_seconds: float = Field(default=300, gt=0)
    request_timeout_seconds: float = Field(default=30, gt=0)

"""Config of the CloudWatch Logs collector (the ``cloudwatch:`` section of `logtide collect`)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from logtide.config import Model


class LogGroupSelector(Model):
    """One log group by exact ``name``, or every group whose name starts with ``prefix``
    (optionally narrowed by the regular expression ``match``)."""

    name: str | None = None
    prefix: str | None = None
    match: str | None = None

    @model_validator(mode="after")
    def _one_kind(self):
        if bool(self.name) == bool(self.prefix):
            raise ValueError("give exactly one of 'name' or 'prefix'")
        return self

    @field_validator("match")
    @classmethod
    def _match_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    def key(self) -> str:
        return f"name:{self.name}" if self.name else f"prefix:{self.prefix}" + (f"~{self.match}" if self.match else "")


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
    #: Where a log group without checkpoint starts: this many seconds before now.
    start_seconds_ago: float = Field(default=3600, ge=0)
    poll_interval_seconds: float = Field(default=10, gt=0)
    page_limit: int = Field(default=10_000, ge=1, le=10_000)
    #: CloudWatch allows 5 FilterLogEvents/s per account and region; we start there and adapt down.
    max_requests_per_second: float = Field(default=5, gt=0)
    min_requests_per_second: float = Field(default=0.5, gt=0)
    #: Retry backoff (exponential with jitter) after throttling, 5xx, network or credential errors.
    retry_initial_seconds: float = Field(default=0.25, gt=0)
    retry_max_seconds: float = Field(default=20, gt=0)
    #: Bound on remembered eventIds inside the lookback window (per log group). Each costs ~30 bytes
    #: of the checkpoint record, which must stay under Kafka's 1 MB message limit; past the bound the
    #: oldest are forgotten (a re-read of those would ship them again, with the same ids).
    max_seen_ids: int = Field(default=20_000, ge=100, le=30_000)
    request_timeout_seconds: float = Field(default=30, gt=0)

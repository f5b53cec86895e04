"""Config of `logtide sink`: one section per sink; a sink runs when its section is present."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from logtide.config import Model, ResolvedSecret
from logtide.role import RoleConfig
from logtide.topics import route


class ConsumeSettings(Model):
    """How a sink consumes its route topic (defaults suit production; tests shorten the session)."""

    topic: str | None = Field(default=None, description="route topic (default logtide.route.<sink>)")
    group: str | None = Field(default=None, description="consumer group (default logtide-sink-<sink>)")
    max_batch: int = Field(default=2000, ge=1)
    session_timeout_seconds: float = Field(default=45, ge=1)
    dedup_capacity: int = Field(default=200_000, ge=0, description="recent event ids kept to drop duplicates")


# --- monitoring -----------------------------------------------------------------------------


class LogMetricsSettings(Model):
    """Prometheus counters from logs; label values beyond a limit fall into `__overflow__`."""

    max_sources: int = 20
    max_services: int = 200
    max_namespaces: int = 100


class LokiSettings(Model):
    url: str = Field(description="base URL, e.g. http://loki:3100 (the push path is added)")
    tenant: str | None = Field(default=None, description="X-Scope-OrgID for multi-tenant Loki")
    #: resource fields that become Loki labels (dots become underscores); keep this list short.
    labels: list[str] = Field(default_factory=lambda: ["k8s.namespace.name", "service.name", "k8s.container.name"])
    batch_bytes: int = Field(default=1_000_000, description="split a push above this many uncompressed bytes")
    timeout_seconds: float = 10.0
    attempts: int = Field(default=4, ge=1, description="tries per push before the batch is retried later")
    username: str | None = None
    password: SecretStr | None = None


class ElasticsearchSettings(Model):
    url: str = Field(description="base URL of Elasticsearch or OpenSearch")
    index: str = Field(default="logtide-%Y.%m.%d", description="index name, strftime of the event time (UTC)")
    timeout_seconds: float = 10.0
    username: str | None = None
    password: SecretStr | None = None


class MonitoringSettings(ConsumeSettings):
    metrics: LogMetricsSettings = Field(default_factory=LogMetricsSettings)
    loki: LokiSettings | None = None
    elasticsearch: ElasticsearchSettings | None = None


# --- audit ----------------------------------------------------------------------------------


class ObjectLockSettings(Model):
    mode: Literal["GOVERNANCE", "COMPLIANCE"] = "COMPLIANCE"
    days: int = Field(default=365, ge=1, description="retention period of every segment and manifest")


class S3Location(Model):
    """A bucket and prefix; credentials come from the usual AWS chain (env, IRSA, instance profile)."""

    bucket: str
    prefix: str = "logtide"
    region: str = "us-east-1"
    endpoint_url: str | None = Field(default=None, description="for S3-compatible stores (MinIO, moto)")
    connect_timeout_seconds: float = 5.0


class S3Settings(S3Location):
    object_lock: ObjectLockSettings | None = Field(default_factory=ObjectLockSettings)


class AuditStorageSettings(Model):
    path: str | None = Field(default=None, description="local directory of the archive (or staging for S3)")
    s3: S3Settings | None = None

    @model_validator(mode="after")
    def _need_path(self):
        if not self.path:
            raise ValueError("audit.storage.path is required (the archive, or the local staging dir with s3)")
        return self


class AuditSettings(ConsumeSettings):
    storage: AuditStorageSettings
    hmac_key: SecretStr = Field(description="key that signs manifests: ${ENV} or file:/path, never inline")
    roll_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    roll_seconds: float = Field(default=3600.0, gt=0)
    index_seconds: float = Field(
        default=300.0, gt=0, description="how often the signed archive index (_index/) is written"
    )

    @field_validator("hmac_key", mode="before")
    @classmethod
    def _not_inline(cls, value, info: ValidationInfo):
        # Inline, the key would sit in the ConfigMap and the repository: whoever reads those could
        # re-sign a rewritten archive. (Python callers and `logtide up` pass a key they read themselves.)
        if (
            (info.context or {}).get("source") == "file"
            and isinstance(value, str)
            and not isinstance(value, ResolvedSecret)
        ):
            raise ValueError(
                "hmac_key must be a reference, never the key itself: ${ENV_VAR} or file:/path/to/key (a mounted Secret)"
            )
        return value

    def directories(self) -> dict[str, str]:
        return {"storage.path": self.storage.path}


# --- analytics ------------------------------------------------------------------------------


class ParquetSettings(Model):
    path: str | None = Field(default=None, description="root directory of the Hive-partitioned dataset")
    s3: S3Location | None = Field(default=None, description="the dataset in S3 instead of a directory")
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    compact_min_files: int = Field(default=8, ge=2, description="compact an hour partition with this many files")
    compact_after_seconds: float = Field(default=3600.0, ge=0, description="only hours that ended this long ago")
    compact_every_seconds: float = Field(
        default=300.0, ge=0, description="how often the sink looks for work; 0 = never"
    )
    dedup_memory_ids: int = Field(
        default=200_000,
        ge=0,
        description="ids of the last N events written (by arrival, kept across restarts) "
        "that a copy is checked against, whatever its event time",
    )

    @model_validator(mode="after")
    def _one_place(self):
        if (self.path is None) == (self.s3 is None):
            raise ValueError("analytics.parquet needs exactly one of path or s3")
        return self


class PostgresSettings(Model):
    dsn: SecretStr = Field(description="libpq connection string or URL: ${ENV} or file:/path")
    table: str = Field(default="logtide_events", pattern=r"^[a-z_][a-z0-9_]{0,40}$")
    connect_timeout_seconds: int = 5


class AnalyticsSettings(ConsumeSettings):
    parquet: ParquetSettings | None = None
    postgres: PostgresSettings | None = None

    @model_validator(mode="after")
    def _need_output(self):
        if self.parquet is None and self.postgres is None:
            raise ValueError("analytics needs at least one output: parquet and/or postgres")
        return self

    def directories(self) -> dict[str, str]:
        return {"parquet.path": self.parquet.path} if self.parquet is not None and self.parquet.path else {}


class SinkRoleConfig(RoleConfig):
    """`logtide sink --config FILE`: the sinks whose sections are present run, each in its own thread.
    The sections come from the sink registry (``processors.sinks.role.SinkConfig``)."""

    def enabled(self) -> dict[str, ConsumeSettings]:
        return {
            name: s
            for name in type(self).model_fields
            if name not in RoleConfig.model_fields and (s := getattr(self, name)) is not None
        }


def topic_of(name: str, settings: ConsumeSettings) -> str:
    return settings.topic or route(name)


def group_of(name: str, settings: ConsumeSettings) -> str:
    return settings.group or f"logtide-sink-{name}"


def __getattr__(name: str):
    if name == "SinkConfig":  # built from the registry once every sink registered itself
        from logtide.processors.sinks.role import SinkConfig

        return SinkConfig
    raise AttributeError(name)

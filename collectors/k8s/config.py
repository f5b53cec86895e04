"""Config of the Kubernetes API collector (the ``k8s:`` section of `logtide collect`)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from logtide.config import Model


class KubernetesConfig(Model):
    #: Kafka topic of the events.
    topic: str = "logtide.raw.k8s"
    #: Namespaces are the work items replicas share.
    namespaces: list[str] = Field(min_length=1)
    label_selector: str | None = None
    #: How to reach the API server: in-cluster service account (default), a kubeconfig, or an explicit URL.
    in_cluster: bool = True
    kubeconfig: str | None = None
    context: str | None = None
    api_server: str | None = None
    token: SecretStr | None = None
    ca_file: str | None = None
    verify_ssl: bool = True
    #: A container without checkpoint starts this many seconds back (0 = its whole log).
    start_seconds_ago: float = Field(default=0, ge=0)
    #: A log stream silent this long is reopened (since its last line) to notice a dead connection.
    stream_idle_seconds: float = Field(default=300, gt=0)
    #: Ship and checkpoint at least this often (seconds) or every batch_lines lines.
    flush_interval_seconds: float = Field(default=1.0, gt=0)
    batch_lines: int = Field(default=1000, ge=1)
    watch_timeout_seconds: int = Field(default=300, ge=1)

"""The node agent's configuration (`logtide agent --config FILE`); examples/agent.yaml shows every field."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, field_validator, model_validator

from logtide.config import Model
from logtide.role import RoleConfig
from logtide.topics import raw


class ReadSettings(Model):
    """How files are found and read."""

    scan_interval_seconds: float = Field(1.0, gt=0, description="how often globs are re-listed and paths re-checked")
    chunk_bytes: int = Field(64 * 1024, ge=4096, description="bytes read from one file before turning to the next")
    max_line_bytes: int = Field(256 * 1024, ge=1024, description="longer lines are cut to this and flagged truncated")
    fingerprint_bytes: int = Field(64, ge=8, le=4096, description="first bytes hashed into a file's identity")
    fingerprint_wait_seconds: float = Field(
        1.0, ge=0, description="a file shorter than fingerprint_bytes waits this long"
    )
    rotate_wait_seconds: float = Field(5.0, ge=0, description="a rotated/deleted file idle this long is finished")
    idle_poll_seconds: float = Field(0.05, gt=0, description="sleep when no file had new data")
    unmatched_warning_seconds: float = Field(
        60.0, gt=0, description="an include glob matching no file is logged again this often"
    )


class PartialSettings(Model):
    """Reassembly of lines the runtime split (CRI 'P' tags, docker lines without a newline)."""

    max_bytes: int = Field(512 * 1024, ge=1024, description="a longer record is cut and flagged truncated")
    timeout_seconds: float = Field(5.0, gt=0, description="a partial line never finished is sent as it is")


class MultilineSettings(Model):
    """Merging of multi-line records (stack traces) into one event (agents/multiline.py has the exact
    semantics). Filebeat's ``pattern``/``negate``/``match``: negate false + after = continue_pattern
    (with ``languages: []``); negate true + after = start_pattern; negate true + before = end_pattern;
    negate false + before = join_next_pattern. Patterns are searched anywhere in the line (anchor
    with ``^``)."""

    enabled: bool = True
    #: Built-in rules: java (\\tat …, Caused by:), python (Traceback … ExcName: msg), go (panic/goroutine
    #: and frames), ruby (\\tfrom file:line:in …).
    languages: list[Literal["java", "python", "go", "ruby"]] = Field(
        default_factory=lambda: ["java", "python", "go", "ruby"]
    )
    #: A line matching it starts a record, other lines continue it (lines before the first start line
    #: go alone); replaces the languages. Vector's halt_before.
    start_pattern: str | None = None
    #: Lines matching it always continue the previous record (on top of the languages). Vector's
    #: continue_through.
    continue_pattern: str | None = None
    #: A line matching it ends the record (it is its last line); replaces the languages. Vector's halt_with.
    end_pattern: str | None = None
    #: A line matching it is joined with the next line (e.g. ``\\$``); replaces the languages.
    #: Vector's continue_past.
    join_next_pattern: str | None = None
    max_lines: int = Field(500, ge=1)
    max_bytes: int = Field(512 * 1024, ge=1024)
    timeout_seconds: float = Field(1.0, gt=0, description="a record waits this long for more lines")

    @model_validator(mode="after")
    def _patterns(self) -> MultilineSettings:
        import re

        for name in ("start_pattern", "continue_pattern", "end_pattern", "join_next_pattern"):
            pattern = getattr(self, name)
            if pattern:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"{name} is not a valid regular expression: {exc}") from None
        modes = [n for n in ("start_pattern", "end_pattern", "join_next_pattern") if getattr(self, n)]
        if len(modes) > 1:
            raise ValueError(f"give at most one of start_pattern, end_pattern, join_next_pattern (got {modes})")
        return self


class SourceOverride(Model):
    """Settings for the files matching ``path`` (the first matching entry wins; the annotations
    ``logtide.io/parser`` and ``logtide.io/multiline`` of the pod, else of its namespace, win over it)."""

    path: str = Field(description="glob matched against the full path (and the real path of a symlink)")
    format: Literal["auto", "cri", "docker", "plain"] | None = None
    #: Fields given here replace those of the top-level multiline settings.
    multiline: dict | None = None

    @field_validator("multiline")
    @classmethod
    def _multiline_fields(cls, value: dict | None) -> dict | None:
        if value is not None:
            MultilineSettings.model_validate(value)
        return value


class QueueSettings(Model):
    """The bound on records sent but not yet acknowledged by Kafka; at the bound reading pauses."""

    #: at 100k lines/s ~10 ms of data; max_bytes bounds memory whatever the record size
    max_records: int = Field(10_000, ge=10)
    #: bytes of records in the Kafka client's buffer; the client gets at least 2 MB, so that one record
    #: of up to message.max.bytes (1 MB) always fits
    max_bytes: int = Field(4 * 1024 * 1024, ge=64 * 1024)

    def client_buffer_bytes(self) -> int:
        return max(self.max_bytes, 2 * 1024 * 1024)


class RateLimitSettings(Model):
    """Per-container (per-file in files mode) token bucket; what it drops is counted."""

    lines_per_second: float | None = Field(None, gt=0, description="unset: no limit")
    burst: int = Field(10_000, ge=1)


class KubernetesSettings(Model):
    """Pod metadata from the Kubernetes API (list+watch of this node's pods) and exclusion rules."""

    enabled: bool = True
    #: API server URL; unset: in-cluster service account, else ~/.kube/config.
    api_server: str | None = None
    kubeconfig: str | None = None
    token: str | None = Field(None, description="bearer token (use ${ENV} or file:/path)")
    verify_ssl: bool = True
    node_name: str | None = Field(
        default_factory=lambda: os.environ.get("NODE_NAME") or None,
        description="this node (default $NODE_NAME); unset: all pods",
    )
    namespaces_include: list[str] = Field(default_factory=list, description="globs; empty: all namespaces")
    namespaces_exclude: list[str] = Field(default_factory=list, description="globs")
    retain_deleted_seconds: float = Field(300.0, ge=0, description="metadata kept this long after pod deletion")
    wait_for_metadata_seconds: float = Field(2.0, ge=0, description="a new pod's file waits this long for metadata")
    watch_timeout_seconds: int = Field(300, ge=1, description="server-side timeout of one watch request")
    retry_seconds: float = Field(2.0, gt=0, description="first back-off after an API error (doubles to 30 s)")
    labels: bool = True
    annotations: bool = False


class AgentConfig(RoleConfig):
    """`logtide agent`: tails container (or any) log files into Kafka with end-to-end acknowledgements."""

    mode: Literal["kubernetes", "files"] = "kubernetes"
    pods_root: str = "/var/log/pods"
    containers_root: str = "/var/log/containers"
    #: Globs of files to tail (``**`` matches any number of directories); empty in kubernetes mode:
    #: <pods_root>/*/*/*.log and <containers_root>/*.log. Files under the kubelet's layout get their
    #: namespace, pod, uid and container from the path in every mode.
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(
        default_factory=list,
        description="globs matched against the full path ('*' crosses '/'; '**/' matches zero or more directories)",
    )
    #: Kafka topic; default logtide.raw.k8s (kubernetes mode) or logtide.raw.file (files mode).
    topic: str | None = None
    checkpoint_dir: str = "/var/lib/logtide-agent"
    checkpoint_interval_seconds: float = Field(1.0, gt=0)
    #: Bodies longer than this are cut (flagged truncated): Kafka refuses records over message.max.bytes (1 MB).
    max_event_bytes: int = Field(512 * 1024, ge=1024)
    shutdown_timeout_seconds: float = Field(15.0, ge=0, description="on stop, wait this long for Kafka's acks")
    format: Literal["auto", "cri", "docker", "plain"] = "auto"
    read: ReadSettings = Field(default_factory=ReadSettings)
    partial: PartialSettings = Field(default_factory=PartialSettings)
    multiline: MultilineSettings = Field(default_factory=MultilineSettings)
    #: Per-path overrides of format and multiline (first match wins), e.g.
    #: ``- {path: "/var/log/pods/billing_*/*/*.log", multiline: {start_pattern: '^\d{4}-'}}``.
    sources: list[SourceOverride] = Field(default_factory=list)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)

    def source_settings(self, path: str, real_path: str | None = None) -> tuple[str, MultilineSettings]:
        """The format and multi-line settings of one file: the first ``sources`` entry whose glob
        matches it, on top of the top-level ones."""
        import fnmatch

        for src in self.sources:
            if fnmatch.fnmatch(path, src.path) or (real_path and fnmatch.fnmatch(real_path, src.path)):
                multiline = self.multiline
                if src.multiline:
                    multiline = MultilineSettings.model_validate({**self.multiline.model_dump(), **src.multiline})
                return src.format or self.format, multiline
        return self.format, self.multiline

    def include_globs(self) -> list[str]:
        if self.include:
            return list(self.include)
        if self.mode == "kubernetes":
            return [os.path.join(self.pods_root, "*", "*", "*.log"), os.path.join(self.containers_root, "*.log")]
        return []

    def topic_name(self) -> str:
        return self.topic or raw("k8s" if self.mode == "kubernetes" else "file")

    def source_name(self) -> str:
        return "k8s" if self.mode == "kubernetes" else "file"

    def metadata_enabled(self) -> bool:
        return self.mode == "kubernetes" and self.kubernetes.enabled

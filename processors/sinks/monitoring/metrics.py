"""Prometheus counters from logs, for Grafana: events and bytes by source, service, namespace, severity.

Label values come from log data, so each label has a cap: the first N distinct values seen are kept,
later ones are counted under ``__overflow__`` (and ``logtide_sink_log_label_overflow_total`` says so),
which bounds the series count whatever the logs contain. Severity is the canonical OTel short name.
"""

from __future__ import annotations

from prometheus_client import Counter

from logtide.envelope import severity_text

OVERFLOW = "__overflow__"
UNKNOWN = "unknown"

LOG_EVENTS = Counter(
    "logtide_sink_log_events_total",
    "Log events seen by the monitoring sink",
    ["source", "service", "namespace", "severity"],
)
LOG_BYTES = Counter(
    "logtide_sink_log_bytes_total",
    "Bytes of log bodies seen by the monitoring sink",
    ["source", "service", "namespace"],
)
LABEL_OVERFLOW = Counter(
    "logtide_sink_log_label_overflow_total",
    "Events whose label value was replaced by __overflow__ (the cap was reached)",
    ["label"],
)


class BoundedLabel:
    """The first ``limit`` distinct values pass through; the rest become ``__overflow__``."""

    def __init__(self, name: str, limit: int):
        self.name = name
        self.limit = limit
        self.values: set[str] = set()
        self._overflow = LABEL_OVERFLOW.labels(name)

    def __call__(self, value) -> str:
        if value is None or value == "":
            return UNKNOWN
        v = value if isinstance(value, str) else str(value)
        if v in self.values:
            return v
        if len(self.values) < self.limit:
            self.values.add(v[:128])
            return v[:128]
        self._overflow.inc()
        return OVERFLOW


class LogMetrics:
    def __init__(self, settings):
        self.source = BoundedLabel("source", settings.max_sources)
        self.service = BoundedLabel("service", settings.max_services)
        self.namespace = BoundedLabel("namespace", settings.max_namespaces)

    def observe(self, events: list[dict]) -> None:
        counts: dict[tuple[str, str, str, str], int] = {}
        sizes: dict[tuple[str, str, str], int] = {}
        for ev in events:
            res = ev.get("resource") or {}
            key = (
                self.source(ev.get("source")),
                self.service(res.get("service.name")),
                self.namespace(res.get("k8s.namespace.name")),
            )
            sev = severity_text(ev.get("severity_number") or 0).lower() or "unspecified"
            counts[(*key, sev)] = counts.get((*key, sev), 0) + 1
            body = ev.get("body")
            sizes[key] = sizes.get(key, 0) + (len(body.encode("utf-8", "replace")) if isinstance(body, str) else 0)
        for labels, n in counts.items():
            LOG_EVENTS.labels(*labels).inc(n)
        for labels, n in sizes.items():
            LOG_BYTES.labels(*labels).inc(n)

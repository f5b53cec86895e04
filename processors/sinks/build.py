"""Build the sink services a config names (shared by `logtide sink` and `logtide up`)."""

from __future__ import annotations

from logtide.transport import Transport

from logtide.processors.sinks.config import SinkConfig, group_of, topic_of
from logtide.processors.sinks.service import SinkService


def make_sink(name: str, settings, transport: Transport):
    if name == "monitoring":
        from logtide.processors.sinks.monitoring.sink import MonitoringSink
        return MonitoringSink(settings)
    if name == "audit":
        from logtide.processors.sinks.audit.writer import AuditSink
        return AuditSink(settings)
    if name == "analytics":
        from logtide.processors.sinks.analytics.sink import AnalyticsSink
        return AnalyticsSink(settings, group_of(name, settings), transport)
    raise ValueError(f"unknown sink {name!r}")


def build_services(config: SinkConfig, transport: Transport, only: list[str] | None = None) -> list[SinkService]:
    services = []
    for name, settings in config.enabled().items():
        if only and name not in only:
            continue
        services.append(SinkService(
            transport, make_sink(name, settings, transport), topic=topic_of(name, settings),
            group_id=group_of(name, settings), max_batch=settings.max_batch,
            session_timeout_seconds=settings.session_timeout_seconds, dedup_capacity=settings.dedup_capacity))
    return services

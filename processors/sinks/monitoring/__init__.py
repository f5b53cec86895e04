"""The monitoring sink: Prometheus counters from logs, Loki push, optional Elasticsearch ``_bulk``."""

from logtide.processors.sinks.config import MonitoringSettings
from logtide.processors.sinks.registry import SINKS


@SINKS.register("monitoring", MonitoringSettings)
def build(name: str, settings: MonitoringSettings, transport):
    from logtide.processors.sinks.monitoring.sink import MonitoringSink

    return MonitoringSink(settings)

"""The monitoring sink: counts into Prometheus, pushes to Loki and optionally Elasticsearch.

Order per batch: external outputs first (each raises Retry while down: the batch is held), then the
counters, so a retried batch is not counted twice.
"""

from __future__ import annotations

from logtide.processors.sinks.monitoring.elasticsearch import ElasticsearchOutput
from logtide.processors.sinks.monitoring.loki import LokiOutput
from logtide.processors.sinks.monitoring.metrics import LogMetrics
from logtide.processors.sinks.service import Item, SinkBase


class MonitoringSink(SinkBase):
    name = "monitoring"

    def __init__(self, settings):
        self.metrics = LogMetrics(settings.metrics)
        self.outputs = [
            o
            for o in (
                LokiOutput(settings.loki) if settings.loki else None,
                ElasticsearchOutput(settings.elasticsearch) if settings.elasticsearch else None,
            )
            if o
        ]

    def write(self, items: list[Item]) -> None:
        events = [it.event for it in items]
        for out in self.outputs:
            out.write(events)
        self.metrics.observe(events)

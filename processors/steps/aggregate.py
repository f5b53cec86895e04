"""aggregate: tumbling windows that turn logs into counters — events and errors per service, source
and severity — exposed as Prometheus metrics and optionally produced to a topic.

Windows are by event time (``time``, else ``observed_time``); a window closes ``grace_seconds`` after its
end on the wall clock, later events for it are counted as late. Label values come from data, so the
number of series is bounded (``max_series``): further combinations share an ``__overflow__`` series.
Events pass through unchanged.
"""

from __future__ import annotations

import time

import orjson
from prometheus_client import Counter, Gauge
from pydantic import Field

from logtide.condition import field_getter, parse_field
from logtide.processors.steps.base import Step, StepConfig, register

WINDOW_EVENTS = Gauge(
    "logtide_processor_window_events", "Events in the last closed window", ["step", "service", "source", "severity"]
)
WINDOW_ERRORS = Gauge(
    "logtide_processor_window_errors",
    "Events of severity ERROR or worse in the last closed window",
    ["step", "service", "source"],
)
AGG_EVENTS = Counter(
    "logtide_processor_aggregated_events_total",
    "Events counted into windows",
    ["step", "service", "source", "severity"],
)
LATE_EVENTS = Counter("logtide_processor_late_events_total", "Events for an already closed window", ["step"])

OVERFLOW = "__overflow__"


class AggregateConfig(StepConfig):
    window_seconds: int = Field(default=60, gt=0, description="tumbling window length")
    grace_seconds: float = Field(default=5.0, ge=0, description="wait this long after a window's end for late events")
    service: str = Field(default="resource.service.name", description="field of the service label")
    max_series: int = Field(default=500, gt=0, description="distinct (service, source, severity) before overflow")
    topic: str | None = Field(default=None, description="also produce each closed window's counts here (JSON)")


@register("aggregate")
class Aggregate(Step):
    Config = AggregateConfig

    def __init__(self, config: AggregateConfig, ctx, clock=time.time):
        super().__init__(config, ctx)
        self.size_ns = config.window_seconds * 1_000_000_000
        self.grace_ns = int(config.grace_seconds * 1e9)
        self._service = field_getter(parse_field(config.service))
        self.max_series = config.max_series
        self.topic = config.topic
        self.clock = clock
        self.windows: dict[int, dict[tuple, list[int]]] = {}  # window start ns → series → [events, errors]
        self.series: set[tuple] = set()
        self.closed_until = 0
        self.late = 0
        self.emitted: list[dict] = []  # closed windows (kept for the produce and for tests)

    def process(self, event: dict) -> dict:
        t = event.get("time") or event.get("observed_time") or 0
        start = t - t % self.size_ns
        if start < self.closed_until:
            self.late += 1
            return event
        svc = self._service(event)
        sev = event["severity_text"] or "UNSPECIFIED"
        key = (svc if isinstance(svc, str) else str(svc), event["source"], sev)
        if key not in self.series:
            if len(self.series) >= self.max_series:
                key = (OVERFLOW, OVERFLOW, OVERFLOW)
            self.series.add(key)
        window = self.windows.get(start)
        if window is None:
            window = self.windows[start] = {}
        counts = window.get(key)
        if counts is None:
            counts = window[key] = [0, 0]
        counts[0] += 1
        if event["severity_number"] >= 17:
            counts[1] += 1
        return event

    def end_batch(self, now_ns: int | None = None) -> None:
        now = now_ns if now_ns is not None else int(self.clock() * 1e9)
        if self.late:
            LATE_EVENTS.labels(self.name).inc(self.late)
            self.late = 0
        for start in sorted(self.windows):
            if start + self.size_ns + self.grace_ns > now:
                break
            self._close(start, self.windows.pop(start))
            self.closed_until = start + self.size_ns

    def _close(self, start: int, window: dict[tuple, list[int]]) -> None:
        errors: dict[tuple, int] = {}
        for (svc, src, sev), (n, err) in window.items():
            WINDOW_EVENTS.labels(self.name, svc, src, sev).set(n)
            AGG_EVENTS.labels(self.name, svc, src, sev).inc(n)
            errors[(svc, src)] = errors.get((svc, src), 0) + err
            row = {
                "window_start": start,
                "window_end": start + self.size_ns,
                "service": svc,
                "source": src,
                "severity": sev,
                "events": n,
                "errors": err,
            }
            self.emitted.append(row)
            if self.topic and self.ctx.producer is not None:
                self.ctx.producer.produce(self.topic, orjson.dumps(row), key=svc.encode())
        for (svc, src), err in errors.items():
            WINDOW_ERRORS.labels(self.name, svc, src).set(err)
        del self.emitted[:-1000]

    def close(self) -> None:
        # at shutdown, publish what was counted so far (the windows are not reopened after a restart)
        self.end_batch(now_ns=2**62)

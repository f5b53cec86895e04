"""The processor role: a consumer-group member that reads ``logtide.raw.*``, runs the pipeline and
produces to ``logtide.route.<sink>``.

Per batch (``logtide.consume.BatchLoop``): decode each envelope (a bad one goes to the DLQ with the
reason), run the pipeline (an event a step cannot handle goes to the DLQ with the step's name),
encode each output once and produce it to each of its sinks' topics with the input key (so one stream
keeps its order) and no headers (the value says everything; an input's headers are not passed on),
then flush. The handler returns only when every output was acknowledged; only then does the loop
commit the input offsets: at-least-once. A failed delivery makes the whole batch retry (its events
carry the same ids, so sinks drop the duplicates).
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import Counter, Histogram
from pydantic import Field, field_validator

from logtide import envelope, log
from logtide.config import ConfigError, load_config
from logtide.consume import BatchLoop, Retry
from logtide.dlq import DeadLetters
from logtide.envelope import MAX_DEPTH, EnvelopeError
from logtide.role import Role, RoleConfig, Runtime
from logtide.topics import DLQ, ROUTE_PREFIX, dlq_spec, route_spec
from logtide.transport import Record, TopicSpec, Transport
from logtide.processors.pipeline import Pipeline, StepError
from logtide.processors.steps import StepContext
from logtide.processors.steps.base import bounded_label

_log = log.get("processors.app")

COMPONENT = "processor"
DEFAULT_PIPELINE_FILE = Path(__file__).with_name("default_pipeline.yaml")

OUTPUTS = Counter("logtide_processor_outputs_total", "Events produced to route topics", ["sink"])
UNROUTED = Counter("logtide_processor_unrouted_total", "Events left without any sink after the pipeline")
EVENT_LAG = Histogram(
    "logtide_processor_event_lag_seconds",
    "Ingest time minus event time of processed events",
    ["source"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400),
)
DLQ_HEADER_SIZE = "logtide.dlq.original_size"


def observe_many(hist, values: list[float]) -> None:
    """``hist.observe(v)`` for each value, counted per bucket first (one increment per bucket touched,
    not per value); falls back to ``observe`` if prometheus_client's histogram internals change."""
    bounds, buckets, total = (
        getattr(hist, "_upper_bounds", None),
        getattr(hist, "_buckets", None),
        getattr(hist, "_sum", None),
    )
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for v in values:
            hist.observe(v)
        return
    hist._raise_if_not_observable()
    counts = [0] * len(bounds)
    for v in values:
        counts[bisect_left(bounds, v)] += 1  # the first bound >= v, as observe picks it
    for i, n in enumerate(counts):
        if n:
            buckets[i].inc(n)
    total.inc(sum(values))


class ProcessorConfig(RoleConfig):
    """``logtide process`` config (examples/process.yaml)."""

    group_id: str = Field(default="logtide-processors", description="consumer group: replicas share partitions")
    topics: list[str] = Field(
        default_factory=lambda: ["logtide.raw.*"], description="input topics; '*' makes a pattern subscription"
    )
    sinks: list[str] = Field(
        default_factory=lambda: ["monitoring", "audit", "analytics"], description="sinks routes may name"
    )
    route_prefix: str = Field(default=ROUTE_PREFIX, description="output topic = prefix + sink")
    dlq_topic: str = DLQ
    max_batch: int = Field(default=2000, gt=0)
    max_value_bytes: int = Field(default=1_048_576, gt=0, description="larger records go to the DLQ (truncated)")
    session_timeout_seconds: float = Field(default=45, ge=1)
    flush_timeout_seconds: float = Field(default=30.0, gt=0, description="a batch not acked within this is retried")
    create_topics: bool = Field(default=True, description="create missing route topics at start")
    partitions: int = Field(default=3, gt=0, description="partitions of route topics created at start")
    pipeline: list[Any] | None = Field(default=None, description="ordered steps; default: the demo pipeline")

    @field_validator("sinks")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        for s in v:
            if not re.fullmatch(r"[A-Za-z0-9._-]+", s):
                raise ValueError(f"sink name {s!r} must be a valid topic suffix")
        return v


def load(path: str | None) -> ProcessorConfig:
    """Load and validate the config file, pipeline included (ConfigError names file:line)."""
    if path is None:
        return ProcessorConfig()
    return load_config(path, ProcessorConfig)


def topic_subscription(topics: list[str]) -> tuple[list[str], bool]:
    """Topic names, or regexes when any name has a '*' (confluent wants them all as patterns then)."""
    if not any("*" in t for t in topics):
        return topics, False
    return ["^" + re.escape(t).replace(r"\*", ".*") + ("" if t.endswith("*") else "$") for t in topics], True


def build_pipeline(config: ProcessorConfig, filename: str, ctx: StepContext) -> Pipeline:
    entries = config.pipeline
    if entries is None:
        from logtide.config import load_yaml

        filename = str(DEFAULT_PIPELINE_FILE)
        entries = load_yaml(DEFAULT_PIPELINE_FILE)["pipeline"]
        # the file's own line numbers still apply to its entries
    return Pipeline.from_config(entries, ctx, filename)


class Processor:
    """One processor replica (a ``logtide up``/``run_services`` service)."""

    name = "processor"

    def __init__(self, config: ProcessorConfig, transport: Transport, pipeline: Pipeline, ctx: StepContext):
        self.config = config
        self.transport = transport
        self.pipeline = pipeline
        # Failures only: an output is acknowledged when flush() leaves nothing pending and no failure was
        # reported (no Python call per acknowledged record).
        self.producer = transport.producer(linger_ms=5, report_successes=False)
        ctx.transport, ctx.producer = transport, self.producer
        self.dlq = DeadLetters(self.producer, COMPONENT, topic=config.dlq_topic)
        self.topics = {s: config.route_prefix + s for s in config.sinks}
        self._senders = {s: self.producer.bind(t, self._delivered) for s, t in self.topics.items()}
        self.max_value = config.max_value_bytes
        self.delivery_errors = 0
        self.processed = 0
        self._out_counters = {s: OUTPUTS.labels(s) for s in config.sinks}
        self._sources: set[str] = set()
        self._lag_metrics: dict[str, Any] = {}
        subs, pattern = topic_subscription(config.topics)
        overrides = {"topic.metadata.refresh.interval.ms": 5000} if transport.name == "confluent" else {}
        self.loop = BatchLoop(
            transport,
            component=COMPONENT,
            group_id=config.group_id,
            topics=subs,
            handler=self.handle,
            max_batch=config.max_batch,
            pattern=pattern,
            session_timeout_seconds=config.session_timeout_seconds,
            **overrides,
        )

    def ready(self) -> bool:
        return self.loop.ready()

    def ensure_topics(self) -> None:
        admin = self.transport.admin()
        try:
            admin.create_topics(output_topics(self.config))
        finally:
            admin.close()

    def _delivered(self, err, rec) -> None:
        if err is not None:
            self.delivery_errors += 1

    def _dead(self, rec: Record, stage: str, error: BaseException | str) -> None:
        self.dlq.send(rec, stage, error)

    def handle(self, records: list[Record]) -> None:
        """Process one batch; return only when every output is acknowledged (else raise Retry)."""
        errors_before, dlq_before = self.delivery_errors, self.dlq.failed
        senders = self._senders
        run = self.pipeline.run
        decode = envelope.decode
        dumps = orjson.dumps
        max_value = self.max_value
        counts: dict[str, int] = {}
        lags: dict[str, list[float]] = {}
        unrouted = 0
        for rec in records:
            value = rec.value
            if value is None:
                self._dead(rec, "decode", EnvelopeError("record has no value (tombstone)"))
                continue
            if len(value) > max_value:
                self._dead_too_large(rec)
                continue
            try:
                # Walking the whole event for its depth costs more than parsing it: only a value with
                # more brackets than the depth limit can be too deep (brackets inside strings only
                # make us check more often).
                event = decode(value, check_depth=value.count(b"{") + value.count(b"[") > MAX_DEPTH)
            except EnvelopeError as exc:
                self._dead(rec, "decode", exc)
                continue
            t, it = event.get("time"), event.get("ingest_time")
            if t is not None and it is not None:
                lag = lags.get(event["source"])
                if lag is None:
                    lag = lags[event["source"]] = []
                lag.append(it - t)
            try:
                outputs = run(event)
            except StepError as exc:
                self._dead(rec, exc.stage, exc.cause)
                continue
            if not outputs:
                continue
            key = rec.key
            for ev, sinks in outputs:
                if not sinks:
                    unrouted += 1
                    continue
                try:
                    data = dumps(ev)
                except TypeError as exc:
                    self._dead(rec, "encode", exc)
                    break
                for sink in sinks:
                    send = senders.get(sink)
                    if send is None:
                        self._dead(rec, "route", EnvelopeError(f"unknown sink {sink!r} in the event's routes"))
                        continue
                    send(data, key, None)
                    counts[sink] = counts.get(sink, 0) + 1
        self.pipeline.end_batch()
        remaining = self.producer.flush(self.config.flush_timeout_seconds)
        if remaining or self.delivery_errors != errors_before or self.dlq.failed != dlq_before:
            raise Retry(
                f"{remaining} outputs unacknowledged, {self.delivery_errors - errors_before} refused, "
                f"{self.dlq.failed - dlq_before} DLQ writes refused"
            )
        self.processed += len(records)
        for sink, n in counts.items():
            self._out_counters[sink].inc(n)
        if unrouted:
            UNROUTED.inc(unrouted)
        for source, values in lags.items():
            self._observe_lag(source, values)

    def _observe_lag(self, source: str, values_ns: list[int]) -> None:
        label = bounded_label(self._sources, source, 50)
        hist = self._lag_metrics.get(label)
        if hist is None:
            hist = self._lag_metrics[label] = EVENT_LAG.labels(label)
        observe_many(hist, [v / 1e9 for v in values_ns])

    def _dead_too_large(self, rec: Record) -> None:
        """The DLQ gets the head of an oversized value (the broker would refuse the whole of it)."""
        size = len(rec.value)
        head = Record(
            rec.topic,
            rec.partition,
            rec.offset,
            rec.key,
            rec.value[:65536],
            list(rec.headers) + [(DLQ_HEADER_SIZE, str(size).encode())],
            rec.timestamp,
        )
        self._dead(
            head,
            "decode",
            EnvelopeError(f"value of {size} bytes is over max_value_bytes {self.max_value} (first 64 KiB kept)"),
        )

    def run(self, stop: threading.Event) -> None:
        self.pipeline.start()
        try:
            self.loop.run(stop)
        finally:
            self.pipeline.close()
            self.producer.flush(self.config.flush_timeout_seconds)
            self.producer.close()
            _log.info("processor stopped", extra={"processed": self.processed})


def output_topics(config: ProcessorConfig) -> list[TopicSpec]:
    """The route topics of every sink the config names, and the DLQ."""
    return [route_spec(config.route_prefix + s, config.partitions) for s in config.sinks] + [dlq_spec(config.dlq_topic)]


def make_processor(config: ProcessorConfig, transport: Transport, filename: str = "<config>") -> Processor:
    """The one way a processor is built (`logtide process`, `logtide up`, tests, benches)."""
    ctx = StepContext(sinks=tuple(config.sinks), component=COMPONENT)
    pipeline = build_pipeline(config, filename, ctx)
    return Processor(config, transport, pipeline, ctx)


class ProcessorRole(Role):
    """`logtide process`: logtide.raw.* → the pipeline → logtide.route.<sink> (and the DLQ)."""

    name = "process"
    config_model = ProcessorConfig

    def load_file(self, path: str) -> ProcessorConfig:
        return load(path)

    def default_config(self, args) -> ProcessorConfig:
        return ProcessorConfig()

    def configure(self, config: ProcessorConfig, args) -> ProcessorConfig:
        if getattr(args, "group", None):
            config = config.model_copy(update={"group_id": args.group})
        return config

    def reads(self, config: ProcessorConfig) -> list[str]:
        return list(config.topics)

    def writes(self, config: ProcessorConfig) -> list[TopicSpec]:
        return output_topics(config) if config.create_topics else []

    def installation_topics(self, partitions: int) -> list[TopicSpec]:
        return [dlq_spec()]

    def _pipeline(self, config: ProcessorConfig, filename: str) -> Pipeline:
        return build_pipeline(config, filename, StepContext(sinks=tuple(config.sinks), component=COMPONENT))

    def problems(self, config: ProcessorConfig, filename: str) -> list[str]:
        try:
            self._pipeline(config, filename)
        except ConfigError as exc:
            return str(exc).splitlines()
        return []

    def describe(self, config: ProcessorConfig) -> str:
        steps = self._pipeline(config, "<config>").steps
        return f"{len(steps)} steps: {', '.join(s.name for s in steps)}"

    def services(self, config: ProcessorConfig, runtime: Runtime) -> list:
        return [make_processor(config, runtime.transport)]

    def up_config(self, ctx) -> ProcessorConfig:
        """The demo pipeline (or roles.20-process.config FILE), a short group session on one machine."""
        options = dict(ctx.options or {})
        path = options.pop("config", None)
        # On one machine a group join takes about half the session timeout (embedded broker): keep it short.
        options.setdefault("session_timeout_seconds", 10)
        if path:
            config = load(path).model_copy(update={"session_timeout_seconds": options["session_timeout_seconds"]})
        else:
            options.setdefault("partitions", ctx.partitions)
            config = ProcessorConfig.model_validate(options)
        return config.model_copy(update={"kafka": ctx.kafka})


ROLE = ProcessorRole()


def up(ctx) -> list:
    """`logtide up` part: one processor with the demo pipeline (or roles.20-process.config FILE)."""
    return ROLE.up(ctx)


__all__ = ["ConfigError", "Processor", "ProcessorConfig", "ROLE", "load", "make_processor", "up"]

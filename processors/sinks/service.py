"""One sink as a service: a consumer group on its route topic driven by ``BatchLoop``.

The handler decodes each record (bad ones go to the DLQ), drops duplicate ids, hands the rest to the
sink's ``write`` and returns only when the sink says they are durable; then ``BatchLoop`` commits.
A sink raises ``logtide.consume.Retry`` when its destination is down: nothing is committed, the same
batch comes again after a backoff, and readiness is false meanwhile.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Counter, Histogram

from logtide import envelope, log
from logtide.consume import BatchLoop, Retry
from logtide.dlq import DeadLetters
from logtide.transport import Record, TopicPartition, Transport

from logtide.processors.sinks.dedup import RecentIds

_log = log.get("processors.sinks")

WRITTEN = Counter("logtide_sink_events_written_total", "Events written durably by a sink", ["sink"])
DUPLICATES = Counter(
    "logtide_sink_duplicates_dropped_total", "Events dropped because their id was already written", ["sink"]
)
DECODE_ERRORS = Counter(
    "logtide_sink_decode_errors_total", "Records that were not valid envelopes (sent to the DLQ)", ["sink"]
)
WRITE_SECONDS = Histogram(
    "logtide_sink_write_seconds",
    "Time to write one batch durably",
    ["sink"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


@dataclass(slots=True)
class Item:
    """One decoded event with the record it came from (partition and offset matter to some sinks)."""

    record: Record
    event: dict

    @property
    def id(self) -> str:
        return self.event["id"]


class Sink(Protocol):
    name: str

    def write(self, items: list[Item]) -> None:
        """Write durably or raise Retry. ``items`` are already free of known duplicates."""

    def ready(self) -> bool: ...

    def assigned(self, parts: list[TopicPartition]) -> None: ...

    #: Seconds between ``tick()`` calls while idle or busy (0 = the sink has no timed work).
    tick_interval: float

    def tick(self) -> None:
        """Timed work between batches (roll an old segment, retry an upload); never raises Retry."""

    def revoked(self, parts: list[TopicPartition]) -> None: ...

    def close(self) -> None: ...


class SinkBase:
    """Defaults for the optional parts of ``Sink``."""

    name = "sink"
    tick_interval = 0.0

    def tick(self) -> None:
        pass

    def ready(self) -> bool:
        return True

    def assigned(self, parts: list[TopicPartition]) -> None:
        pass

    def revoked(self, parts: list[TopicPartition]) -> None:
        pass

    def close(self) -> None:
        pass


class SinkService:
    """Runs one sink until stop; ``ready()`` is false while a batch waits for its destination."""

    def __init__(
        self,
        transport: Transport,
        sink: Sink,
        *,
        topic: str,
        group_id: str,
        max_batch: int = 2000,
        session_timeout_seconds: float = 45,
        dedup_capacity: int = 200_000,
        status=None,
    ):
        self.sink = sink
        self.name = f"sink-{sink.name}"
        self.producer = transport.producer()
        self.dlq = DeadLetters(self.producer, self.name)
        self.recent = RecentIds(dedup_capacity)
        #: Serializes the sink between the consumer thread (write, rebalances) and the ticker.
        self._lock = threading.Lock()
        self.loop = BatchLoop(
            transport,
            component=self.name,
            group_id=group_id,
            topics=[topic],
            handler=self.handle,
            max_batch=max_batch,
            session_timeout_seconds=session_timeout_seconds,
            on_assign=self._locked(sink.assigned),
            on_revoke=self._locked(sink.revoked),
            status=status,
        )
        self._written = WRITTEN.labels(sink.name)
        self._dups = DUPLICATES.labels(sink.name)
        self._bad = DECODE_ERRORS.labels(sink.name)
        self._seconds = WRITE_SECONDS.labels(sink.name)

    def _locked(self, fn):
        def call(*args):
            with self._lock:
                return fn(*args)

        return call

    def ready(self) -> bool:
        return self.loop.ready() and self.sink.ready()

    def _ticker(self, done: threading.Event) -> None:
        while not done.wait(self.sink.tick_interval):
            try:
                with self._lock:
                    self.sink.tick()
            except Exception:  # noqa: BLE001 - timed housekeeping must not kill the sink; logged
                _log.exception("sink tick failed", extra={"sink": self.sink.name})

    def handle(self, records: list[Record]) -> None:
        items: list[Item] = []
        bad: list[tuple[Record, Exception]] = []
        for rec in records:
            try:
                if rec.value is None:
                    raise envelope.EnvelopeError("empty record value (tombstone)")
                items.append(Item(rec, envelope.decode(rec.value)))
            except envelope.EnvelopeError as exc:
                bad.append((rec, exc))
        fresh, dropped = self.recent.fresh(items, lambda it: it.event["id"])
        if fresh:
            started = time.perf_counter()
            with self._lock:
                self.sink.write(fresh)  # raises Retry when the destination is down: nothing below happens
            self._seconds.observe(time.perf_counter() - started)
            self.recent.add(it.event["id"] for it in fresh)
            self._written.inc(len(fresh))
        if dropped:
            self._dups.inc(dropped)
        if bad:
            # After the write: a Retry above must not send the same bad records twice.
            for rec, exc in bad:
                self.dlq.send(rec, f"sink-{self.sink.name}-decode", exc)
            self._bad.inc(len(bad))
            if self.producer.flush(30) > 0 or self.dlq.failed:
                self.dlq.failed = 0
                raise Retry("dead letters not acknowledged by Kafka")

    def run(self, stop: threading.Event) -> None:
        done = threading.Event()  # the ticker stops with the loop, whether it stopped or crashed
        ticker = None
        if self.sink.tick_interval > 0:
            ticker = threading.Thread(target=self._ticker, args=(done,), name=f"{self.name}-tick", daemon=True)
            ticker.start()
        try:
            self.loop.run(stop)
        finally:
            done.set()
            if ticker is not None:
                ticker.join(30)
            try:
                self.sink.close()
            finally:
                self.producer.flush(10)
                self.producer.close()
                _log.info("sink stopped", extra={"sink": self.sink.name, "handled": self.loop.handled})

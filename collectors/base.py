"""What every pull collector shares: its metrics, backoff, shipping a batch and waiting for Kafka's
acks, and checkpoints in the compacted topic (moved only after those acks).

A collector (CloudWatch, Salesforce, Kubernetes API) names its work items and runs one item at a time
per thread (``run_item(item, stop)``); ``collectors.work.WorkGroup`` decides which items this replica
owns. Inside an item the loop is always: read a page from the source → ``Shipper.ship(events)`` (waits
for every ack) → ``Checkpoints.put(...)``. A crash between the two re-reads the page: the events come
again with the same deterministic ids (at-least-once, duplicates dropped downstream by id).
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Iterable

from prometheus_client import Counter, Gauge

from logtide import log
from logtide.checkpoint import KafkaCheckpoints
from logtide.sender import EventSender
from logtide.transport import Producer, Transport

_log = log.get("collectors")

EVENTS = Counter("logtide_collector_events_total", "Events a collector shipped and Kafka acknowledged", ["collector"])
API_CALLS = Counter(
    "logtide_collector_api_calls_total", "Calls a collector made to its source API", ["collector", "call"]
)
THROTTLES = Counter(
    "logtide_collector_throttles_total",
    "Times the source API throttled a collector or its limit made it back off",
    ["collector"],
)
ERRORS = Counter(
    "logtide_collector_errors_total", "Errors a collector met, by kind (it retries them)", ["collector", "kind"]
)
DUPLICATES = Counter(
    "logtide_collector_duplicates_dropped_total",
    "Events read again (overlap windows, resumes) and dropped by id before shipping",
    ["collector"],
)
CHECKPOINT_AGE = Gauge(
    "logtide_collector_checkpoint_age_seconds",
    "Seconds since a work item's checkpoint last moved",
    ["collector", "item"],
)
SOURCE_LAG = Gauge(
    "logtide_collector_source_lag_seconds",
    "How far behind the source a work item is: now minus the time up to which it was fully read",
    ["collector", "item"],
)
WORK_ITEMS = Gauge("logtide_collector_work_items", "Work items this replica owns now", ["collector"])
ITEMS_FAILING = Gauge(
    "logtide_collector_work_items_failing",
    "Work items of this replica whose last attempt failed (they retry with backoff)",
    ["collector"],
)


_LEVEL = re.compile(r"\b(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|CRITICAL|FATAL)\b")


def sniff_severity(message: str) -> str:
    """The first upper-case level word near the start of a plain log line ("" when none)."""
    m = _LEVEL.search(message[:120])
    return m.group(1) if m else ""


class Stopped(Exception):
    """The stop event was set while waiting; unwind and checkpoint what was acknowledged."""


class ShipError(Exception):
    """Kafka did not acknowledge every event of a batch: the checkpoint must not move."""


class CollectorMetrics:
    """The metric children of one collector (labels bound once)."""

    def __init__(self, collector: str):
        self.collector = collector
        self.events = EVENTS.labels(collector)
        self.throttles = THROTTLES.labels(collector)
        self.duplicates = DUPLICATES.labels(collector)
        self.work_items = WORK_ITEMS.labels(collector)

    def api_call(self, call: str) -> None:
        API_CALLS.labels(self.collector, call).inc()

    def error(self, kind: str) -> None:
        ERRORS.labels(self.collector, kind).inc()

    def lag(self, item: str, seconds: float) -> None:
        SOURCE_LAG.labels(self.collector, item).set(max(0.0, seconds))


class Backoff:
    """Exponential backoff with full jitter; ``reset()`` after a success."""

    def __init__(self, initial: float = 0.5, maximum: float = 60.0):
        self.initial = initial
        self.maximum = maximum
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * (2**self.attempt))
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def wait(self, stop: threading.Event) -> None:
        """Sleep the next delay; raise Stopped when stop is set meanwhile."""
        if stop.wait(self.next_delay()):
            raise Stopped()

    def wait_quietly(self, stop: threading.Event) -> None:
        """Sleep the next delay or until stop is set (the caller checks stop itself)."""
        stop.wait(self.next_delay())

    def reset(self) -> None:
        self.attempt = 0


class Shipper:
    """Sends events of one work item and waits until Kafka acknowledged all of them.

    Several items' threads share one producer; each has its own Shipper, so its acks are counted apart.
    Delivery callbacks may be served by another thread's poll(): the count is guarded by a condition.
    """

    def __init__(self, producer: Producer, collector: str, metrics: CollectorMetrics, ack_timeout: float = 60.0):
        self.sender = EventSender(producer, f"collector-{collector}")
        self.metrics = metrics
        self.ack_timeout = ack_timeout
        self._cond = threading.Condition()
        self._pending = 0
        self._sent = 0
        self._failed: list[Exception] = []

    def _acked(self, event: dict) -> None:
        with self._cond:
            self._pending -= 1
            self._cond.notify_all()

    def _refused(self, event: dict, err: Exception) -> None:
        with self._cond:
            self._pending -= 1
            self._failed.append(err)
            self._cond.notify_all()

    def send(self, topic: str, event: dict, key: bytes | None) -> None:
        """Queue one event without waiting; ``confirm()`` waits for the acks of everything sent."""
        with self._cond:
            self._pending += 1
            self._sent += 1
        self.sender.send(topic, event, key, on_ack=self._acked, on_error=self._refused)
        if self._sent % 1000 == 0:
            self.sender.poll(0)

    def confirm(self) -> int:
        """Wait until Kafka acknowledged every event sent since the last confirm; return how many,
        or raise ShipError (then nothing since the last confirm may be checkpointed)."""
        deadline = time.monotonic() + self.ack_timeout
        while True:
            self.sender.poll(0.05)
            with self._cond:
                if self._pending <= 0:
                    break
                if time.monotonic() > deadline:
                    # _pending keeps counting the late ones: a later confirm waits for them too, so
                    # nothing is ever checkpointed ahead of an ack (their failures fail it, conservatively).
                    self._sent = 0
                    raise ShipError(f"events not acknowledged by Kafka within {self.ack_timeout}s")
                self._cond.wait(0.05)
        with self._cond:
            count, failed = self._sent, list(self._failed)
            self._sent = 0
            self._failed.clear()
        if failed:
            raise ShipError(f"Kafka refused {len(failed)} of {count} events: {failed[0]}")
        self.metrics.events.inc(count)
        return count

    def ship(self, topic: str, events: Iterable[tuple[dict, bytes | None]]) -> int:
        """Send (event, key) pairs and wait for all acks; return how many, or raise ShipError."""
        for event, key in events:
            self.send(topic, event, key)
        return self.confirm()


class Checkpoints:
    """Thread-safe view of the collector's checkpoints in ``logtide.checkpoints`` (namespace
    ``collect.<collector>``), recording each item's checkpoint age for the metric."""

    def __init__(self, transport: Transport, collector: str):
        self.collector = collector
        self._store = KafkaCheckpoints(transport, f"collect.{collector}")
        self._lock = threading.Lock()
        self._moved: dict[str, float] = {}

    def reload(self) -> None:
        """Read the topic again: items just taken over from another replica resume from its last put."""
        with self._lock:
            self._store.reload()

    def get(self, key: str) -> dict | None:
        with self._lock:
            return self._store.get(key)

    def put(self, item: str, key: str, value: dict) -> None:
        """Write one checkpoint (returns once Kafka acknowledged it) and note the item's progress."""
        with self._lock:
            self._store.put(key, value)
        self.touch(item)

    def put_many(self, item: str, values: dict[str, dict]) -> None:
        with self._lock:
            self._store.put_many(values)
        self.touch(item)

    def delete(self, key: str) -> None:
        with self._lock:
            self._store.delete(key)

    def keys(self, prefix: str) -> list[str]:
        with self._lock:
            return [k for k, _ in self._store.items() if k.startswith(prefix)]

    def touch(self, item: str) -> None:
        first = item not in self._moved
        self._moved[item] = time.time()
        if first:
            CHECKPOINT_AGE.labels(self.collector, item).set_function(lambda: time.time() - self._moved[item])

    def close(self) -> None:
        self._store.close()


def log_error(collector: str, kind: str, message: str, **fields) -> None:
    """One structured log line per error (messages never carry secrets)."""
    _log.warning(message, extra={"collector": collector, "kind": kind, **fields})


class ItemStatus:
    """The failure state of one work item: the one place where its failures and recoveries are
    recorded (``ItemHealth`` sums them up for the role's health and the metric).

    A failure is logged once as one line naming cause and fix, then repeated at most every
    ``reminder_seconds`` while it lasts (a retry loop must not flood the log); the error counter
    counts every occurrence. A traceback is logged only for the first unexpected error.
    """

    def __init__(self, health: ItemHealth, item: str):
        self.health = health
        self.item = item
        self.kind: str | None = None  # the failure in progress, None when the last attempt succeeded
        self.since = 0.0
        self._logged_at = 0.0
        self._tracebacks = 0

    def failed(self, kind: str, message: str, exc: BaseException | None = None, **fields) -> None:
        self.health.metrics.error(kind)
        now = time.monotonic()
        first = self.kind != kind
        if first:
            self.since = now
        self.kind = kind
        self.health.changed()
        if self.health.service_status is not None and not self.health.healthy():
            self.health.service_status.failed(f"work item {self.item}: {kind}: {message}"[:500])
        if first or now - self._logged_at >= self.health.reminder_seconds:
            self._logged_at = now
            traceback = exc is not None and self._tracebacks == 0
            self._tracebacks += traceback
            extra = {"collector": self.health.collector, "item": self.item, "kind": kind, **fields}
            if not first:
                extra["failing_seconds"] = round(now - self.since)
            _log.warning(message, exc_info=exc if traceback else None, extra=extra)

    def recovered(self) -> None:
        if self.kind is None:
            return
        _log.info(
            "work item recovered",
            extra={
                "collector": self.health.collector,
                "item": self.item,
                "kind": self.kind,
                "failing_seconds": round(time.monotonic() - self.since),
            },
        )
        self.kind = None
        self.health.changed()


class ItemHealth:
    """The failure state of a collector's work items on this replica.

    ``healthy()`` is False while every owned item fails (IAM permission missing, no credentials, source
    unreachable): the hook for the role's /healthz. Items are registered when run and dropped when given up.
    """

    def __init__(self, metrics: CollectorMetrics, reminder_seconds: float = 300.0):
        self.metrics = metrics
        self.collector = metrics.collector
        self.reminder_seconds = reminder_seconds
        self._items: dict[str, ItemStatus] = {}
        self._lock = threading.Lock()
        self._gauge = ITEMS_FAILING.labels(self.collector)
        #: The role's ``logtide.health.ServiceStatus``, told of failures while no owned item works.
        self.service_status = None

    def status(self, item: str) -> ItemStatus:
        with self._lock:
            st = self._items.get(item)
            if st is None:
                st = self._items[item] = ItemStatus(self, item)
            return st

    def release(self, item: str) -> None:
        with self._lock:
            self._items.pop(item, None)
        self.changed()

    def failing(self) -> dict[str, str]:
        """Failing items and the kind of their failure."""
        with self._lock:
            return {i: s.kind for i, s in self._items.items() if s.kind is not None}

    def healthy(self) -> bool:
        with self._lock:
            return not self._items or any(s.kind is None for s in self._items.values())

    def changed(self) -> None:
        self._gauge.set(len(self.failing()))


class PullCollector:
    """Base of the three collectors: metrics, checkpoints, one producer shared by the item threads."""

    name = "collector"
    topic = ""

    def __init__(self, transport: Transport):
        self.transport = transport
        self.metrics = CollectorMetrics(self.name)
        self.checkpoints = Checkpoints(transport, self.name)
        self.health = ItemHealth(self.metrics)
        self.producer = transport.producer()

    def shipper(self) -> Shipper:
        return Shipper(self.producer, self.name, self.metrics)

    def work_items(self) -> list[str]:
        raise NotImplementedError

    def run_item(self, item: str, stop: threading.Event) -> None:
        raise NotImplementedError

    def close(self) -> None:
        try:
            self.producer.close()
        finally:
            self.checkpoints.close()

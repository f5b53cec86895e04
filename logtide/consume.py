"""The consume → handle → commit loop that processors, sinks and alerting share.

At-least-once: the handler gets a batch of records and returns only when everything it produced or
wrote for them is durable (Kafka acked, file fsync'd, rows committed); only then are the batch's
offsets committed. If the handler raises ``Retry`` (a sink is down), the same batch is handed again
after a backoff and no offset moves; readiness turns false meanwhile. Any other exception from the
handler is a bug in that component and stops the loop (the role exits non-zero and restarts).

A topic that does not exist yet (the sink started before the processor created its route topic) is
waited for, readiness false with the reason, and consumed from its start once it appears: pods may
start in any order. Pattern subscriptions pick new topics up by themselves.

Rebalances happen inside ``poll_batch`` — between batches — so a revoked partition never has work
in flight; ``on_revoke`` lets a component drop per-partition state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge

from logtide import log
from logtide.transport import Record, TopicPartition, Transport, TransportError

_log = log.get("logtide.consume")

RECORDS = Counter("logtide_consumer_records_total", "Records consumed and handled", ["component", "topic"])
COMMITS = Counter("logtide_consumer_commits_total", "Offset commits after durable handling", ["component"])
COMMIT_ERRORS = Counter("logtide_consumer_commit_errors_total", "Offset commits that failed", ["component"])
RETRIES = Counter("logtide_consumer_retries_total", "Batches handed again after a retriable failure", ["component"])
LAG = Gauge(
    "logtide_consumer_lag_records",
    "Records between the committed position and the end of the partition",
    ["component", "group", "topic", "partition"],
)


class Retry(Exception):
    """Raised by a handler: the batch could not be made durable now (e.g. sink unreachable); retry it."""


Handler = Callable[[list[Record]], None]


class BatchLoop:
    name: str

    def __init__(
        self,
        transport: Transport,
        *,
        component: str,
        group_id: str,
        topics: list[str],
        handler: Handler,
        max_batch: int = 2000,
        poll_timeout: float = 0.5,
        session_timeout_seconds: float = 45,
        pattern: bool = False,
        on_assign: Callable[[list[TopicPartition]], None] | None = None,
        on_revoke: Callable[[list[TopicPartition]], None] | None = None,
        max_retry_backoff: float = 30.0,
        lag_interval: float = 5.0,
        status=None,
        **consumer_overrides,
    ):
        self.name = component
        self.transport = transport
        self.component = component
        self.group_id = group_id
        self.topics = topics
        self.handler = handler
        self.max_batch = max_batch
        self.poll_timeout = poll_timeout
        self.session_timeout_seconds = session_timeout_seconds
        self.pattern = pattern
        self._on_assign, self._on_revoke = on_assign, on_revoke
        self.max_retry_backoff = max_retry_backoff
        self.lag_interval = lag_interval
        self.consumer_overrides = consumer_overrides
        self.assigned: set[TopicPartition] = set()
        self.healthy = True  # false while a batch waits for a retry
        #: the ``logtide.health.ServiceStatus`` the loop tells what it waits for (optional)
        self.status = status
        self.waiting_for: list[str] = []
        self.handled = 0
        self._positions: dict[TopicPartition, int] = {}
        self._counters: dict[str, Counter] = {}

    # readiness for the health server
    def ready(self) -> bool:
        return self.healthy and not self.waiting_for

    def _missing_topics(self) -> list[str]:
        if self.pattern:
            return []
        try:
            admin = self.transport.admin()
            try:
                have = admin.list_topics()
            finally:
                admin.close()
        except TransportError as exc:
            return [f"(cannot list topics: {exc})"]
        return [t for t in self.topics if t not in have]

    def _wait_for_topics(self, stop: threading.Event) -> bool:
        """Wait until every input topic exists (false when stopped first)."""
        warned = 0.0
        while not stop.is_set():
            self.waiting_for = self._missing_topics()
            if not self.waiting_for:
                if self.status is not None:
                    self.status.ready()
                return True
            reason = f"waiting for input topics to exist: {', '.join(self.waiting_for)}"
            if self.status is not None:
                self.status.waiting(reason)  # logs it when it changes
            elif time.monotonic() - warned > 30:
                _log.warning(
                    "waiting for input topics to exist",
                    extra={"component": self.component, "missing": self.waiting_for},
                )
                warned = time.monotonic()
            stop.wait(1.0)
        return False

    def _assigned(self, parts: list[TopicPartition]) -> None:
        self.assigned.update(parts)
        if self._on_assign:
            self._on_assign(parts)

    def _revoked(self, parts: list[TopicPartition]) -> None:
        self.assigned.difference_update(parts)
        for tp in parts:
            self._positions.pop(tp, None)
            try:
                LAG.remove(self.component, self.group_id, tp.topic, str(tp.partition))
            except KeyError:
                pass
        if self._on_revoke:
            self._on_revoke(parts)

    def _handle_until_durable(self, batch: list[Record], stop: threading.Event) -> bool:
        backoff = 0.5
        while True:
            try:
                self.handler(batch)
                self.healthy = True
                return True
            except Retry as exc:
                self.healthy = False
                RETRIES.labels(self.component).inc()
                _log.warning(
                    "batch not durable, retrying",
                    extra={"component": self.component, "error": str(exc), "backoff_s": backoff},
                )
                if stop.wait(backoff):
                    return False  # stopping: the batch stays uncommitted and is read again after restart
                backoff = min(backoff * 2, self.max_retry_backoff)

    def _commit(self, consumer, batch: list[Record]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for rec in batch:
            tp = rec.tp
            if rec.offset + 1 > offsets.get(tp, -1):
                offsets[tp] = rec.offset + 1
        # A partition revoked during the batch's handling is not ours to commit any more.
        offsets = {tp: o for tp, o in offsets.items() if tp in self.assigned or not self.assigned}
        try:
            consumer.commit(offsets)
            COMMITS.labels(self.component).inc()
            self._positions.update(offsets)
        except TransportError as exc:
            # Not fatal: the records were handled; after a restart they come again with the same ids.
            COMMIT_ERRORS.labels(self.component).inc()
            _log.warning("offset commit failed", extra={"component": self.component, "error": str(exc)})

    def _count(self, batch: list[Record]) -> None:
        per_topic: dict[str, int] = {}
        for rec in batch:
            per_topic[rec.topic] = per_topic.get(rec.topic, 0) + 1
        for topic, n in per_topic.items():
            c = self._counters.get(topic)
            if c is None:
                c = self._counters[topic] = RECORDS.labels(self.component, topic)
            c.inc(n)

    def _update_lag(self, consumer) -> None:
        positions = dict(self._positions)  # a copy: the loop's thread updates it meanwhile
        if not positions:
            return
        try:
            ends = consumer.end_offsets(list(positions))
        except TransportError:
            return
        for tp, pos in positions.items():
            if tp in self._positions:  # not revoked meanwhile
                lag = max(0, ends.get(tp, pos) - pos)
                LAG.labels(self.component, self.group_id, tp.topic, str(tp.partition)).set(lag)

    def _lag_updates(self, done: threading.Event) -> None:
        """Consumer lag every ``lag_interval``, on a client and thread of its own: asking for end offsets
        is a broker round trip per partition (behind a pending fetch it waited ~0.5 s each on the
        embedded broker), which must not stall the batches."""
        client = None
        try:
            while not done.wait(self.lag_interval):
                if not self._positions:
                    continue
                try:
                    if client is None:
                        client = self.transport.consumer(None)  # never subscribes: only asks for end offsets
                    self._update_lag(client)
                except TransportError as exc:
                    _log.warning("consumer lag not measured", extra={"component": self.component, "error": str(exc)})
        finally:
            if client is not None:
                client.close()

    def run(self, stop: threading.Event) -> None:
        if not self._wait_for_topics(stop):
            return
        consumer = self.transport.consumer(
            self.group_id, session_timeout_seconds=self.session_timeout_seconds, **self.consumer_overrides
        )
        consumer.subscribe(self.topics, on_assign=self._assigned, on_revoke=self._revoked, pattern=self.pattern)
        done = threading.Event()
        lag = threading.Thread(target=self._lag_updates, args=(done,), name=f"{self.component}-lag", daemon=True)
        lag.start()
        try:
            while not stop.is_set():
                batch = consumer.poll_batch(self.max_batch, self.poll_timeout)
                if batch:
                    if not self._handle_until_durable(batch, stop):
                        break
                    self._commit(consumer, batch)
                    self.handled += len(batch)
                    self._count(batch)
        finally:
            done.set()
            lag.join(2)  # before the revocation at close drops the lag series (a slower query ends on its own)
            consumer.close()

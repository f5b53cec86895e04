"""In-memory backend (``kafka.client: memory``): a Kafka cluster inside this process, for fast tests.

It keeps the semantics of base.py that components rely on, without a broker:

- a producer *queues* records; they reach the log, and their delivery callbacks run, in ``poll()``
  / ``flush()`` on the caller's thread (or when the queue is full: backpressure). A record nobody
  flushed was never acknowledged, as with a real client;
- a record for a topic that does not exist is refused in its delivery callback
  (``UNKNOWN_TOPIC_OR_PART``: brokers in production run without auto-creation);
- consumers: manual ``assign`` or group ``subscribe`` (topic names or regexes, ``on_assign`` /
  ``on_revoke`` called from ``poll_batch``); a group's partitions are shared round-robin among its
  live members (a member that has not polled for its session timeout is gone, as after kill -9);
  a topic created later that matches a pattern is assigned at the next poll. Positions start at the
  group's committed offset, else at ``auto_offset_reset``; commits are explicit;
- admin: topics with partitions and config, end offsets, groups and their offsets.

``kafka.bootstrap`` names the cluster (any string; empty: ``memory``): settings with the same
name share one cluster within the process. ``cluster(name)`` gives tests the cluster itself, e.g.
to simulate an outage (``cluster.down = True``: produce and commit fail, polls return nothing).
"""

from __future__ import annotations

import itertools
import re
import threading
import time
import zlib
from collections import deque
from typing import Any

from logtide.transport.base import (
    Admin,
    BufferFull,
    Consumer,
    KafkaSettings,
    Producer,
    Record,
    TopicPartition,
    TopicSpec,
    Transport,
    TransportError,
)

_DEFAULT = "memory"
_clusters: dict[str, MemoryCluster] = {}
_clusters_lock = threading.Lock()


class MemoryCluster:
    """Topics (a list of records per partition), committed offsets and group members, under one lock."""

    def __init__(self, name: str):
        self.name = name
        self.lock = threading.Condition()
        self.topics: dict[str, list[list[Record]]] = {}
        self.configs: dict[str, dict[str, str]] = {}
        self.offsets: dict[str, dict[TopicPartition, int]] = {}
        self.members: dict[str, dict[int, MemoryConsumer]] = {}
        self.generation = 0  # bumped on every change that may move a group's partitions
        self.down = False

    def _check_up(self, what: str) -> None:
        if self.down:
            raise TransportError(f"{what}: memory cluster {self.name!r} is down")

    def append(
        self,
        topic: str,
        partition: int | None,
        key: bytes | None,
        value: bytes | None,
        headers: list | None,
        timestamp_ms: int | None,
        counter: itertools.count,
    ) -> Record:
        """Write one record; raise TransportError as a broker would refuse it."""
        self._check_up("produce")
        parts = self.topics.get(topic)
        if parts is None:
            raise TransportError(f"KafkaError{{code=UNKNOWN_TOPIC_OR_PART}}: topic {topic} does not exist")
        if partition is None or partition < 0:
            partition = (zlib.crc32(key) if key is not None else next(counter)) % len(parts)
        elif partition >= len(parts):
            raise TransportError(f"KafkaError{{code=UNKNOWN_PARTITION}}: {topic}[{partition}]")
        log = parts[partition]
        rec = Record(
            topic,
            partition,
            len(log),
            key,
            value,
            list(headers or []),
            timestamp_ms if timestamp_ms else int(time.time() * 1000),
        )
        log.append(rec)
        return rec

    def create(self, spec: TopicSpec) -> bool:
        if spec.name in self.topics:
            return False
        self.topics[spec.name] = [[] for _ in range(max(1, spec.partitions))]
        self.configs[spec.name] = dict(spec.config)
        self.generation += 1
        return True

    def live_members(self, group: str) -> list[MemoryConsumer]:
        now = time.monotonic()
        members = self.members.get(group, {})
        for mid, m in list(members.items()):
            if now - m.last_poll > m.session_timeout:
                del members[mid]  # missed its session: out of the group
                self.generation += 1
        return [members[k] for k in sorted(members)]


def cluster(name: str | None = None) -> MemoryCluster:
    """The in-process cluster of that name (created on first use)."""
    key = name or _DEFAULT
    with _clusters_lock:
        c = _clusters.get(key)
        if c is None:
            c = _clusters[key] = MemoryCluster(key)
        return c


def drop_cluster(name: str | None = None) -> None:
    """Forget a cluster and everything in it (tests that reuse a name start empty)."""
    with _clusters_lock:
        _clusters.pop(name or _DEFAULT, None)


class MemoryProducer(Producer):
    def __init__(self, c: MemoryCluster, max_buffer: int, report_successes: bool):
        self._c = c
        self._max = max(1, max_buffer)
        self._report = report_successes
        self._queue: deque = deque()  # (topic, partition, key, value, headers, ts, on_delivery)
        self._reports: deque = deque()  # (callback, err, record) not yet served
        self._rr = itertools.count()
        self._closed = False

    def produce(self, topic, value, key=None, headers=None, partition=None, on_delivery=None, timestamp_ms=None):
        if self._closed:
            raise TransportError("producer is closed")
        if len(self._queue) >= self._max:
            self._send()  # the "client" makes room by sending: backpressure without losing records
        self._queue.append((topic, partition, key, value, headers, timestamp_ms, on_delivery))

    def bind(self, topic, on_delivery, wait=True):
        produce, queue = self.produce, self._queue

        def send(value, key, headers):
            if not wait and len(queue) >= self._max:
                raise BufferFull(f"producer buffer full ({len(queue)} records queued)")
            produce(topic, value, key, headers, None, on_delivery)

        return send

    def _send(self) -> None:
        """Move queued records into the log; their delivery reports wait for poll()/flush()."""
        c = self._c
        with c.lock:
            while self._queue:
                topic, partition, key, value, headers, ts, cb = self._queue.popleft()
                try:
                    rec, err = c.append(topic, partition, key, value, headers, ts, self._rr), None
                except TransportError as exc:
                    rec = Record(topic, -1 if partition is None else partition, -1, key, value, headers, ts)
                    err = exc
                if cb is not None and (err is not None or self._report):
                    self._reports.append((cb, err, rec))
            c.lock.notify_all()

    def poll(self, timeout=0.0):
        self._send()
        served = 0
        while self._reports:
            cb, err, rec = self._reports.popleft()
            cb(err, rec)
            served += 1
        if not served and timeout:
            time.sleep(min(timeout, 0.01))
        return served

    def flush(self, timeout=None):
        for _ in range(1000):  # callbacks may produce again (a retry, a DLQ record): serve those too
            if not self.pending():
                break
            self.poll(0)
        return self.pending()

    def pending(self):
        return len(self._queue) + len(self._reports)

    def close(self):
        if not self._closed:
            self.flush()
            self._closed = True


class MemoryConsumer(Consumer):
    _ids = itertools.count()

    def __init__(self, c: MemoryCluster, group_id: str | None, auto_offset_reset: str, session_timeout: float):
        self._c = c
        self.group = group_id
        self.id = next(MemoryConsumer._ids)
        self.session_timeout = session_timeout
        self.last_poll = time.monotonic()
        self._reset = auto_offset_reset
        self._positions: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._subscription: list[re.Pattern] | None = None
        self._on_assign = self._on_revoke = None
        self._generation = -1
        self._closed = False

    # --- assignment ------------------------------------------------------------------------------

    def _start(self, tp: TopicPartition) -> int:
        committed = self._c.offsets.get(self.group or "", {}).get(tp)
        if committed is not None:
            return committed
        return len(self._c.topics[tp.topic][tp.partition]) if self._reset == "latest" else 0

    def subscribe(self, topics, on_assign=None, on_revoke=None, pattern=False):
        if not self.group:
            raise TransportError("subscribe needs a group id")
        self._subscription = [
            re.compile(t if t.startswith("^") else "^" + t) if pattern else re.compile(re.escape(t) + r"\Z")
            for t in topics
        ]
        self._on_assign, self._on_revoke = on_assign, on_revoke
        with self._c.lock:
            self._c.members.setdefault(self.group, {})[self.id] = self
            self._c.generation += 1

    def _rebalance(self) -> None:
        """Recompute this member's share of its group's partitions (called from poll, as clients do)."""
        c = self._c
        with c.lock:
            members = c.live_members(self.group)
            lost: list[TopicPartition] = []
            if self not in members:  # evicted after a long pause: its partitions are lost; join again
                lost = sorted(self._positions)
                self._positions.clear()
                self._paused.clear()
                c.members.setdefault(self.group, {})[self.id] = self
                c.generation += 1
                members = c.live_members(self.group)
            if c.generation == self._generation and not lost:
                return
            self._generation = c.generation
            mine = set()
            for t in sorted(c.topics):
                takers = [m for m in members if any(rx.search(t) for rx in (m._subscription or []))]
                if self in takers:  # round-robin over the members subscribed to this topic
                    index = takers.index(self)
                    mine.update(TopicPartition(t, p) for p in range(len(c.topics[t])) if p % len(takers) == index)
            current = set(self._positions)
            revoked, added = lost + sorted(current - mine), sorted(mine - current)
            for tp in revoked:
                self._positions.pop(tp, None)
                self._paused.discard(tp)
            for tp in added:
                self._positions[tp] = self._start(tp)
        if revoked and self._on_revoke:
            self._on_revoke(revoked)
        if added and self._on_assign:
            self._on_assign(added)

    def assign(self, partitions):
        with self._c.lock:
            self._subscription = None
            self._positions = {
                TopicPartition(*tp): self._start(TopicPartition(*tp)) for tp in partitions if tp[0] in self._c.topics
            }
            self._paused &= set(self._positions)

    def assignment(self):
        return list(self._positions)

    # --- reading ---------------------------------------------------------------------------------

    def poll_batch(self, max_records=500, timeout=1.0):
        if self._closed:
            raise TransportError("consumer is closed")
        deadline = time.monotonic() + max(0.0, timeout)
        c = self._c
        while True:
            self.last_poll = time.monotonic()
            if self._subscription is not None:
                self._rebalance()
            out: list[Record] = []
            with c.lock:
                if not c.down:
                    for tp, pos in self._positions.items():
                        if tp in self._paused:
                            continue
                        parts = c.topics.get(tp.topic)
                        if parts is None:  # deleted meanwhile: nothing to read (a group drops it)
                            continue
                        take = parts[tp.partition][pos : pos + max_records - len(out)]
                        out.extend(take)
                        self._positions[tp] = pos + len(take)
                        if len(out) >= max_records:
                            break
                if out:
                    return out
                left = deadline - time.monotonic()
                if left <= 0:
                    return out
                # woken by a produce; a short bound lets a group notice new members/topics
                c.lock.wait(min(left, 0.05))

    def commit(self, offsets):
        if not offsets:
            return
        with self._c.lock:
            self._c._check_up("commit failed")
            self._c.offsets.setdefault(self.group or "", {}).update(
                {TopicPartition(*tp): o for tp, o in offsets.items()}
            )

    def committed(self, partitions):
        got = self._c.offsets.get(self.group or "", {})
        return {TopicPartition(*tp): got.get(TopicPartition(*tp)) for tp in partitions}

    def seek(self, tp, offset):
        self._positions[TopicPartition(*tp)] = offset

    def offsets_for_times(self, times_ms):
        out = {}
        with self._c.lock:
            for tp, ms in times_ms.items():
                log = self._c.topics.get(tp[0], [[]] * (tp[1] + 1))[tp[1]]
                out[TopicPartition(*tp)] = next((r.offset for r in log if (r.timestamp or 0) >= ms), None)
        return out

    def beginning_offsets(self, partitions):
        return {TopicPartition(*tp): 0 for tp in partitions}

    def end_offsets(self, partitions):
        with self._c.lock:
            try:
                return {TopicPartition(*tp): len(self._c.topics[tp[0]][tp[1]]) for tp in partitions}
            except (KeyError, IndexError):
                raise TransportError(f"unknown partition among {partitions}") from None

    def partitions_for(self, topic):
        parts = self._c.topics.get(topic)
        return [TopicPartition(topic, p) for p in range(len(parts))] if parts else []

    def pause(self, partitions):
        self._paused.update(TopicPartition(*tp) for tp in partitions)

    def resume(self, partitions):
        self._paused.difference_update(TopicPartition(*tp) for tp in partitions)

    def close(self):
        if self._closed:
            return
        self._closed = True
        if self._subscription is not None and self._positions and self._on_revoke:
            self._on_revoke(sorted(self._positions))  # as clients do when a member leaves its group
        self._positions.clear()
        with self._c.lock:
            if self.group and self._c.members.get(self.group, {}).pop(self.id, None) is not None:
                self._c.generation += 1
            self._c.lock.notify_all()


class MemoryAdmin(Admin):
    def __init__(self, c: MemoryCluster):
        self._c = c

    def create_topics(self, specs, timeout=30.0):
        with self._c.lock:
            self._c._check_up("create topics")
            created = [s.name for s in specs if self._c.create(s)]
            self._c.lock.notify_all()
        return created

    def list_topics(self, timeout=None):
        with self._c.lock:
            self._c._check_up(f"cannot reach Kafka at memory:{self._c.name}")
            return {name: len(parts) for name, parts in self._c.topics.items()}

    def delete_topics(self, names, timeout=30.0):
        with self._c.lock:
            for name in names:
                if self._c.topics.pop(name, None) is None:
                    raise TransportError(f"delete topic {name}: UNKNOWN_TOPIC_OR_PART")
                self._c.configs.pop(name, None)
            self._c.generation += 1

    def topic_config(self, name: str) -> dict[str, str]:
        """The config a topic was created with (memory only: for tests of topic settings)."""
        return dict(self._c.configs.get(name, {}))

    def list_groups(self):
        with self._c.lock:
            return sorted(set(self._c.offsets) | {g for g, m in self._c.members.items() if m})

    def group_states(self, groups):
        with self._c.lock:
            return {
                g: ("Stable" if self._c.live_members(g) else "Empty")
                if g in self._c.offsets or self._c.members.get(g)
                else None
                for g in groups
            }

    def group_offsets(self, group):
        with self._c.lock:
            return dict(self._c.offsets.get(group, {}))

    def close(self):
        pass


class MemoryTransport(Transport):
    name = "memory"

    def __init__(self, settings: KafkaSettings):
        self.settings = settings  # no bootstrap needed: it names the in-process cluster
        self.cluster = cluster(settings.bootstrap)

    def producer(
        self, *, linger_ms=5, max_buffer=100_000, max_buffer_bytes=None, report_successes=True, **overrides: Any
    ):
        return MemoryProducer(self.cluster, max_buffer, report_successes)

    def consumer(self, group_id=None, *, auto_offset_reset="earliest", session_timeout_seconds=45.0, **overrides):
        return MemoryConsumer(self.cluster, group_id, auto_offset_reset, session_timeout_seconds)

    def admin(self, *, timeout=None):
        return MemoryAdmin(self.cluster)

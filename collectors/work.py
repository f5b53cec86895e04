"""Scale-out: replicas of a collector share its work items through Kafka consumer-group membership.

Each collector has a small work topic with one partition per work item (partition i ↔ the i-th item in
sorted order). Every replica subscribes to it in one consumer group; the broker's group coordinator
assigns partitions, hence items — no home-made protocol, as Kafka Connect spreads tasks over workers.
Nothing is ever written to the work topic: membership is the whole point.

- on assign: re-read the checkpoints (the previous owner wrote its last one before letting go), then
  start one thread per item.
- on revoke (or lost): stop those threads and wait until each has flushed and checkpointed, *inside*
  the rebalance callback, so the next owner starts only from a checkpoint that is final.

The topic name carries a digest of the item list: replicas with a different configuration land in a
different group instead of splitting a different list by the same partition numbers.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Protocol
from collections.abc import Callable

from logtide import log
from logtide.config import ConfigError
from logtide.transport import TopicPartition, TopicSpec, Transport

from logtide.collectors.base import Backoff, Checkpoints, CollectorMetrics, ItemHealth, Stopped, log_error

_log = log.get("collectors.work")

WORK_TOPIC_PREFIX = "logtide.collect.work."


class Collector(Protocol):
    """What the work group drives: a named set of work items, each run until its stop event is set."""

    name: str
    metrics: CollectorMetrics
    checkpoints: Checkpoints
    health: ItemHealth

    def work_items(self) -> list[str]: ...

    def run_item(self, item: str, stop: threading.Event) -> None: ...

    def close(self) -> None: ...


def work_topic(collector: str, items: list[str]) -> str:
    digest = hashlib.sha256("\n".join(items).encode()).hexdigest()[:10]
    return f"{WORK_TOPIC_PREFIX}{collector}.{digest}"


class ItemTask:
    """One work item's thread: runs the item, restarts it with backoff when it fails. Failures are
    recorded in the collector's ``ItemHealth``, which tells the role's health (see ``WorkGroup``)."""

    def __init__(self, collector: Collector, item: str):
        self.collector = collector
        self.item = item
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"{collector.name}:{item}", daemon=True)

    def _run(self) -> None:
        backoff = Backoff(1.0, 60.0)
        status = self.collector.health.status(self.item)
        try:
            while not self.stop.is_set():
                try:
                    self.collector.run_item(self.item, self.stop)
                    return
                except Stopped:
                    return
                except Exception as exc:  # an item must never take the replica down: record, retry
                    status.failed(
                        "item_crashed",
                        f"work item failed ({exc.__class__.__name__}: {exc}); restarting it with backoff",
                        exc=exc,
                    )
                    if self.stop.wait(backoff.next_delay()):
                        return
        finally:
            self.collector.health.release(self.item)


class WorkGroup:
    """A Service (``run(stop)``) that owns a collector's share of work items through a consumer group."""

    def __init__(
        self,
        transport: Transport,
        collector: Collector,
        session_timeout_seconds: float = 10,
        revoke_timeout: float = 60.0,
        on_change: Callable[[list[str]], None] | None = None,
        status=None,
    ):
        self.transport = transport
        self.collector = collector
        self.name = f"collect-{collector.name}"
        self.items = sorted(collector.work_items())
        if not self.items:
            raise ConfigError(f"collector {collector.name}: no work items configured")
        self.topic = work_topic(collector.name, self.items)
        self.group_id = self.topic
        self.session_timeout_seconds = session_timeout_seconds
        self.revoke_timeout = revoke_timeout
        self.on_change = on_change
        # Item failures (crashes, AccessDenied, no credentials...) reach /healthz through ItemHealth,
        # while every item this replica owns fails: an item crash-looping turns the role red.
        collector.health.service_status = status
        self.tasks: dict[str, ItemTask] = {}
        #: Set once the group coordinator gave this replica its share (possibly none): /readyz.
        self.joined = threading.Event()

    def _ensure_topic(self) -> None:
        admin = self.transport.admin()
        try:
            admin.create_topics([TopicSpec(self.topic, len(self.items))])
            have = admin.list_topics().get(self.topic)
        finally:
            admin.close()
        if have is not None and have != len(self.items):
            raise ConfigError(f"work topic {self.topic} has {have} partitions, expected {len(self.items)}")

    def owned(self) -> list[str]:
        return sorted(self.tasks)

    def _assigned(self, parts: list[TopicPartition]) -> None:
        items = [self.items[p.partition] for p in parts if p.topic == self.topic and p.partition < len(self.items)]
        if not items:
            self.joined.set()
            return
        self.collector.checkpoints.reload()
        for item in items:
            if item not in self.tasks:
                task = self.tasks[item] = ItemTask(self.collector, item)
                task.thread.start()
        self._changed("assigned", items)
        self.joined.set()

    def _revoked(self, parts: list[TopicPartition]) -> None:
        items = [self.items[p.partition] for p in parts if p.topic == self.topic and p.partition < len(self.items)]
        self._stop_tasks(items)
        self._changed("revoked", items)

    def _stop_tasks(self, items: list[str]) -> None:
        tasks = [self.tasks.pop(i) for i in items if i in self.tasks]
        for t in tasks:
            t.stop.set()
        deadline = time.monotonic() + self.revoke_timeout
        for t in tasks:
            t.thread.join(max(0.0, deadline - time.monotonic()))
            if t.thread.is_alive():
                log_error(self.collector.name, "revoke_timeout", "work item did not stop in time", item=t.item)

    def _changed(self, what: str, items: list[str]) -> None:
        self.collector.metrics.work_items.set(len(self.tasks))
        _log.info(f"work items {what}", extra={"collector": self.collector.name, "items": items, "owned": self.owned()})
        if self.on_change:
            self.on_change(self.owned())

    def run(self, stop: threading.Event) -> None:
        self._ensure_topic()
        consumer = self.transport.consumer(self.group_id, session_timeout_seconds=self.session_timeout_seconds)
        try:
            consumer.subscribe([self.topic], on_assign=self._assigned, on_revoke=self._revoked)
            while not stop.is_set():
                # Nothing is ever produced here: polling serves heartbeats and rebalance callbacks.
                consumer.poll_batch(1, 0.3)
                for item, task in list(self.tasks.items()):
                    if not task.thread.is_alive() and not task.stop.is_set():
                        self.tasks[item] = ItemTask(self.collector, item)  # run_item returned early
                        self.tasks[item].thread.start()
        finally:
            self._stop_tasks(list(self.tasks))
            self.collector.metrics.work_items.set(0)
            try:
                consumer.close()  # leaves the group at once: the others rebalance without waiting
            finally:
                self.collector.close()

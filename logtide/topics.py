"""Topic names shared by every component (they meet at Kafka topics), and topic inspection."""

from __future__ import annotations

import time
from collections.abc import Iterator

from logtide.transport import Consumer, Record, TopicPartition, TopicSpec, Transport

RAW_PREFIX = "logtide.raw."
ROUTE_PREFIX = "logtide.route."
DLQ = "logtide.dlq"
CHECKPOINTS = "logtide.checkpoints"

_DAY_MS = 24 * 3600 * 1000


def raw(source: str) -> str:
    """Topic of one source's raw events, e.g. logtide.raw.k8s."""
    return RAW_PREFIX + source


def route(sink: str) -> str:
    """Topic of the events routed to one sink, e.g. logtide.route.audit."""
    return ROUTE_PREFIX + sink


# The settings of each kind of topic, declared once: whichever role creates a topic, it gets these.


def raw_spec(name: str, partitions: int = 3) -> TopicSpec:
    """A topic of raw events from a source (kept a week: replays and late processors)."""
    return TopicSpec(name, partitions, config={"retention.ms": str(7 * _DAY_MS)})


def route_spec(name: str, partitions: int = 3) -> TopicSpec:
    """A topic of processed events for one sink (kept a week)."""
    return TopicSpec(name, partitions, config={"retention.ms": str(7 * _DAY_MS)})


def dlq_spec(name: str = DLQ) -> TopicSpec:
    """The dead-letter topic (kept 30 days: time to look, fix and replay)."""
    return TopicSpec(name, 1, config={"retention.ms": str(30 * _DAY_MS)})


def checkpoints_spec(name: str = CHECKPOINTS) -> TopicSpec:
    """The compacted topic of source checkpoints (the last value of each key lives forever)."""
    return TopicSpec(name, 1, config={"cleanup.policy": "compact"})


def exact_end_offsets(
    consumer: Consumer, partitions: list[TopicPartition], timeout: float = 5.0
) -> dict[TopicPartition, int]:
    """End offsets that are right even where a broker reports them short.

    The embedded broker (Tansu) answers ListOffsets(latest) with the last *batch's* base offset + 1,
    so a batch of 100 records shows as 1. We read the last batch and take its highest offset + 1;
    on a correct broker this returns the reported end. The consumer's assignment is replaced.
    """
    reported = consumer.end_offsets(partitions)
    out = dict(reported)
    probe = [tp for tp, end in reported.items() if end > 0]
    if not probe:
        return out
    consumer.assign(probe)
    for tp in probe:
        consumer.seek(tp, reported[tp] - 1)
    pending = set(probe)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for rec in consumer.poll_batch(10_000, 0.1):
            tp = rec.tp
            if rec.offset + 1 > out[tp]:
                out[tp] = rec.offset + 1
            pending.discard(tp)
    return out


def partition_ranges(consumer: Consumer, partitions: list[TopicPartition]) -> dict[TopicPartition, tuple[int, int]]:
    """[beginning, exact end) of each partition: what to read to have read everything there now."""
    ends = exact_end_offsets(consumer, partitions)
    starts = consumer.beginning_offsets(partitions)
    return {tp: (starts.get(tp, 0), ends.get(tp, 0)) for tp in partitions}


class RangeReader:
    """Reads the records in [start, end) of each partition, in batches, then stops.

    ``end`` comes from ``exact_end_offsets`` (or an earlier snapshot), so "until the end" is a fixed
    point and new records do not keep the reader going. A partition is done at the first record at or
    past its end (a compacted topic may skip offsets), or when the caller calls ``finish(tp)``.
    If nothing arrives for ``idle_timeout`` seconds while records are due, ``TimeoutError`` names the
    partitions.
    """

    def __init__(
        self,
        consumer: Consumer,
        ranges: dict[TopicPartition, tuple[int, int]],
        *,
        max_batch: int = 2000,
        idle_timeout: float = 15.0,
    ):
        self.consumer = consumer
        self.todo = {tp: (s, e) for tp, (s, e) in ranges.items() if s < e}
        self.max_batch = max_batch
        self.idle_timeout = idle_timeout
        if self.todo:
            consumer.assign(list(self.todo))
            for tp, (start, _) in self.todo.items():
                consumer.seek(tp, start)

    def finish(self, tp: TopicPartition) -> None:
        """Stop reading a partition before its end (e.g. a time window closed)."""
        if self.todo.pop(tp, None) is not None:
            self.consumer.pause([tp])

    def batches(self) -> Iterator[list[Record]]:
        last_data = time.monotonic()
        while self.todo:
            batch = self.consumer.poll_batch(self.max_batch, 0.1)
            if not batch:
                if time.monotonic() - last_data > self.idle_timeout:
                    raise TimeoutError(
                        "no records arrived for %.0fs from %s"
                        % (self.idle_timeout, ", ".join(f"{tp.topic}[{tp.partition}]" for tp in self.todo))
                    )
                continue
            last_data = time.monotonic()
            out = []
            todo = self.todo
            for rec in batch:
                tp = rec.tp
                bounds = todo.get(tp)
                if bounds is None or rec.offset >= bounds[1] or rec.offset < bounds[0]:
                    continue
                out.append(rec)
                if rec.offset + 1 >= bounds[1]:
                    del todo[tp]
            if out:
                yield out


def describe(transport: Transport) -> list[dict]:
    """Every topic with its partitions and (exact) end offsets, for `logtide topics` and summaries."""
    admin = transport.admin()
    try:
        topics = admin.list_topics()
    finally:
        admin.close()
    consumer = transport.consumer(None)
    try:
        parts = [TopicPartition(t, p) for t, n in sorted(topics.items()) for p in range(n)]
        ends = exact_end_offsets(consumer, parts) if parts else {}
    finally:
        consumer.close()
    out = []
    for name, n in sorted(topics.items()):
        offsets = [ends.get(TopicPartition(name, p), 0) for p in range(n)]
        out.append({"topic": name, "partitions": n, "end_offsets": offsets, "records": sum(offsets)})
    return out

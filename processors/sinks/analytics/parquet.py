"""Parquet output: one file per (source, date, hour) partition per batch, Hive-style directories.

    <root>/source=k8s/date=2026-11-21/hour=14/part-<batch>.parquet      (root: a directory or s3://bucket/prefix)

``<batch>`` is derived from the Kafka input: a hash of the first offset of each (topic, partition) in
the batch, so a batch written again from the same offsets replaces its own files instead of adding
copies (Kafka Connect's S3 sink names files by offsets for the same reason).

A batch is all-or-nothing across its files, and never written twice:

1. write ``_logtide/<group>/pending/<batch>.json``: the files about to appear and the last Kafka
   offset of each partition in the batch;
2. put each file atomically and durably (temp + fsync + rename + fsync of the directory);
3. put the batch's event ids in ``_logtide/<group>/ids/<arrival ns>-<batch>.ids`` (the id memory);
4. record the offsets in ``_logtide/<group>/offsets/<topic>~<partition>.json``;
5. delete the pending marker.

Steps 1 and 4 are atomic but not fsync'd: after a power cut (not a kill -9) they may be older than
the data files, which can only make a batch be written again under the same names, never lost.

On start, a pending marker whose offsets were not recorded is rolled back (its files and ids deleted:
Kafka redelivers the batch because offsets were not committed); a recorded one is just removed. A
redelivered record at or below the recorded offset is skipped. Recorded offsets are trusted only
when the consumer group has a committed offset for that partition (a recreated topic starts over).

Copies from upstream (the same event produced again at a new offset, e.g. by a restarted processor,
with any event time) are dropped against the id memory: the ids of the last ``dedup_memory_ids``
events this group wrote, *by arrival*, kept in the ``ids/`` files and loaded on start, so the memory
does not depend on event time (a backfill or a late CloudWatch file is as protected as live data).
A copy arriving after more than ``dedup_memory_ids`` other events lands in the same hour partition as
its original (the filing time is deterministic); compaction removes it there (a partition that got a
late file after it was compacted is compacted again), and the ``events`` view hides it meanwhile.
"""

from __future__ import annotations

import hashlib
import io
import time
import uuid

import orjson
import pyarrow.parquet as pq

from logtide import log
from logtide.transport import TopicPartition

from logtide.processors.sinks.analytics.rows import to_table
from logtide.processors.sinks.analytics.store import open_store
from logtide.processors.sinks.dedup import RecentIds

_log = log.get("processors.sinks.parquet")

META = "_logtide"


def write_parquet_bytes(table, compression: str) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression=None if compression == "none" else compression)
    return buf.getvalue()


class ParquetOutput:
    name = "parquet"

    def __init__(self, settings, group: str):
        self.settings = settings
        self.store = open_store(settings)
        safe_group = "".join(c if c.isalnum() or c in "-_." else "_" for c in group)
        self.meta = f"{META}/{safe_group}"
        self.offsets: dict[TopicPartition, int] = {}
        #: Per partition, a token that changes when its offsets start over (a new or recreated topic):
        #: part of the file names, so offsets reused by a new topic never replace older files.
        self.epochs: dict[TopicPartition, str] = {}
        self.files_written = 0
        self.capacity = getattr(settings, "dedup_memory_ids", 200_000)
        #: The id files in memory, oldest first, with their id counts (for pruning the oldest).
        self._id_files: list[tuple[str, int]] = []
        self._recover()
        self.known = RecentIds(self.capacity)
        self.known.add(self.recent_ids())  # a store that cannot be read fails the start (Retry)

    def _offset_file(self, tp: TopicPartition) -> str:
        return f"{self.meta}/offsets/{tp.topic}~{tp.partition}.json"

    def _recorded(self, tp: TopicPartition) -> int:
        if tp not in self.offsets:
            raw = self.store.get(self._offset_file(tp))
            value = orjson.loads(raw) if raw else {}
            self.offsets[tp] = value.get("offset", -1)
            self.epochs[tp] = value.get("epoch") or uuid.uuid4().hex[:8]
        return self.offsets[tp]

    def _record(self, tp: TopicPartition, offset: int) -> None:
        self._recorded(tp)
        self.store.put(self._offset_file(tp), orjson.dumps({"offset": offset, "epoch": self.epochs[tp]}), durable=False)
        self.offsets[tp] = offset

    def _recover(self) -> None:
        for marker in self.store.list(f"{self.meta}/pending", ".json"):
            pending = orjson.loads(self.store.get(marker) or b"{}")
            done = all(
                self._recorded(TopicPartition(t, int(p))) >= off
                for t, parts in pending.get("offsets", {}).items()
                for p, off in parts.items()
            )
            if not done:
                for rel in [*pending.get("files", []), *([pending["ids"]] if pending.get("ids") else [])]:
                    self.store.delete(rel)
                _log.warning(
                    "rolled back a batch interrupted by a crash (Kafka redelivers it)",
                    extra={"files": len(pending.get("files", []))},
                )
            self.store.delete(marker)

    def recent_ids(self) -> list[str]:
        """Ids of the last ``dedup_memory_ids`` events written, by arrival (the ``ids/`` files, newest
        first until the memory is full); older id files are deleted."""
        names = self.store.list(f"{self.meta}/ids", ".ids")
        chunks: list[list[str]] = []
        kept: list[tuple[str, int]] = []
        total = 0
        for i, rel in enumerate(reversed(names)):
            if total >= self.capacity:
                for old in names[: len(names) - i]:
                    self.store.delete(old)
                break
            data = self.store.get(rel)
            ids = data.decode().split("\n") if data else []
            chunks.append(ids)
            kept.append((rel, len(ids)))
            total += len(ids)
        self._id_files = kept[::-1]
        return [i for ids in reversed(chunks) for i in ids][-self.capacity :] if self.capacity else []

    def reload_ids(self) -> None:
        """Take in the id files other replicas of the group wrote (after a rebalance)."""
        self.known.add(self.recent_ids())

    def _prune_id_files(self) -> None:
        """Delete the oldest id files once the newer ones alone fill the memory."""
        total = sum(n for _, n in self._id_files)
        while self._id_files and total - self._id_files[0][1] >= self.capacity:
            rel, n = self._id_files.pop(0)
            self.store.delete(rel)
            total -= n

    def trust(self, committed: dict[TopicPartition, int | None]) -> None:
        """Forget recorded offsets of partitions the group has never committed (a new or recreated topic)."""
        for tp, off in committed.items():
            if off is None and self._recorded(tp) >= 0:
                _log.warning(
                    "ignoring recorded Parquet offsets: the consumer group has none for this partition",
                    extra={"topic": tp.topic, "partition": tp.partition},
                )
                self.epochs[tp] = uuid.uuid4().hex[:8]
                self._record(tp, -1)

    def write(self, rows: list[tuple[tuple[str, str, str], dict, object]]) -> None:
        """``rows``: (partition, row, item) in batch order."""
        fresh = []
        seen: set[str] = set()  # a copy inside the batch itself
        known = self.known
        recorded: dict[TopicPartition, int] = {}
        first: dict[TopicPartition, int] = {}  # first offset past the recorded one: names the batch
        last: dict[TopicPartition, int] = {}
        for part, row, item in rows:  # one pass, one TopicPartition per record: the hot loop
            tp = item.record.tp
            off = item.record.offset
            done = recorded.get(tp)
            if done is None:
                done = recorded[tp] = self._recorded(tp)
            if off > last.get(tp, -1):
                last[tp] = off
            if off <= done:
                continue  # redelivered by Kafka: written before
            if off < first.get(tp, off + 1):
                first[tp] = off
            rid = row["id"]
            if rid not in known and rid not in seen:
                seen.add(rid)
                fresh.append((part, row))
        marker = None
        if fresh:
            by_part: dict[tuple[str, str, str], list[dict]] = {}
            for part, row in fresh:
                by_part.setdefault(part, []).append(row)
            batch = batch_name(first, self.epochs)
            files = {
                f"source={s}/date={d}/hour={h}/part-{batch}.parquet": part_rows
                for (s, d, h), part_rows in by_part.items()
            }
            ids_file = f"{self.meta}/ids/{time.time_ns():020d}-{batch}.ids" if self.capacity else None
            offsets: dict[str, dict[str, int]] = {}
            for tp, off in last.items():
                offsets.setdefault(tp.topic, {})[str(tp.partition)] = off
            marker = f"{self.meta}/pending/{batch}.json"
            self.store.put(
                marker, orjson.dumps({"files": list(files), "ids": ids_file, "offsets": offsets}), durable=False
            )
            for rel, part_rows in files.items():
                self.store.put(rel, write_parquet_bytes(to_table(part_rows), self.settings.compression))
            self.files_written += len(files)
            if ids_file:
                # Not fsync'd: lost only to a power cut, with the offsets recorded after it.
                self.store.put(ids_file, "\n".join(row["id"] for _, row in fresh).encode(), durable=False)
                self._id_files.append((ids_file, len(fresh)))
        for tp, off in last.items():
            if off > self._recorded(tp):
                self._record(tp, off)
        if marker:
            self.store.delete(marker)
            self._prune_id_files()
        self.known.add(row["id"] for _, row in fresh)


def batch_name(first: dict[TopicPartition, int], epochs: dict[TopicPartition, str]) -> str:
    """A name that the same batch re-read from the same Kafka offsets gets again: from the first
    offset of each partition that is past the recorded offsets (which move on after every batch, so
    two batches never share a name) and the partition's epoch."""
    spec = ",".join(f"{tp.topic}+{tp.partition}+{epochs[tp]}+{o}" for tp, o in sorted(first.items()))
    return hashlib.sha256(spec.encode()).hexdigest()[:20]

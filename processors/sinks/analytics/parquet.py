"""Parquet output: one file per (source, date, hour) partition per batch, Hive-style directories.

    <root>/source=k8s/date=2026-11-21/hour=14/part-<batch>.parquet      (root: a directory or s3://bucket/prefix)

A batch is all-or-nothing across its files, and never written twice (Kafka Connect's S3/HDFS sinks
do the same with offsets in their file names):

1. write ``_logtide/<group>/pending/<batch>.json``: the files about to appear and the last Kafka
   offset of each partition in the batch;
2. put each file atomically and durably (temp + fsync + rename + fsync of the directory);
3. record the offsets in ``_logtide/<group>/offsets/<topic>~<partition>.json``;
4. delete the pending marker.

Steps 1 and 3 are atomic but not fsync'd: after a power cut (not a kill -9) they may be older than
the data files, which can only make a batch be written again, never lost.

On start, a pending marker whose offsets were not recorded is rolled back (its files deleted: Kafka
redelivers the batch because offsets were not committed); a recorded one is just removed. A
redelivered record at or below the recorded offset is skipped. Recorded offsets are trusted only
when the consumer group has a committed offset for that partition (a recreated topic starts over).

Duplicates from upstream (the same event produced twice) are dropped within a batch, by the
sink's recent-id memory, and by this output's own memory, which a start seeds with the ids of the
last two hours' files (``recent_ids``; the sink's shared memory must not be seeded from here: the
other outputs may not have those events yet). What remains (a duplicate hours apart across a restart) is removed by compaction
and hidden at query time (the ``events`` view: ``QUALIFY row_number() OVER (PARTITION BY id ...) = 1``).
"""

from __future__ import annotations

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
from logtide.processors.sinks.s3 import StorageError

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
        self.files_written = 0
        self._recover()
        self.known = RecentIds(200_000)
        try:
            self.known.add(self.recent_ids())
        except (OSError, StorageError) as exc:
            _log.warning("could not read recent Parquet ids (duplicates are then dropped at query time)",
                         extra={"error": str(exc)})

    def _offset_file(self, tp: TopicPartition) -> str:
        return f"{self.meta}/offsets/{tp.topic}~{tp.partition}.json"

    def _recorded(self, tp: TopicPartition) -> int:
        if tp not in self.offsets:
            raw = self.store.get(self._offset_file(tp))
            self.offsets[tp] = orjson.loads(raw)["offset"] if raw else -1
        return self.offsets[tp]

    def _recover(self) -> None:
        for marker in self.store.list(f"{self.meta}/pending", ".json"):
            pending = orjson.loads(self.store.get(marker) or b"{}")
            done = all(self._recorded(TopicPartition(t, int(p))) >= off
                       for t, parts in pending.get("offsets", {}).items() for p, off in parts.items())
            if not done:
                for rel in pending.get("files", []):
                    self.store.delete(rel)
                _log.warning("rolled back a batch interrupted by a crash (Kafka redelivers it)",
                             extra={"files": len(pending.get("files", []))})
            self.store.delete(marker)

    def recent_ids(self, hours: int = 2, limit: int = 200_000) -> list[str]:
        """Ids in the files of the last ``hours`` hour partitions (by wall clock): a restart's dedup memory."""
        now = time.time()
        wanted = sorted({time.strftime("date=%Y-%m-%d/hour=%H", time.gmtime(now - 3600 * h)) for h in range(hours)})
        ids: list[str] = []
        for source in self.store.dirs(""):
            if not source.startswith("source="):
                continue
            for hour in wanted:  # only these partitions are listed, not the whole dataset
                for rel in self.store.list(f"{source}/{hour}", ".parquet"):
                    data = self.store.get(rel)
                    if data is not None:
                        ids += pq.read_table(io.BytesIO(data), columns=["id"]).column("id").to_pylist()
        return ids[-limit:]

    def trust(self, committed: dict[TopicPartition, int | None]) -> None:
        """Forget recorded offsets of partitions the group has never committed (a new or recreated topic)."""
        for tp, off in committed.items():
            if off is None and self._recorded(tp) >= 0:
                _log.warning("ignoring recorded Parquet offsets: the consumer group has none for this partition",
                             extra={"topic": tp.topic, "partition": tp.partition})
                self.offsets[tp] = -1
                self.store.delete(self._offset_file(tp))

    def write(self, rows: list[tuple[tuple[str, str, str], dict, object]]) -> None:
        """``rows``: (partition, row, item) in batch order."""
        fresh = [(part, row) for part, row, item in rows
                 if item.record.offset > self._recorded(item.record.tp) and row["id"] not in self.known]
        last: dict[TopicPartition, int] = {}
        for _, _, item in rows:
            tp = item.record.tp
            last[tp] = max(last.get(tp, -1), item.record.offset)
        if fresh:
            by_part: dict[tuple[str, str, str], list[dict]] = {}
            for part, row in fresh:
                by_part.setdefault(part, []).append(row)
            batch = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
            files = {f"source={s}/date={d}/hour={h}/part-{batch}.parquet": part_rows
                     for (s, d, h), part_rows in by_part.items()}
            offsets: dict[str, dict[str, int]] = {}
            for tp, off in last.items():
                offsets.setdefault(tp.topic, {})[str(tp.partition)] = off
            marker = f"{self.meta}/pending/{batch}.json"
            self.store.put(marker, orjson.dumps({"files": list(files), "offsets": offsets}), durable=False)
            for rel, part_rows in files.items():
                self.store.put(rel, write_parquet_bytes(to_table(part_rows), self.settings.compression))
            self.files_written += len(files)
        else:
            marker = None
        for tp, off in last.items():
            if off > self._recorded(tp):
                self.store.put(self._offset_file(tp), orjson.dumps({"offset": off}), durable=False)
                self.offsets[tp] = off
        if marker:
            self.store.delete(marker)
        self.known.add(row["id"] for _, row in fresh)

"""Compaction: many small per-batch files of an hour partition become one, duplicates (same id) dropped.

Only hours that ended ``compact_after_seconds`` ago are touched (the sink is still writing the current
one): those with ``compact_min_files`` files, and those with fewer files in which one id occurs twice
(a late copy the sink's id memory no longer held; found by reading the id column only, once per set
of files). After compaction, an hour partition holds one row per id. Crash safety: a journal ``_logtide/compaction/<n>.json`` names the output and the inputs before
anything changes; on the next run, an output that exists means the inputs go, otherwise the partial
output goes and the inputs stay. Readers may briefly see both (the query view drops the duplicates).
"""

from __future__ import annotations

import hashlib
import io
import time

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from prometheus_client import Counter

from logtide import log
from logtide.timeutil import NS, parse_rfc3339

from logtide.processors.sinks.analytics.parquet import META, write_parquet_bytes
from logtide.processors.sinks.analytics.rows import SCHEMA

_log = log.get("processors.sinks.compaction")

COMPACTED = Counter("logtide_sink_parquet_compacted_files_total", "Small Parquet files merged by compaction")

JOURNAL = f"{META}/compaction"


def _hour_end(partition_dir: str) -> float | None:
    parts = dict(p.split("=", 1) for p in partition_dir.split("/") if "=" in p)
    start = parse_rfc3339(f"{parts.get('date')}T{parts.get('hour')}:00:00Z")
    return None if start is None else start // NS + 3600


def dedup_by_id(table: pa.Table) -> pa.Table:
    """Keep the first row of each id (rows come in write order)."""
    ids = table.column("id").to_pylist()
    seen: set[str] = set()
    keep = []
    for i, v in enumerate(ids):
        if v not in seen:
            seen.add(v)
            keep.append(i)
    return table if len(keep) == len(ids) else table.take(pa.array(keep, pa.int64()))


def _finish_journals(store) -> None:
    for rel in store.list(JOURNAL, ".json"):
        job = orjson.loads(store.get(rel) or b"{}")
        if store.get(job["output"]) is not None:
            for f in job["inputs"]:
                store.delete(f)
        else:
            store.delete(job["output"])
        store.delete(rel)


def has_duplicate_ids(store, files: list[str]) -> bool:
    seen: set[str] = set()
    for f in files:
        ids = pq.read_table(io.BytesIO(store.get(f) or b""), columns=["id"]).column("id").to_pylist()
        if seen.intersection(ids) or len(set(ids)) < len(ids):
            return True
        seen.update(ids)
    return False


def compact(
    store,
    *,
    min_files: int = 8,
    after_s: float = 3600.0,
    compression: str = "zstd",
    now: float | None = None,
    checked: set[tuple[str, ...]] | None = None,
) -> int:
    """Compact every eligible hour partition; return how many files were merged away.

    ``checked``: sets of files already found free of duplicate ids (kept by the caller between runs).
    """
    checked = set() if checked is None else checked
    _finish_journals(store)
    now = time.time() if now is None else now
    by_dir: dict[str, list[str]] = {}
    for rel in store.list("", ".parquet"):
        if rel.startswith(META):
            continue
        by_dir.setdefault(rel.rsplit("/", 1)[0], []).append(rel)
    merged = 0
    for d, files in sorted(by_dir.items()):
        end = _hour_end(d)
        if len(files) < 2 or end is None or end + after_s > now or tuple(files) in checked:
            continue
        if len(files) < min_files and not has_duplicate_ids(store, files):
            checked.add(tuple(files))
            continue
        tables = [pq.read_table(io.BytesIO(store.get(f) or b""), schema=SCHEMA) for f in files]
        table = dedup_by_id(pa.concat_tables(tables))
        table = table.sort_by([("time", "ascending")]) if table.num_rows else table
        digest = hashlib.sha256("\n".join(files).encode()).hexdigest()[:16]
        output = f"{d}/compact-{digest}.parquet"
        journal = f"{JOURNAL}/{digest}.json"
        store.put(journal, orjson.dumps({"output": output, "inputs": files}))
        store.put(output, write_parquet_bytes(table, compression))
        for f in files:
            store.delete(f)
        store.delete(journal)
        merged += len(files)
        COMPACTED.inc(len(files))
        _log.info(
            "compacted partition",
            extra={
                "partition": d,
                "files": len(files),
                "rows": table.num_rows,
                "dropped_duplicates": sum(t.num_rows for t in tables) - table.num_rows,
            },
        )
    return merged

"""Analytics: Parquet (atomic batches, type changes, bad times, compaction, DuckDB) and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import orjson
import psycopg
import pytest

from logtide.consume import Retry
from logtide.transport import Record, TopicPartition
from logtide.processors.sinks.analytics.compaction import compact
from logtide.processors.sinks.analytics.parquet import ParquetOutput
from logtide.processors.sinks.analytics.query import run_query
from logtide.processors.sinks.analytics.rows import to_row
from logtide.processors.sinks.analytics.sink import AnalyticsSink
from logtide.processors.sinks.config import AnalyticsSettings, PostgresSettings
from logtide.processors.sinks.service import Item
from sinks_helpers import LOGTIDE, make_event


def items(a, b, partition=0, **over):
    return [
        Item(Record("logtide.route.analytics", partition, i, None, None, [], None), make_event(i, **over))
        for i in range(a, b)
    ]


def parquet_sink(path, **kw):
    return AnalyticsSink(AnalyticsSettings(parquet={"path": str(path), **kw}), "g")


def count(path, view="events_all"):
    return run_query(str(path), f"SELECT count(*), count(DISTINCT id) FROM {view}")[1][0]


def test_type_changes_between_batches_never_break_a_write(tmp_path):
    sink = parquet_sink(tmp_path)
    sink.write(items(0, 10, attributes={"status": 200, "user": "a"}))
    sink.write(items(10, 20, attributes={"status": "OK", "user": {"id": 7, "roles": ["x"]}}))
    sink.write(
        items(
            20,
            30,
            attributes={"status": [1, 2], "user": None},
            body={"parsed": True, "n": 1.5},
            resource={"service.name": 42, "labels": {"app": "x"}},
        )
    )
    cols, rows = run_query(str(tmp_path), "SELECT attributes->>'$.status' AS s, body, service FROM events ORDER BY id")
    assert len(rows) == 30
    statuses = {r[0] for r in rows}
    assert {"200", "OK", "[1,2]"} <= statuses
    assert any(r[1] == '{"parsed":true,"n":1.5}' for r in rows) and any(r[2] == "42" for r in rows)


def test_missing_and_future_times_are_filed_at_observed_time(tmp_path):
    sink = parquet_sink(tmp_path)
    now = time.time_ns()
    sink.write(
        items(0, 3, time=None, observed_time=now) + items(3, 6, time=now + 10 * 365 * 86400 * 10**9, observed_time=now)
    )
    _, rows = run_query(str(tmp_path), "SELECT time_adjusted, event_time IS NULL, epoch_ns(time), date FROM events")
    assert len(rows) == 6 and all(r[0] for r in rows)
    assert sorted(r[1] for r in rows) == [False] * 3 + [True] * 3
    assert {r[2] for r in rows} == {now}
    assert {str(r[3]) for r in rows} == {time.strftime("%Y-%m-%d", time.gmtime(now / 1e9))}


def test_redelivered_offsets_and_duplicate_ids_add_no_rows(tmp_path):
    sink = parquet_sink(tmp_path)
    sink.write(items(0, 50))
    sink.write(items(20, 80))  # Kafka redelivery of 20..49 (same offsets)
    again = parquet_sink(tmp_path)  # restart: offsets recorded on disk
    again.write(items(0, 100))
    assert count(tmp_path) == (100, 100)
    # The same (old) event produced twice upstream (new offset, same id): the id memory, kept by
    # arrival across the restart, drops it (issue 17: it used to become a second row).
    dup = [Item(Record("logtide.route.analytics", 0, 500, None, None, [], None), make_event(5))]
    again.write(dup)
    assert count(tmp_path) == (100, 100)
    assert count(tmp_path, "events") == (100, 100)


def test_a_batch_interrupted_by_a_crash_is_rolled_back(tmp_path):
    out = ParquetOutput(AnalyticsSettings(parquet={"path": str(tmp_path)}).parquet, "g")
    rows = [(*to_row(it.event), it) for it in items(0, 40)]
    out.write(rows[:20])
    # Simulate a crash after step 2 of a batch: files renamed into place, offsets not recorded yet.
    real_put = out.store.put

    def crash_on_offsets(rel, data, **kw):
        if "/offsets/" in rel:
            raise KeyboardInterrupt("kill -9")
        real_put(rel, data, **kw)

    out.store.put = crash_on_offsets
    with pytest.raises(KeyboardInterrupt):
        out.write(rows[20:])
    assert count(tmp_path)[0] == 40  # the half-committed batch is visible on disk ...
    restarted = ParquetOutput(AnalyticsSettings(parquet={"path": str(tmp_path)}).parquet, "g")
    assert count(tmp_path)[0] == 20  # ... and rolled back at start
    restarted.write(rows[20:])  # Kafka redelivers it (offsets were not committed)
    assert count(tmp_path) == (40, 40)


def test_stale_offsets_of_a_recreated_topic_are_not_trusted(tmp_path):
    sink = parquet_sink(tmp_path)
    sink.write(items(0, 10))
    fresh = parquet_sink(tmp_path)
    fresh.parquet.trust({TopicPartition("logtide.route.analytics", 0): None})  # group never committed
    fresh.write(
        [
            Item(Record("logtide.route.analytics", 0, i, None, None, [], None), make_event(i, run="new"))
            for i in range(5)
        ]
    )
    assert count(tmp_path) == (15, 15)


def test_compaction_merges_small_files_and_drops_duplicates(tmp_path):
    sink = parquet_sink(tmp_path)
    for a in range(0, 100, 10):
        sink.write(items(a, a + 10))
    # a copy from upstream beyond the id memory (here: a restarted sink without one)
    parquet_sink(tmp_path, dedup_memory_ids=0).write(
        [Item(Record("logtide.route.analytics", 1, 0, None, None, [], None), make_event(3))]
    )
    before = [f for _, _, fs in os.walk(tmp_path) for f in fs if f.endswith(".parquet")]
    assert count(tmp_path) == (101, 100)
    merged = compact(sink.parquet.store, min_files=4, after_s=0)
    after = [f for _, _, fs in os.walk(tmp_path) for f in fs if f.endswith(".parquet")]
    assert merged == len(before) and len(after) < len(before)
    assert all(f.startswith("compact-") for f in after)
    assert count(tmp_path) == (100, 100)


def test_query_command(tmp_path):
    sink = parquet_sink(tmp_path)
    sink.write(items(0, 30) + items(30, 40, source="cloudwatch"))
    out = subprocess.run(
        [
            *LOGTIDE,
            "query",
            "--path",
            str(tmp_path),
            "--format",
            "json",
            "SELECT source, count(*) AS n FROM events GROUP BY source ORDER BY source",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert [orjson.loads(x) for x in out.stdout.splitlines()] == [
        {"source": "cloudwatch", "n": 10},
        {"source": "k8s", "n": 30},
    ]
    bad = subprocess.run(
        [*LOGTIDE, "query", "--path", str(tmp_path), "SELEC nonsense"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "query failed" in bad.stderr
    # Issue 17 (7): several statements and COPY … TO 'file' ran, although the help says one statement.
    target = tmp_path / "leak.csv"
    for sql, why in (
        (f"SELECT 1; COPY (SELECT * FROM events) TO '{target}'", "one SQL statement at a time (2 given)"),
        (f"COPY (SELECT * FROM events) TO '{target}'", "read-only"),
        ("SELECT * FROM read_text('/etc/hostname')", "Permission"),
        ("SET enable_external_access = true", "read-only"),
    ):
        r = subprocess.run(
            [*LOGTIDE, "query", "--path", str(tmp_path), sql], capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 2 and why in r.stderr and len(r.stderr.strip().splitlines()) == 1, (sql, r.stderr)
    assert not target.exists()
    assert run_query(str(tmp_path), "DESCRIBE events")[1]


# --- PostgreSQL ----------------------------------------------------------------------------


def pg_sink(dsn, table):
    return AnalyticsSink(AnalyticsSettings(postgres={"dsn": dsn, "table": table}), "g")


def pg_rows(dsn, query):
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchall()


def test_postgres_copy_upsert_and_day_partitions(postgres_dsn):
    table = f"ev_{uuid.uuid4().hex[:8]}"
    sink = pg_sink(postgres_dsn, table)
    day = 86400 * 10**9
    evs = items(0, 40) + [
        Item(
            Record("t", 0, 100 + i, None, None, [], None),
            make_event(100 + i, time=make_event(0)["time"] + day, attributes={"status": {"x": i}}),
        )
        for i in range(10)
    ]
    sink.write(evs)
    sink.write(items(10, 60))  # 10..39 again: ON CONFLICT DO NOTHING
    sink.close()
    again = pg_sink(postgres_dsn, table)  # a restarted sink, same table
    no_time = items(60, 70, time=None)  # filed at observed_time: deterministic for the same event
    future = items(70, 73, time=2**62)  # the year 2116: filed at observed_time too, flagged
    again.write(items(50, 60) + no_time + future + items(0, 5))
    again.write(no_time + future)
    assert pg_rows(postgres_dsn, f"SELECT count(*), count(DISTINCT id) FROM {table}") == [(83, 83)]
    assert pg_rows(
        postgres_dsn,
        f"SELECT count(*) FROM {table} WHERE time_adjusted AND event_time IS NULL AND time < now() + interval '1 day'",
    ) == [(13,)]
    parts = {
        r[0]
        for r in pg_rows(
            postgres_dsn, f"SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = '{table}'::regclass"
        )
    }
    assert len(parts) >= 2 and all(p.startswith(f"{table}_20") for p in parts)
    assert pg_rows(
        postgres_dsn, f"SELECT attributes->'status'->>'x' FROM {table} WHERE id = '{make_event(103)['id']}'"
    ) == [("3",)]
    again.close()


def test_postgres_unreachable_raises_retry_then_recovers(postgres_dsn):
    from logtide.broker import free_port

    table = f"ev_{uuid.uuid4().hex[:8]}"
    sink = pg_sink(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", table)
    with pytest.raises(Retry):
        sink.write(items(0, 10))
    assert not sink.ready()
    sink.postgres.settings = PostgresSettings(dsn=postgres_dsn, table=table)  # the database is back
    sink.write(items(0, 10))
    assert sink.ready()
    assert pg_rows(postgres_dsn, f"SELECT count(*) FROM {table}") == [(10,)]
    sink.close()


@pytest.mark.timeout(60)
def test_parquet_on_s3_written_compacted_and_queried(s3_server, tmp_path):
    import boto3

    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    settings = AnalyticsSettings(parquet={"s3": {"bucket": bucket, "prefix": "events", "endpoint_url": s3_server}})
    sink = AnalyticsSink(settings, "g")
    for a in range(0, 60, 10):
        sink.write(items(a, a + 10))
    AnalyticsSink(settings, "g").write(items(0, 70))  # restarted: 0..59 skipped by recorded offsets
    url = f"s3://{bucket}/events"
    assert run_query(url, "SELECT count(*), count(DISTINCT id) FROM events_all", endpoint_url=s3_server)[1] == [
        (70, 70)
    ]
    assert compact(sink.parquet.store, min_files=3, after_s=0) >= 6
    cli = subprocess.run(
        [
            *LOGTIDE,
            "query",
            "--path",
            url,
            "--endpoint-url",
            s3_server,
            "--format",
            "csv",
            "SELECT count(*) AS n, min(date) AS d FROM events",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.splitlines()[1] == "70,2025-11-21"


def test_unreachable_parquet_s3_is_a_retry():
    from logtide.broker import free_port

    sink = AnalyticsSink(
        AnalyticsSettings(
            parquet={
                "s3": {"bucket": "b", "connect_timeout_seconds": 1, "endpoint_url": f"http://127.0.0.1:{free_port()}"}
            }
        ),
        "g",
    )
    assert not sink.ready()
    with pytest.raises(Retry):
        sink.write(items(0, 3))


def test_restart_seeds_parquet_duplicate_memory_by_arrival_whatever_the_event_time(tmp_path):
    # Issue 17: the memory was seeded from the last two wall-clock hours of event-time partitions, so
    # copies of old events (backfills, late files, replays) became new rows after a restart.
    now = time.time_ns()
    sink = parquet_sink(tmp_path)
    live = items(0, 20, time=now, observed_time=now)
    old = items(20, 170)  # event time in 2025: far more than two hours old
    sink.write(live + old)
    restarted = parquet_sink(tmp_path)
    assert set(restarted.parquet.recent_ids()) == {make_event(i)["id"] for i in range(170)}
    # the same events produced again upstream (new offsets): none written twice
    restarted.write(
        [
            Item(Record("logtide.route.analytics", 0, 1000 + n, None, None, [], None), it.event)
            for n, it in enumerate(live + old)
        ]
    )
    assert count(tmp_path) == (170, 170)
    ids = plain_parquet_ids(tmp_path)
    assert len(ids) == len(set(ids)) == 170


def plain_parquet_ids(root):
    """The dataset as any Parquet reader sees it (pyarrow, not logtide's views)."""
    import pyarrow.dataset as ds

    files = [
        os.path.join(d, f) for d, _, fs in os.walk(root) if "_logtide" not in d for f in fs if f.endswith(".parquet")
    ]
    return ds.dataset(files, format="parquet").to_table(columns=["id"]).column("id").to_pylist()


def test_id_memory_is_bounded_by_arrival_and_compaction_removes_older_copies(tmp_path):
    sink = parquet_sink(tmp_path, dedup_memory_ids=50, compact_after_seconds=0)
    for n in range(4):  # 4 batches of 40 old events: the memory keeps the newest 50 ids
        sink.write(items(40 * n, 40 * n + 40))
    id_files = os.listdir(tmp_path / "_logtide" / "g" / "ids")
    assert len(id_files) == 2, id_files  # the older id files are pruned
    restarted = parquet_sink(tmp_path, dedup_memory_ids=50)
    assert len(restarted.parquet.recent_ids()) == 50
    # a copy of the very first events, beyond the memory: written, then compaction drops it
    restarted.write(
        [Item(Record("logtide.route.analytics", 0, 1000 + i, None, None, [], None), make_event(i)) for i in range(5)]
    )
    assert count(tmp_path) == (165, 160)
    compact(restarted.parquet.store, min_files=8, after_s=0)  # a partition with few files, but a late one
    ids = plain_parquet_ids(tmp_path)
    assert len(ids) == len(set(ids)) == 160


def test_a_batch_written_again_from_the_same_offsets_replaces_its_files(tmp_path):
    # A power cut can lose the (not fsync'd) pending marker and offsets: the redelivered batch comes
    # back with the same first offsets, so the same file names, and replaces itself.
    sink = parquet_sink(tmp_path, dedup_memory_ids=0)
    sink.write(items(0, 10))
    offsets = tmp_path / "_logtide" / "g" / "offsets" / "logtide.route.analytics~0.json"
    recorded = offsets.read_bytes()
    sink.write(items(10, 30))
    offsets.write_bytes(recorded)  # the second batch's bookkeeping lost, its data files kept
    again = parquet_sink(tmp_path, dedup_memory_ids=0)
    again.write(items(10, 30))
    ids = plain_parquet_ids(tmp_path)
    assert len(ids) == len(set(ids)) == 30


def test_a_batch_that_reached_parquet_but_not_postgres_still_reaches_postgres(tmp_path, postgres_dsn, fast_kafka):
    from logtide import envelope
    from logtide.transport import connect
    from logtide.processors.sinks.service import SinkService

    table = f"ev_{uuid.uuid4().hex[:8]}"
    now = time.time_ns()
    records = [
        Record(
            "logtide.route.analytics", 0, i, None, envelope.encode(make_event(i, time=now, observed_time=now)), [], None
        )
        for i in range(20)
    ]

    def service(dsn):  # the real handler path: decode, the service's dedup memory, then the sink
        sink = AnalyticsSink(
            AnalyticsSettings(parquet={"path": str(tmp_path)}, postgres={"dsn": dsn, "table": table}), "g"
        )
        return SinkService(connect(fast_kafka), sink, topic="logtide.route.analytics", group_id="g")

    with pytest.raises(Retry):
        service("postgresql://postgres@127.0.0.1:1/x").handle(records)  # Parquet written, PostgreSQL down; dies
    restarted = service(postgres_dsn)
    restarted.handle(records)  # Kafka redelivers the batch after the restart
    assert pg_rows(postgres_dsn, f"SELECT count(*) FROM {table}") == [(20,)]
    assert count(tmp_path) == (20, 20)
    restarted.sink.close()

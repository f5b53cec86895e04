"""The sinks as a role over the embedded broker: kill -9 mid-batch, restart, no loss and no duplicates;
bad records to the DLQ; an unreachable destination holds the offsets and turns readiness false; older
records with routing headers are written like new ones."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid

import orjson
import psycopg
import pytest
import yaml

from logtide import envelope
from logtide.config import load_config
from logtide.dlq import H_TOPIC, error_info
from logtide.health import HealthServer
from logtide.topics import DLQ
from logtide.transport import KafkaSettings, TopicPartition, TopicSpec, connect
from logtide.processors.sinks.analytics.query import run_query
from logtide.processors.sinks.audit.storage import LocalArchive
from logtide.processors.sinks.audit.verify import verify_archive
from logtide.processors.sinks.build import build_services
from logtide.processors.sinks.config import SinkConfig
from sinks_helpers import LOGTIDE, make_event, produce, wait_for
from tests.legacy_records import old_headers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEY = "e2e-key"


def test_example_config_loads(monkeypatch):
    monkeypatch.setenv("LOGTIDE_AUDIT_KEY", "from-env")
    config = load_config(os.path.join(ROOT, "examples", "sink.yaml"), SinkConfig)
    assert list(config.enabled()) == ["monitoring", "audit", "analytics"]
    assert config.audit.hmac_key.get_secret_value() == "from-env"
    assert config.monitoring.loki.labels == ["k8s.namespace.name", "service.name", "k8s.container.name"]


def _audit_records(path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        if "manifest.json" in files:
            with open(os.path.join(root, "manifest.json"), "rb") as f:
                total += orjson.loads(f.read())["head"]["seq"]
    return total


def _pg_count(dsn, table) -> tuple[int, int]:
    try:
        with psycopg.connect(dsn) as conn:
            return conn.execute(f"SELECT count(*), count(DISTINCT id) FROM {table}").fetchone()
    except psycopg.errors.UndefinedTable:
        return (0, 0)


@pytest.mark.timeout(240)
def test_kill9_mid_batch_then_restart_loses_nothing_and_duplicates_nothing(
    broker, new_topic, tmp_path, loki, postgres_dsn
):
    n = 3000
    topics = {name: new_topic(3, prefix=f"sinks.{name}") for name in ("monitoring", "audit", "analytics")}
    events = [make_event(i, run=f"kill-{uuid.uuid4().hex[:6]}") for i in range(n)]
    table = f"kill_{uuid.uuid4().hex[:8]}"
    common = {"session_timeout_seconds": 6, "max_batch": 100}
    key_file = tmp_path / "audit.key"
    key_file.write_text(KEY)
    cfg = {
        "kafka": {"bootstrap": broker, "client": "confluent"},
        "http": {"host": "127.0.0.1", "port": 0},
        "monitoring": {"topic": topics["monitoring"], **common, "loki": {"url": loki.url}},
        "audit": {
            "topic": topics["audit"],
            **common,
            "storage": {"path": str(tmp_path / "audit")},
            "hmac_key": f"file:{key_file}",
            "roll_bytes": 200_000,
        },
        "analytics": {
            "topic": topics["analytics"],
            **common,
            "parquet": {"path": str(tmp_path / "parquet")},
            "postgres": {"dsn": postgres_dsn, "table": table},
        },
    }
    path = tmp_path / "sink.yaml"
    path.write_text(yaml.safe_dump(cfg))
    now = time.time_ns()
    for ev in events:  # live logs: Parquet seeds its duplicate memory at start from the last hours' files
        ev["time"] = ev["observed_time"] = now - 10**9
    for topic in topics.values():
        produce(broker, topic, events + events[:300])  # with 300 upstream duplicates (same event twice)

    def start():
        return subprocess.Popen(
            [*LOGTIDE, "sink", "--config", str(path), "--log-level", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "sink.log", "ab"),
        )

    proc = start()
    try:
        wait_for(lambda: _pg_count(postgres_dsn, table)[0] >= 300, 60, "the first batches in PostgreSQL")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        at_kill = (_pg_count(postgres_dsn, table)[0], _audit_records(tmp_path / "audit"), len(loki.entries))
        proc = start()

        def progress():
            return {
                "postgres": _pg_count(postgres_dsn, table)[0],
                "audit": _audit_records(tmp_path / "audit"),
                "loki": len(loki.entries),
                "parquet": run_query(str(tmp_path / "parquet"), "SELECT count(DISTINCT id) FROM events_all")[1][0][0],
            }

        wait_for(lambda: set(progress().values()) == {n}, 150, "every event in every sink", describe=progress)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert at_kill[0] < n or at_kill[1] < n, f"the kill came after everything was written: {at_kill}"
    assert _pg_count(postgres_dsn, table) == (n, n)
    assert run_query(str(tmp_path / "parquet"), "SELECT count(*), count(DISTINCT id) FROM events_all")[1] == [(n, n)]
    reports = verify_archive(LocalArchive(tmp_path / "audit"), KEY.encode())
    assert len(reports) == 3 and all(r.ok for r in reports), [r.problems for r in reports]
    assert sum(r.records for r in reports) == n
    assert _archived_ids(tmp_path / "audit") == {e["id"] for e in events}
    assert len(loki.entries) == n and not loki.errors


def _archived_ids(path) -> set[str]:
    """The ids of every event in the audit segments under ``path``."""
    ids = set()
    for root, _, files in os.walk(path):
        for f in files:
            if f.startswith("seg-"):
                with open(os.path.join(root, f), "rb") as fh:
                    ids.update(orjson.loads(x)["id"] for x in fh.read().splitlines()[1:])
    return ids


def _dead_letters_from(transport, topic: str, n: int) -> list:
    """The DLQ records that came from ``topic`` (until ``n`` of them, 20 s at most)."""
    consumer = transport.consumer(None)
    consumer.assign([TopicPartition(DLQ, 0)])
    found = []
    deadline = time.monotonic() + 20
    while len(found) < n and time.monotonic() < deadline:
        found += [rec for rec in consumer.poll_batch(1000, 0.5) if error_info(rec.headers).get("topic") == topic]
    consumer.close()
    return found


def _committed(broker, group) -> dict:
    admin = connect(KafkaSettings(bootstrap=broker, client="confluent")).admin()
    try:
        return admin.group_offsets(group)
    finally:
        admin.close()


@pytest.mark.timeout(90)
def test_unreachable_s3_holds_offsets_and_readiness_then_bad_records_reach_the_dlq(
    broker, new_topic, tmp_path, aws_env
):
    from moto.server import ThreadedMotoServer

    from logtide.broker import free_port

    admin = connect(KafkaSettings(bootstrap=broker, client="confluent")).admin()
    admin.create_topics([TopicSpec(DLQ, 1)])
    admin.close()
    topic = new_topic(1, prefix="sinks.s3down")
    group = f"g-{uuid.uuid4().hex[:8]}"
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    config = SinkConfig.model_validate(
        {
            "kafka": {"bootstrap": broker, "client": "confluent"},
            "audit": {
                "topic": topic,
                "group": group,
                "session_timeout_seconds": 6,
                "storage": {
                    "path": str(tmp_path),
                    "s3": {"bucket": "held", "endpoint_url": endpoint, "connect_timeout_seconds": 1},
                },
                "hmac_key": KEY,
                "roll_bytes": 1024,
            },
        }
    )
    transport = connect(config.kafka)
    [service] = build_services(config, transport)
    service.loop.max_retry_backoff = 1.0
    produce(broker, topic, [make_event(i, run="s3down") for i in range(20)], raw=[b"not json", b'{"id": 1}'])
    stop = threading.Event()
    t = threading.Thread(target=service.run, args=(stop,), daemon=True)
    t.start()
    server = None
    try:
        wait_for(lambda: not service.ready(), 30, "readiness false while S3 is unreachable")
        assert TopicPartition(topic, 0) not in _committed(broker, group)  # offsets held
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket="held", ObjectLockEnabledForBucket=True
        )
        wait_for(lambda: _committed(broker, group).get(TopicPartition(topic, 0)) == 22, 30, "offsets committed")
        assert service.ready()
    finally:
        stop.set()
        t.join(20)
        if server is not None:
            server.stop()
    # the two bad records are in the DLQ with the reason
    found = [(rec.value, error_info(rec.headers)) for rec in _dead_letters_from(transport, topic, 2)]
    assert sorted(v for v, _ in found) == [b"not json", b'{"id": 1}']
    assert all(i["component"] == "sink-audit" and i["stage"] == "sink-audit-decode" for _, i in found)
    assert H_TOPIC.startswith("logtide.error.")


@pytest.mark.timeout(90)
def test_older_records_with_routing_headers_are_written_like_new_ones(broker, new_topic, tmp_path):
    """Records written before events went without headers, whose headers now disagree with the value
    (routes "monitoring" only), mixed with new ones: the sink reads the value; a bad older record
    reaches the DLQ with its own headers and one id."""
    admin = connect(KafkaSettings(bootstrap=broker, client="confluent")).admin()
    admin.create_topics([TopicSpec(DLQ, 1)])
    admin.close()
    topic, group, run = new_topic(1, prefix="sinks.old"), f"g-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:6]
    config = SinkConfig.model_validate(
        {
            "kafka": {"bootstrap": broker, "client": "confluent"},
            "audit": {
                "topic": topic,
                "group": group,
                "session_timeout_seconds": 6,
                "storage": {"path": str(tmp_path)},
                "hmac_key": KEY,
                "roll_bytes": 2048,
            },
        }
    )
    transport = connect(config.kafka)
    [service] = build_services(config, transport)
    events = [make_event(i, run=run) for i in range(20)]
    produce(
        broker,
        topic,
        events[:10],
        headers=lambda ev: [(k, b"monitoring" if k == "logtide.routes" else v) for k, v in old_headers(ev)],
    )
    produce(broker, topic, events[10:])
    cut = make_event(99, run=run)
    producer = transport.producer()
    producer.produce(topic, envelope.encode(cut)[:60], key=b"cut", headers=old_headers(cut))
    assert producer.flush(30) == 0
    producer.close()
    stop = threading.Event()
    t = threading.Thread(target=service.run, args=(stop,), daemon=True)
    t.start()
    try:
        wait_for(lambda: _committed(broker, group).get(TopicPartition(topic, 0)) == 21, 45, "offsets committed")
    finally:
        stop.set()
        t.join(20)
    reports = verify_archive(LocalArchive(tmp_path), KEY.encode())
    assert all(r.ok for r in reports) and sum(r.records for r in reports) == 20
    assert _archived_ids(tmp_path) == {e["id"] for e in events}
    [dead] = _dead_letters_from(transport, topic, 1)
    assert dead.value == envelope.encode(cut)[:60]
    assert dead.headers[:5] == old_headers(cut)[1:] + [("logtide.id", cut["id"].encode())]


@pytest.mark.timeout(60)
def test_logtide_up_part_runs_the_three_sinks_with_local_defaults(broker, tmp_path):
    from logtide.up import UpContext
    from logtide.processors.sinks.up import up
    from logtide.up import installation_topics

    settings = KafkaSettings(bootstrap=broker, client="confluent")
    admin = connect(settings).admin()
    admin.create_topics(installation_topics(1, []))  # as `logtide up` does before asking the roles
    admin.close()
    health = HealthServer("127.0.0.1", 0).start()
    try:
        fast = {"session_timeout_seconds": 6}
        ctx = UpContext(
            kafka=settings,
            transport=connect(settings),
            workdir=tmp_path,
            health=health,
            options={"monitoring": fast, "audit": fast, "analytics": fast},
        )
        services = up(ctx)
        assert sorted(s.name for s in services) == ["sink-analytics", "sink-audit", "sink-monitoring"]
        assert (tmp_path / "audit.key").stat().st_mode & 0o077 == 0
        assert services[1].sink.local.root == tmp_path / "audit"
        stop = threading.Event()
        crashed = []

        def run(svc):
            try:
                svc.run(stop)
            except Exception as exc:  # noqa: BLE001 - the assertion below reports it
                crashed.append((svc.name, exc))

        threads = [threading.Thread(target=run, args=(s,), daemon=True) for s in services]
        for th in threads:
            th.start()
        stop.wait(2.0)
        stop.set()
        for th in threads:
            th.join(30)
            assert not th.is_alive()
        assert not crashed
    finally:
        health.stop()


def test_sink_command_errors_are_one_line(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("kafka: {bootstrap: 127.0.0.1:1}\n")
    out = subprocess.run([*LOGTIDE, "sink", "--config", str(empty)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "no sink configured" in out.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("audit:\n  storage: {path: /tmp/x}\n  hmac_key: ${HOME}\n  roll_byte: 5\n")
    out = subprocess.run([*LOGTIDE, "sink", "--config", str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "bad.yaml:4" in out.stderr and "roll_byte" in out.stderr
    # Issue 17 (7): an inline key was accepted although the docs say never inline.
    bad.write_text("kafka: {bootstrap: 127.0.0.1:1}\naudit:\n  storage: {path: /tmp/x}\n  hmac_key: inline-secret\n")
    out = subprocess.run([*LOGTIDE, "sink", "--config", str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "bad.yaml:4" in out.stderr and "hmac_key must be a reference" in out.stderr, (
        out.stderr
    )
    assert "inline-secret" not in out.stderr
    example = os.path.join(ROOT, "examples", "sink.yaml")
    out = subprocess.run(
        [*LOGTIDE, "sink", "--config", example],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "LOGTIDE_AUDIT_KEY"},
    )
    assert out.returncode == 2 and "LOGTIDE_AUDIT_KEY is not set" in out.stderr  # no default key
    out = subprocess.run(
        [*LOGTIDE, "sink", "--config", example, "--only", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LOGTIDE_AUDIT_KEY": "k" * 32},
    )
    assert out.returncode == 2 and "--only" in out.stderr
    helptext = subprocess.run([*LOGTIDE, "sink", "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "logtide sink --config examples/sink.yaml" in helptext


def _plain_parquet(root) -> tuple[int, int]:
    """(rows, distinct ids) as plain DuckDB reads the files: no logtide view, no dedup."""
    import duckdb

    files = [
        os.path.join(d, f) for d, _, fs in os.walk(root) if "_logtide" not in d for f in fs if f.endswith(".parquet")
    ]
    if not files:
        return (0, 0)
    return duckdb.connect().execute("SELECT count(*), count(DISTINCT id) FROM read_parquet(?)", [files]).fetchone()


@pytest.mark.timeout(240)
def test_parquet_kill9_then_old_events_produced_again_stay_one_row_per_id_for_any_reader(broker, new_topic, tmp_path):
    # Issue 17 (1): copies of events the killed sink had written, with event times far more than two
    # hours old (a backfill, a replay), became new rows; DuckDB on the files saw them.
    n = 4000
    topic = new_topic(3, prefix="sinks.pq-kill")
    group = f"pq-kill-{uuid.uuid4().hex[:6]}"
    events = [make_event(i, run=f"pq-{uuid.uuid4().hex[:6]}") for i in range(n)]  # event time: Nov 2025
    cfg = {
        "kafka": {"bootstrap": broker, "client": "confluent"},
        "http": {"host": "127.0.0.1", "port": 0},
        "analytics": {
            "topic": topic,
            "group": group,
            "session_timeout_seconds": 6,
            "max_batch": 100,
            "parquet": {"path": str(tmp_path / "parquet")},
        },
    }
    path = tmp_path / "sink.yaml"
    path.write_text(yaml.safe_dump(cfg))
    produce(broker, topic, events)

    def start():
        return subprocess.Popen(
            [*LOGTIDE, "sink", "--config", str(path), "--log-level", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "sink.log", "ab"),
        )

    def caught_up():
        committed = _committed(broker, group)
        return sum(v or 0 for tp, v in committed.items() if tp.topic == topic)

    proc = start()
    try:
        wait_for(lambda: _plain_parquet(tmp_path / "parquet")[0] >= 300, 60, "the first batches in Parquet")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        at_kill = _plain_parquet(tmp_path / "parquet")[0]
        produce(broker, topic, events)  # upstream re-sends everything, old event times and all
        proc = start()
        wait_for(
            lambda: caught_up() == 2 * n,
            150,
            "the sink to consume the originals and the copies",
            describe=lambda: (caught_up(), _plain_parquet(tmp_path / "parquet")),
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert at_kill < n, f"the kill came after everything was written: {at_kill}"
    assert _plain_parquet(tmp_path / "parquet") == (n, n)

"""logtide top: rates, errors, DLQ rate and lag from Kafka and the roles' /metrics."""

from __future__ import annotations

import json
import threading
import time

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from logtide.health import HealthServer
from logtide.transport import connect

from logtide.tools.top import metrics_url


@pytest.fixture
def busy_role():
    """A real /metrics endpoint of a 'processor' whose counters move (a server double of a role)."""
    registry = CollectorRegistry()
    consumed = Counter("logtide_consumer_records_total", "", ["component", "topic"], registry=registry)
    produced = Counter("logtide_events_produced_total", "", ["component", "topic"], registry=registry)
    dlq = Counter("logtide_dlq_records_total", "", ["component", "stage", "error"], registry=registry)
    errors = Counter("logtide_produce_errors_total", "", ["component"], registry=registry)
    lag = Gauge("logtide_consumer_lag_records", "", ["component", "group", "topic", "partition"], registry=registry)
    lag.labels("processor", "g", "t", "0").set(7)
    server = HealthServer("127.0.0.1", 0, registry=registry).start()
    stop = threading.Event()

    def work():
        while not stop.wait(0.02):
            consumed.labels("processor", "logtide.raw.k8s").inc(10)
            produced.labels("processor", "logtide.route.audit").inc(9)
            dlq.labels("processor", "parse", "ValueError").inc(1)
            errors.labels("processor").inc(1)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    yield server.url
    stop.set()
    t.join(2)
    server.stop()


def test_metrics_url_forms():
    assert metrics_url("127.0.0.1:9464") == "http://127.0.0.1:9464/metrics"
    assert metrics_url("http://a:1/") == "http://a:1/metrics"
    assert metrics_url("http://a:1/custom") == "http://a:1/custom"


@pytest.mark.timeout(60)
def test_top_once_json(cli, fast_kafka, new_topic, busy_role):
    topic = new_topic(1)
    group = f"top-test-{topic}"
    p = connect(fast_kafka).producer(linger_ms=0)
    for _ in range(25):
        p.produce(topic, b"x")
    assert p.flush(30) == 0
    p.close()
    consumer = connect(fast_kafka).consumer(group, session_timeout_seconds=6)
    try:
        consumer.subscribe([topic])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 25 and time.monotonic() < deadline:
            got += consumer.poll_batch(100, 0.2)
        consumer.commit({got[0].tp: 10})  # 15 behind
    finally:
        consumer.close()

    out = cli(
        "top",
        "--once",
        "--json",
        "--interval",
        "1",
        "--metrics",
        busy_role,
        "--metrics",
        "http://127.0.0.1:9/metrics",
        "--group",
        group,
        "--topics",
        f"^{topic}$",
        check_rc=0,
    )
    view = json.loads(out.stdout)
    [proc] = [c for c in view["components"] if c["component"] == "processor"]
    assert proc["in_rate"] > 0 and proc["out_rate"] > 0 and proc["dlq_rate"] > 0 and proc["error_rate"] > 0
    assert proc["lag"] == 7
    [g] = view["groups"]
    assert g["group"] == group and g["lag"] == 15 and g["status"] == "STOP" and g["lag_seconds"] >= 0
    assert {"topic": topic, "records": 25, "rate": 0.0} in view["topics"]
    assert "http://127.0.0.1:9/metrics" in view["metrics_down"]
    assert view["interval"] > 0

    table = cli(
        "top",
        "--once",
        "--interval",
        "0.5",
        "--metrics",
        busy_role,
        "--group",
        group,
        "--topics",
        f"^{topic}$",
        check_rc=0,
    ).stdout
    assert "processor" in table and group in table and "CONSUMED/s" in table


def test_top_errors(cli):
    r = cli("top", "--json")
    assert r.returncode == 2 and "--json needs --once" in r.stderr

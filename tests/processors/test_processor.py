"""The processor on the in-memory transport (tests/processors/test_replicas.py runs it against the
embedded broker, as processes): outputs with keys and no headers (inputs with the headers of older
records too), the DLQ with reasons and ids for every kind of bad input, and the lookup-table join
from a compacted topic."""

from __future__ import annotations

import threading
import time

import orjson
import pytest

from logtide import envelope
from logtide.dlq import error_info
from logtide.transport import connect
from logtide.processors.app import DLQ_HEADER_SIZE, EVENT_LAG, load, make_processor, observe_many
from tests.legacy_records import old_headers
from tests.processors.conftest import (
    create_topic,
    make_event,
    produce,
    produce_events,
    read_topic,
    route_topic,
    write_config,
)

PIPELINE = [
    {"type": "parse"},
    {"type": "normalize"},
    {"type": "redact", "kinds": ["email", "card"]},
    {
        "type": "route",
        "rules": [
            {"when": "severity_number >= 17", "sinks": ["monitoring"]},
            {"when": 'resource["service.name"] == "auth"', "sinks": ["audit"]},
            {"when": "true", "sinks": ["analytics"]},
        ],
    },
]


class Running:
    """A processor replica in a thread of the test process."""

    def __init__(self, settings, config_path):
        self.config = load(str(config_path))
        self.proc = make_processor(self.config, connect(settings), str(config_path))
        self.proc.ensure_topics()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.proc.run, args=(self.stop,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self.proc

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.mark.timeout(90)
def test_routes_outputs_and_dead_letters(memory_kafka, names, tmp_path):
    create_topic(memory_kafka, names["raw"], 2)
    good = [
        make_event(i, service="auth" if i % 5 == 0 else "shop", level="ERROR" if i % 4 == 0 else "INFO")
        for i in range(200)
    ]
    produce_events(memory_kafka, names["raw"], good)
    newer = make_event(999)
    newer["schema"] = 99
    deep = '{"a":' * 100 + "1" + "}" * 100
    bad = [
        (b"k1", b'{"id": "x", "source": "demo", '),  # invalid JSON
        (b"k2", b'{"id": "\xff\xfe", "source": "demo"}'),  # invalid UTF-8
        (b"k3", deep.encode()),  # JSON bomb as the envelope
        (b"k4", envelope.encode(make_event(1000, body=deep))),  # JSON bomb inside the body
        (b"k5", envelope.encode(newer)),  # unknown envelope version
        (b"k6", b"[1, 2, 3]"),  # not an object
        (b"k7", b"x" * (10 * 1024 * 1024)),  # 10 MB
    ]
    produce(memory_kafka, names["raw"], bad, headers=[("origin", b"test")], **{"message.max.bytes": 20_000_000})
    # good after bad, as older sources wrote them: with routing headers, one of which now lies
    old = [
        make_event(2000 + i, service="auth" if i % 2 else "shop", level="ERROR" if i < 5 else "INFO") for i in range(10)
    ]
    for e in old:
        stale = [(k, b"monitoring" if k == "logtide.routes" else v) for k, v in old_headers(e)]
        produce(memory_kafka, names["raw"], [(b"old", envelope.encode(e))], headers=stale)
    newer_old = make_event(3000)
    newer_old["schema"] = 99
    produce(
        memory_kafka,
        names["raw"],
        [(b"k8", envelope.encode(newer_old))],
        headers=old_headers(newer_old) + [("origin", b"test")],
    )  # older record, dead letter
    path = write_config(tmp_path / "p.yaml", memory_kafka, names, PIPELINE, max_batch=100)
    with Running(memory_kafka, path) as proc:
        analytics = read_topic(memory_kafka, route_topic(names, "analytics"), 210, timeout=40)
        dlq = read_topic(memory_kafka, names["dlq"], len(bad) + 1, timeout=20)
        monitoring = read_topic(memory_kafka, route_topic(names, "monitoring"), 55, timeout=10)
        audit = read_topic(memory_kafka, route_topic(names, "audit"), 45, timeout=10)
        deadline = time.monotonic() + 20
        while proc.loop.handled < 218 and time.monotonic() < deadline:
            time.sleep(0.1)

    by_id = {(r.topic, envelope.decode(r.value)["id"]): r for r in analytics + monitoring + audit}
    assert {envelope.decode(r.value)["id"] for r in analytics} == {e["id"] for e in good + old}
    assert len(analytics) == 210 and len(monitoring) == 55 and len(audit) == 45
    assert all(r.headers == [] for r in analytics + monitoring + audit)  # no headers on route records
    rec = by_id[(route_topic(names, "monitoring"), good[20]["id"])]
    ev = envelope.decode(rec.value)
    assert ev["routes"] == ["monitoring", "audit", "analytics"]
    assert ev["body"] == "request 20" and ev["attributes"]["user"] == "<email>" and ev["severity_number"] == 17
    assert rec.key == b"auth"  # the input key: one stream keeps its order
    assert EVENT_LAG.labels("demo")._sum.get() > 0  # event-time lag observed
    for i, e in enumerate(old):  # routed by the value, not by the old header that said "monitoring"
        want = ["monitoring"] * (i < 5) + ["audit"] * (i % 2) + ["analytics"]
        assert {t for t, eid in by_id if eid == e["id"]} == {route_topic(names, s) for s in want}
        assert envelope.decode(by_id[(route_topic(names, "analytics"), e["id"])].value)["routes"] == want

    by_key = {r.key: r for r in dlq}
    assert set(by_key) == {b"k1", b"k2", b"k3", b"k4", b"k5", b"k6", b"k7", b"k8"}
    info = {k: error_info(r.headers) for k, r in by_key.items()}
    assert info[b"k1"]["stage"] == "decode" and "invalid JSON" in info[b"k1"]["message"]
    assert "UTF-8" in info[b"k2"]["message"]
    assert info[b"k3"]["class"] == "EnvelopeError"
    assert info[b"k4"]["stage"] == "parse" and "nested" in info[b"k4"]["message"]
    assert "unknown envelope schema 99" in info[b"k5"]["message"]
    assert "must be a JSON object" in info[b"k6"]["message"]
    assert "over max_value_bytes" in info[b"k7"]["message"]
    assert envelope.header_value(by_key[b"k7"].headers, DLQ_HEADER_SIZE) == str(10 * 1024 * 1024)
    assert len(by_key[b"k7"].value) == 65536
    for k, r in by_key.items():
        assert info[k]["topic"] == names["raw"] and int(info[k]["offset"]) >= 0 and info[k]["component"] == "processor"
        assert envelope.header_value(r.headers, "origin") == "test"  # original headers kept
    assert by_key[b"k1"].value == b'{"id": "x", "source": "demo", '  # original value kept
    assert by_key[b"k2"].value == b'{"id": "\xff\xfe", "source": "demo"}'
    # the event's id, read from the value's head even when the rest is broken or cut off; none when
    # there is none to read; an older record's own id header is kept, not doubled
    ids = {k: [v for h, v in r.headers if h == "logtide.id"] for k, r in by_key.items()}
    assert ids == {
        b"k1": [b"x"],
        b"k2": [],
        b"k3": [],
        b"k4": [make_event(1000)["id"].encode()],
        b"k5": [newer["id"].encode()],
        b"k6": [],
        b"k7": [],
        b"k8": [newer_old["id"].encode()],
    }
    assert by_key[b"k8"].headers[:6] == old_headers(newer_old)[1:] + [
        ("origin", b"test"),
        ("logtide.id", newer_old["id"].encode()),
    ]


@pytest.mark.timeout(90)
def test_enrich_from_compacted_lookup_topic(memory_kafka, names, tmp_path):
    lookup = f"test.lookup.{names['group']}"
    create_topic(memory_kafka, lookup, 1, config={"cleanup.policy": "compact"})
    produce(
        memory_kafka,
        lookup,
        [
            (b"checkout", orjson.dumps({"team": "shop", "oncall": "shop-oncall", "tier": 1})),
            (b"payments", orjson.dumps({"team": "money", "oncall": "pay-oncall", "tier": 0})),
            (b"checkout", orjson.dumps({"team": "shop-core", "oncall": "shop-oncall", "tier": 1})),  # newer wins
            (b"gone", orjson.dumps({"team": "x"})),
            (b"gone", None),  # tombstone
        ],
    )
    create_topic(memory_kafka, names["raw"], 1)
    windows = f"test.windows.{names['group']}"
    create_topic(memory_kafka, windows, 1)
    pipeline = [
        {
            "type": "enrich",
            "static": {"deployment.environment": "test"},
            "lookup": {"topic": lookup, "startup_wait_seconds": 10},
        },
        {"type": "aggregate", "window_seconds": 1, "grace_seconds": 0, "topic": windows},
        {"type": "route", "default": ["analytics"]},
    ]
    path = write_config(tmp_path / "p.yaml", memory_kafka, names, pipeline)
    with Running(memory_kafka, path) as proc:
        table = proc.pipeline.steps[0].table
        produce_events(
            memory_kafka,
            names["raw"],
            [
                make_event(1, service="checkout"),
                make_event(2, service="payments"),
                make_event(3, service="gone"),
                make_event(4, service="new"),
            ],
        )
        out = read_topic(memory_kafka, route_topic(names, "analytics"), 4, timeout=30)
        assert set(table.table) == {"checkout", "payments"}
        # the table follows the topic while running
        produce(memory_kafka, lookup, [(b"new", orjson.dumps({"team": "fresh", "tier": 2}))])
        deadline = time.monotonic() + 15
        while "new" not in table.table and time.monotonic() < deadline:
            time.sleep(0.1)
        produce_events(memory_kafka, names["raw"], [make_event(5, service="new")])
        out += read_topic(memory_kafka, route_topic(names, "analytics"), 5, timeout=30)[4:]
    res = {envelope.decode(r.value)["resource"]["service.name"]: envelope.decode(r.value)["resource"] for r in out}
    assert res["checkout"]["service.team"] == "shop-core" and res["checkout"]["service.tier"] == 1
    assert res["payments"]["service.oncall"] == "pay-oncall"
    assert "service.team" not in res["gone"]
    assert res["new"]["service.team"] == "fresh"
    assert all(r["deployment.environment"] == "test" for r in res.values())
    # the aggregate step produced its window counts (the last window at shutdown)
    rows = [orjson.loads(r.value) for r in read_topic(memory_kafka, windows, 4, timeout=20, settle=0.5)]
    assert sum(r["events"] for r in rows) == 5
    assert {r["service"] for r in rows} == {"checkout", "payments", "gone", "new"}


def test_up_contributes_a_processor_with_the_default_pipeline(memory_kafka, tmp_path):
    from logtide.health import HealthServer
    from logtide.up import UpContext
    from logtide.processors.app import Processor, up

    health = HealthServer("127.0.0.1", 0).start()
    try:
        ctx = UpContext(kafka=memory_kafka, transport=connect(memory_kafka), workdir=tmp_path, health=health)
        services = up(ctx)
        assert len(services) == 1 and isinstance(services[0], Processor)
        proc = services[0]
        assert [s.type_name for s in proc.pipeline.steps] == ["parse", "normalize", "redact", "route", "redact"]
        assert proc.config.topics == ["logtide.raw.*"] and proc.loop.pattern
        assert proc.config.session_timeout_seconds == 10
        assert "processor" in health._ready
        proc.producer.close()
    finally:
        health.stop()


@pytest.mark.timeout(60)
def test_consumer_lag_is_measured_beside_the_batches(memory_kafka, names, tmp_path):
    """The lag gauge comes from a client and thread of its own (its broker round trips never stall a
    batch); it stops with the loop."""
    from prometheus_client import REGISTRY

    create_topic(memory_kafka, names["raw"], 1)
    produce_events(memory_kafka, names["raw"], [make_event(i) for i in range(40)])
    running = Running(memory_kafka, write_config(tmp_path / "p.yaml", memory_kafka, names, PIPELINE, max_batch=10))
    running.proc.loop.lag_interval = 0.2

    def lag():
        return REGISTRY.get_sample_value(
            "logtide_consumer_lag_records",
            {"component": "processor", "group": names["group"], "topic": names["raw"], "partition": "0"},
        )

    with running:
        read_topic(memory_kafka, route_topic(names, "analytics"), 40, timeout=30)
        deadline = time.monotonic() + 20
        while lag() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert lag() is not None and lag() >= 0
    assert lag() is None  # the partition was revoked at close: its series is gone
    time.sleep(0.5)
    assert not [t for t in threading.enumerate() if t.name == "processor-lag" and t.is_alive()]


@pytest.mark.timeout(60)
def test_refused_outputs_make_the_batch_retry(memory_kafka, names):
    """The producer reports failures only (no callback per acknowledged output): a refused output must
    still keep the batch from being committed."""
    from logtide.consume import Retry
    from logtide.transport import Record
    from logtide.processors.app import ProcessorConfig

    config = ProcessorConfig(
        kafka=memory_kafka,
        topics=[names["raw"]],
        route_prefix="not a topic!.",
        dlq_topic=names["dlq"],
        flush_timeout_seconds=20,
        pipeline=[{"type": "route", "rules": [{"when": "true", "sinks": ["analytics"]}]}],
    )
    proc = make_processor(config, connect(memory_kafka))
    records = [Record(names["raw"], 0, i, b"k", envelope.encode(make_event(i)), [], None) for i in range(5)]
    try:
        with pytest.raises(Retry, match="5 refused"):
            proc.handle(records)
        assert proc.processed == 0
    finally:
        proc.producer.close()


def test_observe_many_exports_what_observe_would():
    from prometheus_client import CollectorRegistry, Histogram

    registry = CollectorRegistry()
    buckets = (0.01, 0.5, 1, 2, 60)
    one = Histogram("one_seconds", "by observe", buckets=buckets, registry=registry)
    many = Histogram("many_seconds", "by observe_many", buckets=buckets, registry=registry)
    values = [0.0, 0.01, 0.010001, 0.5, 0.7, 1, 2, 2.5, 60, 61, 1e9, -3]
    for v in values:
        one.observe(v)
    observe_many(many, values)
    observe_many(many, [])
    samples = {
        m.name.split("_")[0]: [
            (s.name.split("_", 1)[1], s.labels, s.value) for s in m.samples if not s.name.endswith("_created")
        ]
        for m in registry.collect()
    }
    assert samples["one"] == samples["many"] and len(samples["one"]) == len(buckets) + 3  # +Inf, count, sum

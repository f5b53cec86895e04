"""The transport interface: the same tests over both Kafka backends against the real embedded broker,
and over the in-memory backend (logtide/transport/memory.py)."""

from __future__ import annotations

import time
import uuid

import pytest

from logtide.topics import exact_end_offsets
from logtide.transport import KafkaSettings, TopicPartition, TopicSpec, TransportError, connect

TEST_SESSION_TIMEOUT_SECONDS = 6  # a group join then takes ~3 s

pytestmark = pytest.mark.timeout(60)


def produce_all(producer, topic, n, *, key=None, headers=None, partition=None, start=0):
    """Produce n records and wait for every delivery callback; return the acked records."""
    acked, errors = [], []

    def cb(err, rec):
        (errors if err else acked).append(err or rec)

    for i in range(start, start + n):
        producer.produce(topic, f"value-{i}".encode(), key=key, headers=headers, partition=partition, on_delivery=cb)
    assert producer.flush(30) == 0
    assert not errors, errors
    return acked


def produce_n(transport, topic, n, **kwargs):
    """produce_all with a producer of its own."""
    producer = transport.producer()
    try:
        return produce_all(producer, topic, n, **kwargs)
    finally:
        producer.close()


def consume(consumer, count, deadline_s=20.0, max_records=500):
    out = []
    deadline = time.monotonic() + deadline_s
    while len(out) < count and time.monotonic() < deadline:
        out.extend(consumer.poll_batch(max_records, 0.5))
    return out


@pytest.fixture(params=["confluent", "kafka-python", "memory"])
def client(request) -> str:
    """The contract holds for both Kafka backends and for the in-memory one."""
    return request.param


@pytest.fixture
def settings(client, request) -> KafkaSettings:
    if client == "memory":
        return KafkaSettings(client="memory", bootstrap=f"test-{uuid.uuid4().hex[:8]}")
    return KafkaSettings(bootstrap=request.getfixturevalue("broker"), client=client)


@pytest.fixture
def transport(settings):
    return connect(settings)


@pytest.fixture
def new_topic(settings):
    """Topics where the transport under test lives (the embedded broker, or the memory cluster)."""

    def make(partitions: int = 1, prefix: str = "test", config: dict | None = None) -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:10]}"
        with connect(settings).admin() as admin:
            admin.create_topics([TopicSpec(name, partitions, config=config or {})])
        return name

    return make


def test_produce_with_key_and_headers_is_acked_and_consumed(transport, new_topic):
    topic = new_topic(1)
    acked = produce_n(transport, topic, 5, key=b"pod-a", headers=[("logtide.source", b"k8s")])
    assert len(acked) == 5
    assert sorted(r.offset for r in acked) == [0, 1, 2, 3, 4]
    assert all(r.topic == topic and r.partition == 0 for r in acked)
    assert sorted(r.value for r in acked) == sorted(f"value-{i}".encode() for i in range(5))
    assert all(r.key == b"pod-a" and r.tp == (topic, 0) for r in acked)

    consumer = transport.consumer(None)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        recs = consume(consumer, 5)
    finally:
        consumer.close()
    assert [r.value for r in recs] == [f"value-{i}".encode() for i in range(5)]
    assert all(r.key == b"pod-a" for r in recs)
    assert all(("logtide.source", b"k8s") in r.headers for r in recs)
    assert all(isinstance(r.timestamp, int) and r.timestamp > 1_600_000_000_000 for r in recs)


def test_delivery_callbacks_run_on_caller_thread(transport, new_topic):
    import threading

    topic = new_topic(1)
    threads = set()
    producer = transport.producer()
    try:
        for _ in range(20):
            producer.produce(topic, b"x", on_delivery=lambda err, rec: threads.add(threading.get_ident()))
        producer.flush(30)
    finally:
        producer.close()
    assert threads == {threading.get_ident()}


def test_same_key_goes_to_one_partition(transport, new_topic):
    topic = new_topic(3)
    acked = produce_n(transport, topic, 30, key=b"stream-1")
    assert len({r.partition for r in acked}) == 1


def test_consume_in_batches_respects_max_records(transport, new_topic):
    topic = new_topic(1)
    produce_n(transport, topic, 300)
    consumer = transport.consumer(None)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        seen, batches = [], 0
        deadline = time.monotonic() + 20
        while len(seen) < 300 and time.monotonic() < deadline:
            batch = consumer.poll_batch(100, 0.5)
            assert len(batch) <= 100
            batches += bool(batch)
            seen.extend(batch)
    finally:
        consumer.close()
    assert [r.offset for r in seen] == list(range(300))
    assert batches >= 3


def test_explicit_commit_and_committed(transport, new_topic):
    topic = new_topic(1)
    tp = TopicPartition(topic, 0)
    group = f"g-{uuid.uuid4().hex[:8]}"
    produce_n(transport, topic, 10)
    consumer = transport.consumer(group, session_timeout_seconds=TEST_SESSION_TIMEOUT_SECONDS)
    try:
        consumer.assign([tp])
        recs = consume(consumer, 10)
        assert len(recs) == 10
        assert consumer.committed([tp]) == {tp: None}  # auto-commit is off
        consumer.commit({tp: 7})
        assert consumer.committed([tp]) == {tp: 7}
    finally:
        consumer.close()
    # a new consumer of the same group resumes at the committed offset
    consumer = transport.consumer(group, session_timeout_seconds=TEST_SESSION_TIMEOUT_SECONDS)
    try:
        consumer.assign([tp])
        assert consumer.committed([tp]) == {tp: 7}
        recs = consume(consumer, 3)
    finally:
        consumer.close()
    assert [r.offset for r in recs][:3] == [7, 8, 9]


def test_commit_empty_is_noop(transport):
    consumer = transport.consumer(None)
    try:
        consumer.commit({})
    finally:
        consumer.close()


def test_seek(transport, new_topic):
    topic = new_topic(1)
    tp = TopicPartition(topic, 0)
    produce_n(transport, topic, 20)
    consumer = transport.consumer(None)
    try:
        consumer.assign([tp])
        consumer.seek(tp, 15)
        recs = consume(consumer, 5)
        assert [r.offset for r in recs][:5] == [15, 16, 17, 18, 19]
        consumer.seek(tp, 2)
        recs = consume(consumer, 1)
        assert recs[0].offset == 2
    finally:
        consumer.close()


def test_offsets_for_times_seek_to_time(transport, new_topic):
    topic = new_topic(1)
    tp = TopicPartition(topic, 0)
    producer = transport.producer(linger_ms=0)
    try:
        produce_all(producer, topic, 5, start=0)
        time.sleep(0.3)
        middle_ms = int(time.time() * 1000)
        time.sleep(0.3)
        produce_all(producer, topic, 5, start=5)
    finally:
        producer.close()
    consumer = transport.consumer(None)
    try:
        found = consumer.offsets_for_times({tp: middle_ms})
        assert found == {tp: 5}
        consumer.assign([tp])
        consumer.seek(tp, found[tp])
        recs = consume(consumer, 5)
        assert [r.value for r in recs][:5] == [f"value-{i}".encode() for i in range(5, 10)]
        # a time before the first record: the first offset
        assert consumer.offsets_for_times({tp: middle_ms - 3_600_000}) == {tp: 0}
        # (a time after the last record should give None; the embedded broker answers 0 instead,
        # so that case is not asserted here: see the quirk noted in DESIGN.md / the report)
    finally:
        consumer.close()


def test_pause_and_resume(transport, new_topic):
    topic = new_topic(2)
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    producer = transport.producer()
    try:
        produce_all(producer, topic, 10, partition=0)
        produce_all(producer, topic, 10, partition=1)
    finally:
        producer.close()
    consumer = transport.consumer(None)
    try:
        consumer.assign([tp0, tp1])
        consumer.pause([tp1])
        recs = consume(consumer, 10, deadline_s=10)
        # drain a little more: nothing from the paused partition may arrive
        recs += consumer.poll_batch(500, 1.0)
        assert {r.partition for r in recs} == {0}
        assert len(recs) == 10
        consumer.resume([tp1])
        recs = consume(consumer, 10)
        assert {r.partition for r in recs} == {1}
        assert len(recs) == 10
    finally:
        consumer.close()


def test_admin_create_topics_with_partitions_retention_compaction(transport):
    name = f"test.admin.{uuid.uuid4().hex[:8]}"
    admin = transport.admin()
    try:
        created = admin.create_topics(
            [
                TopicSpec(name + ".ret", 3, config={"retention.ms": "3600000"}),
                TopicSpec(name + ".cmp", 1, config={"cleanup.policy": "compact"}),
            ]
        )
        assert sorted(created) == [name + ".cmp", name + ".ret"]
        topics = admin.list_topics()
        assert topics[name + ".ret"] == 3
        assert topics[name + ".cmp"] == 1
        # creating again is not an error and creates nothing
        assert admin.create_topics([TopicSpec(name + ".ret", 3)]) == []
    finally:
        admin.close()


def test_group_subscribe_calls_on_assign_and_group_offsets(transport, new_topic):
    topic = new_topic(2)
    group = f"g-{uuid.uuid4().hex[:8]}"
    produce_n(transport, topic, 6)
    assigned: list = []
    consumer = transport.consumer(group, session_timeout_seconds=TEST_SESSION_TIMEOUT_SECONDS)
    try:
        consumer.subscribe([topic], on_assign=assigned.extend)
        recs = consume(consumer, 6, deadline_s=30)
        assert len(recs) == 6
        assert sorted(assigned) == [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        assert sorted(consumer.assignment()) == sorted(assigned)
        nexts = {}
        for r in recs:
            nexts[r.tp] = max(nexts.get(r.tp, 0), r.offset + 1)
        consumer.commit(nexts)
    finally:
        consumer.close()
    admin = transport.admin()
    try:
        assert admin.group_offsets(group) == nexts
        assert group in admin.list_groups()
    finally:
        admin.close()


def test_partitions_for_and_exact_end_offsets(transport, new_topic):
    topic = new_topic(3)
    producer = transport.producer()
    try:
        for p in range(3):
            produce_all(producer, topic, 4 + p, partition=p)
    finally:
        producer.close()
    consumer = transport.consumer(None)
    try:
        parts = consumer.partitions_for(topic)
        assert parts == [TopicPartition(topic, p) for p in range(3)]
        assert exact_end_offsets(consumer, parts) == {parts[0]: 4, parts[1]: 5, parts[2]: 6}
        assert consumer.beginning_offsets(parts) == {tp: 0 for tp in parts}
    finally:
        consumer.close()


def test_produce_to_missing_topic_reports_error_or_autocreates(transport):
    """Never hangs: a delivery for a topic that does not exist is either acked or reported."""
    topic = f"test.missing.{uuid.uuid4().hex[:8]}"
    timeout = {"message.timeout.ms": 5000} if transport.name == "confluent" else {"request_timeout_ms": 5000}
    producer = transport.producer(**timeout)
    outcome = []
    try:
        producer.produce(topic, b"x", on_delivery=lambda err, rec: outcome.append(err))
        producer.flush(15)
    finally:
        producer.close()
    assert len(outcome) == 1


def test_no_bootstrap_is_a_clear_error(backend):
    with pytest.raises(TransportError, match="bootstrap"):
        connect(KafkaSettings(bootstrap=None, client=backend))


def test_unknown_client_property_is_a_transport_error(broker, backend):
    settings = KafkaSettings(bootstrap=broker, client=backend, producer={"no.such.property": 1})
    with pytest.raises(TransportError):
        connect(settings).producer()


def test_sasl_and_tls_options_pass_through_to_both_clients():
    from logtide.transport import confluent, kafka_python

    settings = KafkaSettings(
        bootstrap="k1:9093,k2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="logtide",
        sasl_password="s3cret",
        ssl_cafile="/etc/ca.pem",
        ssl_certfile="/etc/client.pem",
        ssl_keyfile="/etc/client.key",
        client_id="agent-1",
    )
    ck = confluent.ConfluentTransport(settings)._conf
    expected_ck = {
        "bootstrap.servers": "k1:9093,k2:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "logtide",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/ca.pem",
        "ssl.certificate.location": "/etc/client.pem",
        "ssl.key.location": "/etc/client.key",
        "client.id": "agent-1",
    }
    assert {k: ck.get(k) for k in expected_ck} == expected_ck
    kp = kafka_python.KafkaPythonTransport(settings)._conf
    expected_kp = {
        "bootstrap_servers": ["k1:9093", "k2:9093"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "logtide",
        "sasl_plain_password": "s3cret",
        "ssl_cafile": "/etc/ca.pem",
        "ssl_certfile": "/etc/client.pem",
        "ssl_keyfile": "/etc/client.key",
        "client_id": "agent-1",
    }
    assert {k: kp.get(k) for k in expected_kp} == expected_kp
    # the password is never shown when settings are printed or logged
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.model_dump())


def test_auto_picks_the_fastest_installed_backend():
    from logtide.transport import available_backends

    assert available_backends()[0] == "confluent"
    assert connect(KafkaSettings(bootstrap="k:9092", client="auto")).name == "confluent"


def test_small_buffer_applies_backpressure_without_losing_records(transport, new_topic):
    topic = new_topic(1)
    producer = transport.producer(max_buffer=10)
    acked = []
    try:
        for i in range(300):  # never polled by us: produce itself must wait for room
            producer.produce(topic, f"v{i}".encode(), on_delivery=lambda err, rec: acked.append(err))
        assert producer.flush(30) == 0
    finally:
        producer.close()
    assert len(acked) == 300 and not any(acked)


def test_group_states_of_a_committed_group(settings, new_topic):
    """confluent asks the coordinator (a group with no members is Empty); kafka-python answers None."""
    from logtide.transport import TopicPartition, connect

    topic = new_topic(1)
    transport = connect(settings)
    group = f"states-{topic}"
    consumer = transport.consumer(group)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.commit({TopicPartition(topic, 0): 0})
    consumer.close()
    admin = transport.admin()
    try:
        states = admin.group_states([group])
    finally:
        admin.close()
    assert set(states) == {group}
    if settings.client in ("confluent", "memory"):
        assert states[group] is not None and states[group] != "Dead"
    else:
        assert states[group] is None


def test_bound_produce_reporting_failures_only(transport, new_topic):
    """report_successes=False: no callback for an acknowledged record; pending() says what is left."""
    topic = new_topic(1)
    producer = transport.producer(report_successes=False)
    reports = []
    send = producer.bind(topic, lambda err, rec: reports.append(err))
    try:
        for i in range(20):
            send(f"v{i}".encode(), b"k", [("h", b"1")])
        assert producer.pending() > 0 or producer.flush(0) == 0
        assert producer.flush(20) == 0 and producer.pending() == 0
        producer.poll(0.1)
        assert reports == []
    finally:
        producer.close()
    consumer = transport.consumer(None)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        recs = consume(consumer, 20)
    finally:
        consumer.close()
    assert [r.value for r in recs] == [f"v{i}".encode() for i in range(20)]
    assert all(("h", b"1") in r.headers and r.key == b"k" for r in recs)


def test_produce_keeps_a_given_timestamp(transport, new_topic):
    topic = new_topic(1)
    producer = transport.producer()
    try:
        producer.produce(topic, b"old", timestamp_ms=1_700_000_000_123)
        producer.produce(topic, b"now")
        assert producer.flush(20) == 0
    finally:
        producer.close()
    consumer = transport.consumer(None)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        old, now = consume(consumer, 2)
    finally:
        consumer.close()
    assert old.timestamp == 1_700_000_000_123
    assert abs(now.timestamp - time.time() * 1000) < 60_000


def test_a_byte_bounded_producer_delivers_everything(transport, new_topic):
    """``max_buffer_bytes`` (the agent sets it) works on both backends: kafka-python 3 dropped
    ``buffer_memory``, so that backend bounds the bytes itself."""
    topic = new_topic(1)
    acked, errors, peak = [], [], 0
    producer = transport.producer(max_buffer_bytes=64 * 1024)
    try:
        for i in range(300):
            producer.produce(
                topic,
                b"%04d" % i + b"x" * 1020,
                on_delivery=lambda err, rec: (errors if err else acked).append(err or rec),
            )
            peak = max(peak, producer.pending())
        assert producer.flush(30) == 0
    finally:
        producer.close()
    assert not errors and len(acked) == 300
    if transport.name == "kafka-python":  # librdkafka rounds its bound to whole batches
        assert peak <= 64

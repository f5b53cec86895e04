"""EventSender: ingest_time, encoding, no headers, and on_ack only after Kafka acknowledged."""

from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY

from logtide import envelope
from logtide.sender import DrainingSender, EventSender
from logtide.transport import TopicPartition, connect

pytestmark = pytest.mark.timeout(30)


def test_send_stamps_encodes_and_acks_records_without_headers(fast_kafka, new_topic):
    topic = new_topic(1)
    transport = connect(fast_kafka)
    sender = EventSender(transport.producer(), "kerneltest")
    acked: list[dict] = []
    events = [
        envelope.new_event(
            id=envelope.make_id("t", i), body=f"line {i}", source="k8s", severity_text="ERROR", routes=["audit"]
        )
        for i in range(3)
    ]
    before = time.time_ns()
    for e in events:
        sender.send(topic, e, key=b"pod-1", on_ack=acked.append, on_error=lambda e, err: pytest.fail(str(err)))
    assert sender.inflight == 3 and acked == []  # nothing is acked before poll/flush serves callbacks
    assert sender.flush(10) == 0
    sender.producer.close()
    assert [e["id"] for e in acked] == [e["id"] for e in events] and sender.inflight == 0
    assert all(before <= e["ingest_time"] <= time.time_ns() for e in acked)
    assert REGISTRY.get_sample_value("logtide_events_produced_total", {"component": "kerneltest", "topic": topic}) == 3

    consumer = transport.consumer(None)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        recs = []
        deadline = time.monotonic() + 10
        while len(recs) < 3 and time.monotonic() < deadline:
            recs += consumer.poll_batch(10, 0.5)
    finally:
        consumer.close()
    assert [envelope.decode(r.value) for r in recs] == acked
    assert all(r.key == b"pod-1" for r in recs)
    assert [r.headers for r in recs] == [[], [], []]  # the value carries id, routes and severity


def _events(n: int, template: envelope.EventTemplate) -> list[bytes]:
    return [
        template.record(envelope.make_id("drain", i), 1_700_000_000_000_000_000 + i, 5, 6, f"line {i}")
        for i in range(n)
    ]


def _read(transport, topic: str, count: int) -> list:
    consumer = transport.consumer(None)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        recs: list = []
        deadline = time.monotonic() + 15
        while len(recs) < count and time.monotonic() < deadline:
            recs += consumer.poll_batch(100, 0.5)
        return recs
    finally:
        consumer.close()


def test_draining_sender_learns_acks_at_the_drain(kafka_settings, new_topic):
    """Both backends: no callback per success, drain() is the ack; counters and metrics then agree."""
    topic = new_topic(1)
    transport = connect(kafka_settings)
    sender = DrainingSender(transport.producer(report_successes=False), "draintest", topic)
    template = envelope.EventTemplate(
        source="k8s", resource={"k8s.pod.name": "p"}, attributes={"log.iostream": "stdout"}
    )
    records = _events(50, template)
    for value in records:
        sender.send(value, b"pod-1")
    assert sender.sent == 50
    assert sender.drain(15) is True
    assert sender.in_flight == 0 and sender.acked == 50 and sender.failures == 0
    assert REGISTRY.get_sample_value("logtide_events_produced_total", {"component": "draintest", "topic": topic}) == 50
    sender.producer.close()
    recs = _read(transport, topic, 50)
    assert [r.value for r in recs] == records
    assert all(r.key == b"pod-1" and r.headers == [] for r in recs)
    assert envelope.decode(recs[7].value)["id"] == envelope.make_id("drain", 7)


def test_draining_sender_resends_a_refused_record_after_shrinking_it(fast_kafka, new_topic):
    """A record over the client's message.max.bytes is refused at produce: shrunk, sent again, drained."""
    topic = new_topic(1)
    transport = connect(fast_kafka)
    shrunk: list[int] = []

    def shrink(value: bytes) -> bytes:
        shrunk.append(len(value))
        event = envelope.decode(value)
        event["body"] = event["body"][:100]
        return envelope.encode(event)

    sender = DrainingSender(transport.producer(report_successes=False), "draintest2", topic, shrink=shrink)
    template = envelope.EventTemplate(source="k8s")
    value = template.record("big-one", None, 5, 6, "x" * 2_000_000)
    sender.send(value, None)
    assert sender.failures == 1 and len(sender.retry) == 1 and shrunk == [len(value)]
    assert sender.drain(15) is True  # the retry was sent and acknowledged
    assert sender.retry == [] and sender.acked == 1
    sender.producer.close()
    (rec,) = _read(transport, topic, 1)
    event = envelope.decode(rec.value)
    assert event["id"] == "big-one" and event["body"] == "x" * 100 and rec.headers == []


def test_draining_sender_keeps_what_kafka_never_acknowledged(broker, new_topic):
    """Kafka unreachable: the drain fails, every record waits in the retry list, as it was sent."""
    from logtide.transport import KafkaSettings

    transport = connect(KafkaSettings(bootstrap="127.0.0.1:1", client="confluent"))
    sender = DrainingSender(
        transport.producer(report_successes=False, **{"message.timeout.ms": 300}),
        "draintest3",
        "nowhere",
        retry_seconds=60,
    )
    records = _events(3, envelope.EventTemplate(source="k8s"))
    for value in records:
        sender.send(value, b"k")
    assert sender.drain(2.0) is False  # (it sent the refused records again meanwhile)
    sender.producer.flush(10)  # serve the last failure reports (returns once they are)
    assert sender.failures >= 3 and sender.failures % 3 == 0
    assert sender.acked == 0 and sender.in_flight == 3 and len(sender.retry) == 3
    assert sender.retry == [(value, b"k") for value in records]
    sender.producer._p = None  # nothing to flush into a Kafka that is not there


def test_draining_sender_holds_records_while_the_client_buffer_is_full(broker, new_topic):
    """The client's byte bound is exact; what does not fit waits in order, and goes once Kafka acks."""
    from logtide.transport import KafkaSettings

    topic = new_topic(1)
    transport = connect(KafkaSettings(bootstrap=broker, client="confluent"))
    producer = transport.producer(report_successes=False, max_buffer_bytes=64 * 1024, linger_ms=50)
    sender = DrainingSender(producer, "draintest4", topic)
    template = envelope.EventTemplate(source="k8s")
    records = [template.record(envelope.make_id("full", i), None, 5, 6, "x" * 4000) for i in range(100)]
    for value in records:
        sender.send(value, b"k")
    # ~400 KB offered to a 64 KB buffer: most of it waits, nothing was dropped or reordered
    assert sender.waiting and sender.sent < 100 and sender.accepted == 100
    assert sender.sent + len(sender.waiting) == 100 and sender.in_flight + sender.acked == 100
    assert sender.drain(20) is True
    assert sender.waiting == [] and sender.acked == 100
    sender.producer.close()
    assert [r.value for r in _read(transport, topic, 100)] == records

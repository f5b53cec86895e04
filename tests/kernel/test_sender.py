"""EventSender: ingest_time, encoding, routing headers, and on_ack only after Kafka acknowledged."""

from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY

from logtide import envelope
from logtide.sender import EventSender
from logtide.transport import TopicPartition, connect

pytestmark = pytest.mark.timeout(30)


def test_send_stamps_encodes_sets_headers_and_acks(fast_kafka, new_topic):
    topic = new_topic(1)
    transport = connect(fast_kafka)
    sender = EventSender(transport.producer(), "kerneltest")
    acked: list[dict] = []
    events = [envelope.new_event(id=envelope.make_id("t", i), body=f"line {i}", source="k8s", severity_text="ERROR",
                                 routes=["audit"]) for i in range(3)]
    before = time.time_ns()
    for e in events:
        sender.send(topic, e, key=b"pod-1", on_ack=acked.append, on_error=lambda e, err: pytest.fail(str(err)))
    assert sender.inflight == 3 and acked == []  # nothing is acked before poll/flush serves callbacks
    assert sender.flush(10) == 0
    sender.producer.close()
    assert [e["id"] for e in acked] == [e["id"] for e in events] and sender.inflight == 0
    assert all(before <= e["ingest_time"] <= time.time_ns() for e in acked)
    assert REGISTRY.get_sample_value("logtide_events_produced_total",
                                     {"component": "kerneltest", "topic": topic}) == 3

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
    h = recs[0].headers
    assert envelope.header_value(h, envelope.HEADER_ID) == events[0]["id"]
    assert envelope.header_value(h, envelope.HEADER_ROUTES) == "audit"
    assert envelope.header_value(h, envelope.HEADER_SEVERITY) == "17"

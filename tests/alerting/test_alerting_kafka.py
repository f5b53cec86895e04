"""The engine on the in-memory transport (test_alerting_up_reload.py and tests/faults run it on the
embedded broker): envelopes in, bad records to the DLQ, offsets committed after
the state is durable, and a restart in the middle of a group's group_wait pages exactly once."""

import threading
import time
import uuid

import pytest

from alert_helpers import S, T0, Receiver, config, event

from logtide import envelope
from logtide.dlq import error_info
from logtide.topics import DLQ
from logtide.transport import TopicPartition, TopicSpec, connect

from logtide.alerting.engine import build
from tests.legacy_records import old_headers

RULES = """rules:
  - name: Boom
    kind: threshold
    condition: body contains "boom"
    group_by: [service.name]
    count: 3
    window: 5m
"""


def produce(transport, topic, events, raw=(), old=False):
    """Events (``old``: with the routing headers of records written before events went without),
    then raw (key, value) records."""
    p = transport.producer()
    for e in events:
        p.produce(topic, envelope.encode(e), key=b"checkout", headers=old_headers(e) if old else None)
    for key, value in raw:
        p.produce(topic, value, key=key)
    assert p.flush(10) == 0
    p.close()


class Running:
    """The alerting services in threads until stopped."""

    def __init__(self, cfg, transport):
        self.engine, self.services = build(cfg, transport, session_timeout_seconds=6)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=s.run, args=(self.stop,), daemon=True) for s in self.services]
        for t in self.threads:
            t.start()

    def wait(self, predicate, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.engine.lock:
                if predicate(self.engine):
                    return True
            time.sleep(0.05)
        return False

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)
        self.engine.store.close()


def setup(tmp_path, memory_kafka, topic, receiver_url):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    return config(
        receiver_url,
        kafka=memory_kafka.model_dump(),
        topics=[topic],
        rules_files=[str(rules)],
        group_id=f"alerting-{uuid.uuid4().hex[:8]}",
        state_path=str(tmp_path / "state.db"),
    )


@pytest.mark.timeout(120)
def test_restart_mid_group_pages_once_and_does_not_recount(tmp_path, memory_kafka, memory_topic):
    topic = memory_topic(1)
    receiver = Receiver(secrets=["new-secret"])
    cfg = setup(tmp_path, memory_kafka, topic, receiver.url)
    transport = connect(memory_kafka)
    run = Running(cfg, transport)
    try:
        produce(transport, topic, [event(i, T0 + i * S) for i in range(4)], old=True)  # older records count too
        assert run.wait(lambda e: any(a.state == "firing" for a in e.states.alerts.values()))
        assert run.wait(lambda e: e.applied.get((topic, 0)) == 4)  # state and offsets durable
    finally:
        run.close()
    assert receiver.deliveries == []  # group_wait (10s of event time) had not passed

    run = Running(cfg, transport)  # restart in the middle of the group's wait
    try:
        produce(transport, topic, [event(10, T0 + 20 * S)])
        assert len(receiver.wait_for(1)) == 1
        assert run.wait(lambda e: e.evaluators["Boom"].series[("checkout",)].total == 5)  # 4 + 1, not recounted
    finally:
        run.close()

    run = Running(cfg, transport)  # and again: the notification log remembers
    try:
        produce(transport, topic, [event(11, T0 + 100 * S)])
        assert run.wait(lambda e: e.applied.get((topic, 0)) == 6)
        run.engine.evaluate()
        time.sleep(0.5)
        assert len(receiver.deliveries) == 1
    finally:
        run.close()
        receiver.close()


@pytest.mark.timeout(90)
def test_bad_records_go_to_the_dlq_with_the_reason(tmp_path, memory_kafka, memory_topic):
    topic = memory_topic(1)
    cfg = setup(tmp_path, memory_kafka, topic, "http://127.0.0.1:9/")
    transport = connect(memory_kafka)
    admin = transport.admin()
    admin.create_topics([TopicSpec(DLQ, 1)])
    admin.close()
    key = f"bad-{uuid.uuid4().hex}".encode()
    run = Running(cfg, transport)
    try:
        produce(
            transport,
            topic,
            [event(1, T0)],
            raw=[(key, b"{not json"), (key, b'{"id": 5}'), (key, b'{"id": "cut-1", "time": 17')],
        )
        assert run.wait(lambda e: e.applied.get((topic, 0)) == 4)
    finally:
        run.close()
    consumer = transport.consumer(None)
    consumer.assign([TopicPartition(DLQ, 0)])
    found, deadline = [], time.monotonic() + 20
    while len(found) < 3 and time.monotonic() < deadline:
        found += [r for r in consumer.poll_batch(1000, 0.5) if r.key == key]
    consumer.close()
    assert len(found) == 3
    infos = [error_info(r.headers) for r in found]
    assert {i["stage"] for i in infos} == {"alerting.decode"} and {i["component"] for i in infos} == {"alerting"}
    assert "invalid JSON" in infos[0]["message"] and infos[1]["topic"] == topic
    # the event's id when the value has one to read, even cut short
    assert [envelope.header_value(r.headers, envelope.HEADER_ID) for r in found] == [None, None, "cut-1"]

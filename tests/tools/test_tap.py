"""logtide tap: a live, filtered view of a topic."""

from __future__ import annotations

import json
import threading
import time

import pytest

from logtide import envelope
from logtide.sender import EventSender
from logtide.transport import connect
from tests.legacy_records import old_headers


def _send(fast_kafka, topic: str, n: int, start: int = 0) -> None:
    producer = connect(fast_kafka).producer(linger_ms=0)
    sender = EventSender(producer, "tap-test")
    for i in range(start, start + n):
        ev = envelope.new_event(
            id=envelope.make_id("tap", topic, i),
            body=f"request {i}",
            source="k8s",
            severity_text="ERROR" if i % 4 == 0 else "INFO",
            resource={"service.name": "checkout" if i % 2 else "auth"},
            attributes={"n": i},
        )
        sender.send(topic, ev, key=b"k%d" % (i % 3))
    producer.produce(topic, b"not an envelope")
    assert producer.flush(30) == 0
    producer.close()


def test_tap_filters_with_the_condition_language(cli, fast_kafka, new_topic):
    topic = new_topic(3)
    _send(fast_kafka, topic, 40)
    out = cli(
        "tap",
        topic,
        "--from",
        "beginning",
        "--where",
        'severity_number >= 17 and service.name == "auth"',
        "--json",
        "--duration",
        "2",
        check_rc=0,
    )
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted(e["attributes"]["n"] for e in events) == list(range(0, 40, 4))
    assert all(e["_kafka"]["topic"] == topic for e in events)
    assert "read 41, matched 10, shown 10, not envelopes 1" in out.stderr


def test_tap_reads_older_records_with_routing_headers_by_their_value(cli, fast_kafka, new_topic):
    """Records written before events went without headers: filtered on the value, whatever the
    headers said (here the severity header of every record says 0)."""
    topic = new_topic(1)
    producer = connect(fast_kafka).producer(linger_ms=0)
    for i in range(8):
        ev = envelope.new_event(
            id=envelope.make_id("tap-old", i),
            body=f"old {i}",
            source="k8s",
            severity_text="ERROR" if i % 2 else "INFO",
            attributes={"n": i},
        )
        headers = [(k, b"0" if k == "logtide.severity" else v) for k, v in old_headers(ev)]
        producer.produce(topic, envelope.encode(ev), key=b"old", headers=headers)
    assert producer.flush(30) == 0
    producer.close()
    _send(fast_kafka, topic, 4, start=100)  # and newer ones, without headers, in the same topic
    out = cli(
        "tap", topic, "--from", "beginning", "--where", "severity_number >= 17", "--json", "--duration", "2", check_rc=0
    )
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert [e["attributes"]["n"] for e in events] == [1, 3, 5, 7, 100]
    assert "read 13, matched 5, shown 5, not envelopes 1" in out.stderr


def test_tap_sample_count_and_pretty_output(cli, fast_kafka, new_topic):
    topic = new_topic(1)
    _send(fast_kafka, topic, 40)
    out = cli("tap", topic, "--from", "beginning", "--sample", "10", "--json", "--duration", "2", check_rc=0)
    shown = [json.loads(line) for line in out.stdout.splitlines()]
    # 40 events + 1 raw record, one in ten of the envelopes (the raw one is shown as not an envelope)
    assert [e["attributes"]["n"] for e in shown if "attributes" in e] == [0, 10, 20, 30]
    out = cli("tap", topic, "--from", "beginning", "--where", "attributes.n == 5", "--count", "1", check_rc=0)
    assert "request 5" in out.stdout and "checkout" in out.stdout and "INFO" in out.stdout


@pytest.mark.timeout(60)
def test_tap_is_live_from_the_end(popen_cli, fast_kafka, new_topic):
    topic = new_topic(2)
    _send(fast_kafka, topic, 10)  # before the tap: not shown
    proc = popen_cli("tap", topic, "--where", 'body contains "request 1"', "--json", "--count", "3")
    # the tap says when it listens (stderr); then new events arrive
    assert "tapping" in proc.stderr.readline()
    time.sleep(1.0)
    threading.Thread(target=_send, args=(fast_kafka, topic, 100, 100), daemon=True).start()
    out, _ = proc.communicate(timeout=40)
    assert proc.returncode == 0
    bodies = sorted(json.loads(line)["body"] for line in out.splitlines())
    assert len(bodies) == 3 and all(b.startswith("request 1") and int(b.split()[1]) >= 100 for b in bodies)


def test_tap_errors(cli, new_topic):
    r = cli("tap", new_topic(1), "--where", "body contains")
    assert r.returncode == 2 and "--where:" in r.stderr
    r = cli("tap", "no.such.topic.tap", "--duration", "1")
    assert r.returncode == 2 and "does not exist" in r.stderr

"""A running `logtide process` fed random bad records between good ones: it keeps going, every record
ends either in a route topic or in logtide.dlq, and every record that is not a valid envelope is in
the DLQ with a reason (logtide.error.stage/class/message), its original offset and the event's id
when its value has one to read (routed records carry no headers)."""

from __future__ import annotations

import json
import random
import time

import pytest

from logtide import envelope
from logtide.dlq import error_info
from logtide.topics import DLQ
from logtide.transport import KafkaSettings, TopicSpec, connect
from tests.conftest import ROOT
from tests.faults.chain import PIPELINE, RAW, write_yaml
from tests.faults.conftest import FULL, read_topic, report
from tests.faults.harness import RoleProcess

MAX_VALUE = 4096
COUNT = 2000 if FULL else 300


def good(rng: random.Random, i: int) -> bytes:
    return envelope.encode(
        envelope.new_event(
            id=f"good-{i}",
            body=rng.choice(
                [
                    "level=error msg=boom",
                    '{"msg": "hi", "level": "warn"}',
                    "plain line",
                    "<34>Oct 11 22:14:15 host su: x",
                    "user a@b.example password=x",
                ]
            ),
            source="k8s",
            time=time.time_ns(),
            resource={"k8s.container.name": rng.choice(["auth", "web"])},
        )
    )


def bad(rng: random.Random, i: int) -> bytes | None:
    """A record a broken or hostile producer could write to a raw topic."""
    valid = good(rng, i)
    kind = rng.randrange(10)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    if kind == 1:
        return valid[: rng.randrange(1, len(valid) - 1)]  # cut short
    if kind == 2:
        pos = rng.randrange(len(valid))
        return valid[:pos] + bytes([rng.randrange(256)]) + valid[pos + 1 :]  # one byte flipped (may stay valid)
    if kind == 3:
        return json.dumps(rng.choice([[1, 2], 42, "x", None, {}, {"id": 1}, {"id": "x", "time": "yesterday"}])).encode()
    if kind == 4:
        return b'{"id": "deep", "body": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    if kind == 5:
        return valid[:-1] + b', "body2": "' + b"x" * MAX_VALUE + b'"}'  # over max_value_bytes
    if kind == 6:
        return b'{"id": "\xff\xfe", "body": "not utf-8 \xc3\x28"}'
    if kind == 7:
        return None  # a tombstone
    if kind == 8:
        return json.dumps({**json.loads(valid), "time": 10**30, "severity_number": "high"}).encode()
    return json.dumps({**json.loads(valid), "attributes": "not a map", "resource": [1]}).encode()


def accepted(value: bytes | None) -> bool:
    """Would a careful reader take this record as an event at all?"""
    if value is None or len(value) > MAX_VALUE:
        return False
    try:
        envelope.decode(value)
    except envelope.EnvelopeError:
        return False
    return True


@pytest.mark.timeout(120)
def test_running_processor_sends_every_bad_record_to_the_dlq_with_a_reason(own_broker, tmp_path):
    rng = random.Random(9)
    values = [bad(rng, i) if rng.random() < 0.4 else good(rng, i) for i in range(COUNT)]
    settings = KafkaSettings(bootstrap=own_broker, client="confluent")
    transport = connect(settings)
    admin = transport.admin()
    admin.create_topics([TopicSpec(RAW, 1), TopicSpec(DLQ, 1)])
    admin.close()
    producer = transport.producer()
    for n, v in enumerate(values):
        producer.produce(RAW, v, key=b"k%d" % (n % 7))
    assert producer.flush(20) == 0
    producer.close()

    config = write_yaml(
        tmp_path / "process.yaml",
        {
            "kafka": {"bootstrap": own_broker, "client": "confluent"},
            "http": {"host": "127.0.0.1", "port": 0},
            "group_id": "fault-dlq",
            "topics": [RAW],
            "session_timeout_seconds": 6,
            "partitions": 1,
            "max_value_bytes": MAX_VALUE,
            "pipeline": PIPELINE,
        },
    )
    proc = RoleProcess(
        ["process", "--config", config], env={"PYTHONPATH": ROOT}, log_path=str(tmp_path / "process.log")
    )
    routes = ("logtide.route.monitoring", "logtide.route.audit", "logtide.route.analytics")
    proc.start()
    admin = transport.admin()
    try:
        deadline = time.monotonic() + 60
        # done when the processor committed the end of its input (outputs are acked before a commit)
        while sum(off for tp, off in admin.group_offsets("fault-dlq").items() if tp.topic == RAW) < COUNT:
            assert proc.alive(), open(tmp_path / "process.log").read()[-3000:]
            assert time.monotonic() < deadline, "the processor did not get through its input"
            time.sleep(0.5)
        assert proc.stop() == 0, open(tmp_path / "process.log").read()[-3000:]
    finally:
        proc.kill9()
        admin.close()
    dlq = read_topic(settings, DLQ)
    analytics = read_topic(settings, routes[2])

    reasons = {}
    cut_with_id = 0
    for rec in dlq:
        info = error_info(rec.headers)
        assert info.get("stage") and info.get("class") and info.get("message"), info
        assert info["topic"] == RAW
        reasons[int(info["offset"])] = f"{info['stage']}: {info['class']}"
        value = values[int(info["offset"])]
        event_id = envelope.header_value(rec.headers, envelope.HEADER_ID)
        assert event_id == envelope.peek_id(value), (value, rec.headers)
        cut_with_id += event_id is not None and not accepted(value) and value.startswith(b'{"id":"good-')
    assert cut_with_id, "a record broken after its id keeps the id in the DLQ"
    assert all(r.headers == [] for r in analytics)
    must = {n for n, v in enumerate(values) if not accepted(v)}
    missing = sorted(must - set(reasons))
    assert not missing, [(n, values[n][:80] if values[n] else None) for n in missing[:5]]
    assert len(dlq) + len(analytics) == COUNT, "every record in exactly one place: a route or the DLQ"
    assert len(reasons) == len(dlq), "one DLQ record per bad input record"
    report(
        "dlq_fuzz",
        {
            "records": COUNT,
            "not_envelopes": len(must),
            "dlq": len(dlq),
            "dlq_with_id_of_broken_value": cut_with_id,
            "routed": len(analytics),
            "reasons": sorted(set(reasons.values())),
        },
    )

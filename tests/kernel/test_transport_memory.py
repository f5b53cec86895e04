"""The in-memory transport's own behaviour (the shared contract runs in test_transport.py):
acknowledgement only by poll/flush, group sharing and session expiry, patterns that pick up new
topics, and outages."""

from __future__ import annotations

import time
import uuid

import pytest

from logtide.transport import KafkaSettings, TopicPartition, TopicSpec, TransportError, connect
from logtide.transport.memory import cluster

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def settings() -> KafkaSettings:
    return KafkaSettings(client="memory", bootstrap=f"unit-{uuid.uuid4().hex[:8]}")


def make_topics(settings, *specs: tuple[str, int]) -> None:
    with connect(settings).admin() as admin:
        admin.create_topics([TopicSpec(name, n) for name, n in specs])


def test_no_bootstrap_needed_and_the_name_selects_a_cluster(settings):
    make_topics(settings, ("t", 2))
    assert connect(KafkaSettings(client="memory", bootstrap=settings.bootstrap)).admin().list_topics() == {"t": 2}
    other = KafkaSettings(client="memory", bootstrap=settings.bootstrap + "-other")
    assert connect(other).admin().list_topics() == {}
    assert connect(KafkaSettings(client="memory")).name == "memory"


def test_a_record_is_acknowledged_and_visible_only_after_poll_or_flush(settings):
    make_topics(settings, ("t", 1))
    t = connect(settings)
    acks = []
    producer = t.producer()
    producer.produce("t", b"v", on_delivery=lambda err, rec: acks.append((err, rec.offset)))
    assert producer.pending() == 1 and acks == []
    consumer = t.consumer(None)
    consumer.assign([TopicPartition("t", 0)])
    assert consumer.poll_batch(10, 0) == []  # never flushed: never written
    assert producer.poll(0) == 1 and acks == [(None, 0)] and producer.pending() == 0
    assert [r.value for r in consumer.poll_batch(10, 0)] == [b"v"]


def test_unknown_topic_is_refused_in_the_callback(settings):
    errors = []
    producer = connect(settings).producer()
    producer.produce("nope", b"v", on_delivery=lambda err, rec: errors.append(err))
    assert producer.flush() == 0
    assert len(errors) == 1 and "UNKNOWN_TOPIC_OR_PART" in str(errors[0])


def test_a_group_shares_partitions_and_takes_over_from_a_member_that_stopped_polling(settings):
    make_topics(settings, ("t", 4))
    t = connect(settings)
    a = t.consumer("g", session_timeout_seconds=0.3)
    b = t.consumer("g", session_timeout_seconds=0.3)
    revoked = []
    a.subscribe(["t"], on_revoke=revoked.extend)
    b.subscribe(["t"])
    a.poll_batch(1, 0)
    b.poll_batch(1, 0)
    a.poll_batch(1, 0)
    assert len(a.assignment()) == 2 and len(b.assignment()) == 2
    assert set(a.assignment()) | set(b.assignment()) == {TopicPartition("t", p) for p in range(4)}
    time.sleep(0.4)  # a is "killed": no poll within its session
    b.poll_batch(1, 0)
    assert len(b.assignment()) == 4
    b.close()
    a.poll_batch(1, 0)  # a comes back: it rejoins and gets everything
    assert len(a.assignment()) == 4 and revoked


def test_pattern_subscription_picks_up_a_topic_created_later_and_resumes_from_commits(settings):
    t = connect(settings)
    consumer = t.consumer("g")
    assigned = []
    consumer.subscribe([r"logtide\.raw\..*"], on_assign=assigned.extend, pattern=True)
    assert consumer.poll_batch(10, 0.05) == []
    make_topics(settings, ("logtide.raw.k8s", 1), ("other", 1))
    with t.producer() as p:
        for i in range(3):
            p.produce("logtide.raw.k8s", f"{i}".encode())
            p.produce("other", b"x")
    recs = consumer.poll_batch(10, 1.0)
    assert [r.value for r in recs] == [b"0", b"1", b"2"]
    assert assigned == [TopicPartition("logtide.raw.k8s", 0)]
    consumer.commit({TopicPartition("logtide.raw.k8s", 0): 2})
    consumer.close()
    again = t.consumer("g")
    again.subscribe([r"logtide\.raw\..*"], pattern=True)
    assert [r.value for r in again.poll_batch(10, 0.5)] == [b"2"]
    assert connect(settings).admin().group_offsets("g") == {TopicPartition("logtide.raw.k8s", 0): 2}


def test_latest_reset_skips_what_was_there(settings):
    make_topics(settings, ("t", 1))
    t = connect(settings)
    with t.producer() as p:
        p.produce("t", b"old")
    c = t.consumer("g2", auto_offset_reset="latest")
    c.assign([TopicPartition("t", 0)])
    with t.producer() as p:
        p.produce("t", b"new")
    assert [r.value for r in c.poll_batch(10, 0.1)] == [b"new"]


def test_a_poll_waits_for_a_record_produced_meanwhile(settings):
    import threading

    make_topics(settings, ("t", 1))
    t = connect(settings)
    c = t.consumer(None)
    c.assign([TopicPartition("t", 0)])

    def later():
        time.sleep(0.1)
        with t.producer() as p:
            p.produce("t", b"v")

    threading.Thread(target=later).start()
    assert [r.value for r in c.poll_batch(10, 5.0)] == [b"v"]


def test_an_outage_fails_produce_commit_and_admin_until_it_ends(settings):
    make_topics(settings, ("t", 1))
    t = connect(settings)
    c = t.consumer("g")
    c.assign([TopicPartition("t", 0)])
    cluster(settings.bootstrap).down = True
    errors = []
    with t.producer() as p:
        p.produce("t", b"v", on_delivery=lambda err, rec: errors.append(err))
    assert len(errors) == 1 and isinstance(errors[0], TransportError)
    with pytest.raises(TransportError):
        c.commit({TopicPartition("t", 0): 1})
    with pytest.raises(TransportError, match="down"):
        t.admin().list_topics()
    cluster(settings.bootstrap).down = False
    assert t.admin().list_topics() == {"t": 1}


def test_bound_produce_without_waiting_says_when_the_buffer_is_full(settings):
    from logtide.transport import BufferFull

    make_topics(settings, ("t", 1))
    p = connect(settings).producer(max_buffer=2)
    send = p.bind("t", None, wait=False)
    send(b"1", None, None)
    send(b"2", None, None)
    with pytest.raises(BufferFull):
        send(b"3", None, None)
    assert p.flush() == 0
    send(b"3", None, None)
    assert p.flush() == 0
    assert connect(settings).admin().list_topics() == {"t": 1}

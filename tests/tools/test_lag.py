"""logtide lag: Burrow-style status from sampled committed and end offsets."""

from __future__ import annotations

import json
import threading
import time

import pytest

from logtide.transport import connect

from logtide.tools.lag import partition_status, worst

SESSION_SECONDS = 6


@pytest.mark.parametrize(
    "window, active, status",
    [
        ([(10, 10), (10, 15), (15, 20)], True, "OK"),  # lag was zero at some sample
        ([(10, 50), (30, 60), (55, 60)], True, "OK"),  # lag shrinking
        ([(10, 50), (20, 70), (30, 90)], True, "WARN"),  # committing but falling behind at every step
        ([(10, 50), (20, 60), (30, 70)], True, "WARN"),  # lag fixed while committing
        ([(10, 50), (10, 50), (10, 60)], True, "STALL"),  # not moving, members alive
        ([(10, 50), (10, 50), (10, 50)], None, "STALL"),  # membership unknown: treated as alive
        ([(10, 50), (10, 55), (10, 60)], False, "STOP"),  # not moving, nobody in the group
        ([(10, 50)], True, "OK"),  # one sample: not enough to call it stuck
        ([(10, 50)], False, "STOP"),  # ... but nobody consumes
    ],
)
def test_partition_status_rules(window, active, status):
    assert partition_status(window, active) == status


def test_group_status_is_the_worst_partition():
    assert worst(["OK", "WARN", "OK"]) == "WARN"
    assert worst(["STALL", "STOP", "WARN"]) == "STOP"
    assert worst([]) == "OK"


def _produce(fast_kafka, topic: str, n: int) -> None:
    p = connect(fast_kafka).producer(linger_ms=0)
    for i in range(n):
        p.produce(topic, b"v%d" % i, partition=i % 2)
    assert p.flush(30) == 0
    p.close()


def _join_and_consume(fast_kafka, topic: str, group: str, want: int):
    """A group member that consumed `want` records; returns (consumer, records)."""
    consumer = connect(fast_kafka).consumer(group, session_timeout_seconds=SESSION_SECONDS)
    consumer.subscribe([topic])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < want and time.monotonic() < deadline:
        got += consumer.poll_batch(500, 0.2)
    assert len(got) >= want
    return consumer, got


def _lag(cli, group: str) -> dict:
    out = json.loads(cli("lag", "--group", group, "--samples", "3", "--interval", "0.4", "--json", check_rc=0).stdout)
    [g] = out["groups"]
    assert g["group"] == group
    return g


@pytest.mark.timeout(90)
def test_ok_then_stall_then_stop(cli, fast_kafka, new_topic):
    topic = new_topic(2)
    group = f"lag-test-{topic}"
    _produce(fast_kafka, topic, 40)
    consumer, recs = _join_and_consume(fast_kafka, topic, group, 40)
    ends = {}
    for r in recs:
        ends[r.tp] = max(ends.get(r.tp, 0), r.offset + 1)
    consumer.commit(ends)

    # Caught up: OK, no lag.
    g = _lag(cli, group)
    assert g["status"] == "OK" and g["lag"] == 0 and g["state"] == "Stable"
    assert {(p["partition"], p["committed"]) for p in g["partitions"]} == {(0, 20), (1, 20)}

    # The member stays (keeps polling: heartbeats) but stops committing while records arrive: STALL.
    stop = threading.Event()

    def keep_polling():
        while not stop.is_set():
            consumer.poll_batch(100, 0.2)

    poller = threading.Thread(target=keep_polling, daemon=True)
    poller.start()
    try:
        _produce(fast_kafka, topic, 30)
        g = _lag(cli, group)
        assert g["status"] == "STALL" and g["lag"] == 30
        assert g["lag_seconds"] is not None and g["lag_seconds"] >= 0
        assert {p["status"] for p in g["partitions"]} == {"STALL"}
        r = cli("lag", "--group", group, "--samples", "2", "--interval", "0.2", "--fail-on", "STALL")
        assert r.returncode == 1 and "STALL" in r.stdout
    finally:
        stop.set()
        poller.join(5)
    consumer.close()  # leaves the group: nobody consumes any more

    g = _lag(cli, group)
    assert g["status"] == "STOP" and g["lag"] == 30 and g["state"] == "Empty"


def test_lag_errors_and_help(cli):
    assert cli("lag", "--samples", "1").returncode == 2
    # Issue 17 (6): a misspelt group said OK, exit 0: a cron check with a typo never fired.
    r = cli("lag", "--group", "logtide-sink-analytcs", "--fail-on", "STALL")
    assert r.returncode == 2 and r.stderr.strip() == (
        "logtide lag: error: no such group: logtide-sink-analytcs (`logtide lag` lists the groups)"
    ), r.stderr
    assert "STALL" in cli("lag", "--help", check_rc=0).stdout

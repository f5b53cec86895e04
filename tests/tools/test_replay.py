"""logtide replay: a time window of one topic into another, resumable."""

from __future__ import annotations

import json
import signal
import time

import pytest

from logtide.tools.common import is_relative, parse_time_ms as parse_time
from logtide.tools.replay import MAX_IN_FLIGHT

BASE = 1_700_000_000_000  # ms; record i has timestamp BASE + i seconds


def _fill(produce_at, topic: str, n: int, partitions: int = 3) -> None:
    produce_at(
        topic,
        [
            (i % partitions, BASE + i * 1000, f"k{i}".encode(), f"v{i}".encode(), [("logtide.id", f"id{i}".encode())])
            for i in range(n)
        ],
    )


def test_replays_exactly_the_time_window_keeping_key_value_headers(cli, new_topic, produce_at, read_all, tmp_path):
    src, dst = new_topic(3), new_topic(3)
    _fill(produce_at, src, 90)
    state = tmp_path / "replay.json"
    out = cli(
        "replay",
        "--topic",
        src,
        "--from",
        str(BASE + 20_000),
        "--to",
        str(BASE + 50_000),
        "--to-topic",
        dst,
        "--state",
        str(state),
        "--json",
        check_rc=0,
    )
    summary = json.loads(out.stdout)
    assert summary["copied"] == 30 and summary["done"] is True
    recs = read_all(dst)
    values = sorted(int(r.value[1:]) for r in recs)
    assert values == list(range(20, 50))  # [from, to): 20..49
    for r in recs:
        i = int(r.value[1:])
        assert r.key == f"k{i}".encode()
        assert ("logtide.id", f"id{i}".encode()) in [(k, bytes(v)) for k, v in r.headers]
        assert r.partition == i % 3  # same partition count: same partition, same order
        assert r.timestamp == BASE + i * 1000  # the original's time, not the time of the copy
    # Run again: already complete, nothing copied twice.
    again = cli(
        "replay",
        "--topic",
        src,
        "--from",
        str(BASE + 20_000),
        "--to",
        str(BASE + 50_000),
        "--to-topic",
        dst,
        "--state",
        str(state),
        check_rc=0,
    )
    assert "already complete" in again.stdout and "0 copied by this run" in again.stdout
    rerun = json.loads(
        cli(
            "replay",
            "--topic",
            src,
            "--from",
            str(BASE + 20_000),
            "--to",
            str(BASE + 50_000),
            "--to-topic",
            dst,
            "--state",
            str(state),
            "--json",
            check_rc=0,
        ).stdout
    )
    assert rerun["copied"] == 0 and rerun["copied_total"] == 30 and rerun["already_complete"] is True
    assert len(read_all(dst)) == 30


def test_open_ended_window_stops_at_the_end_seen_at_start(cli, new_topic, produce_at, read_all):
    src, dst = new_topic(2), new_topic(1)
    _fill(produce_at, src, 40, partitions=2)
    out = cli("replay", "--topic", src, "--from", "2023-11-14T22:13:50Z", "--to-topic", dst, "--json", check_rc=0)
    # 2023-11-14T22:13:50Z = BASE + 30 s
    assert json.loads(out.stdout)["copied"] == 10
    assert sorted(int(r.value[1:]) for r in read_all(dst)) == list(range(30, 40))


def _start_and_wait_for_progress(popen_cli, args: list[str], state, copied: int):
    """Start a replay in the background and return once its state file shows `copied` records."""
    proc = popen_cli(*args)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if state.exists() and json.loads(state.read_text())["copied"] >= copied:
            return proc
        time.sleep(0.1)
    raise AssertionError(f"no progress to {copied} in 30 s: {proc.poll()=}")


@pytest.mark.timeout(90)
def test_interrupt_and_resume_copies_each_record_once(cli, popen_cli, new_topic, produce_at, read_all, tmp_path):
    src, dst = new_topic(3), new_topic(3)
    n = 1000
    _fill(produce_at, src, n)
    state = tmp_path / "slow.json"
    args = [
        "replay",
        "--topic",
        src,
        "--from",
        str(BASE),
        "--to-topic",
        dst,
        "--state",
        str(state),
        "--rate",
        "300",
        "--batch",
        "100",
    ]
    proc = _start_and_wait_for_progress(popen_cli, args, state, 200)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in out
    saved = json.loads(state.read_text())
    assert not saved["done"] and 0 < saved["copied"] < n
    assert len(read_all(dst)) == saved["copied"]  # progress is saved only for acknowledged batches
    # resume (without the rate limit: a different flag does not change the job)
    cli(*[a for a in args if a not in ("--rate", "300")], check_rc=0)
    values = [int(r.value[1:]) for r in read_all(dst)]
    assert sorted(values) == list(range(n))  # every record exactly once


@pytest.mark.timeout(90)
def test_kill_9_then_resume_loses_nothing(cli, popen_cli, new_topic, produce_at, read_all, tmp_path):
    src, dst = new_topic(1), new_topic(1)
    n = 800
    _fill(produce_at, src, n, partitions=1)
    state = tmp_path / "killed.json"
    args = [
        "replay",
        "--topic",
        src,
        "--from",
        str(BASE),
        "--to-topic",
        dst,
        "--state",
        str(state),
        "--rate",
        "200",
        "--batch",
        "50",
    ]
    proc = _start_and_wait_for_progress(popen_cli, args, state, 100)
    proc.kill()
    proc.wait(10)
    cli(*args[:-4], check_rc=0)
    values = [int(r.value[1:]) for r in read_all(dst)]
    assert set(values) == set(range(n))  # no gap; at most the unsaved batch twice
    assert len(values) - n <= (MAX_IN_FLIGHT + 1) * 50  # only batches not yet saved come again


def test_clear_errors(cli_proc, cli, new_topic):
    src = new_topic(1)
    r = cli_proc("replay", "--topic", src, "--from", "1h", "--to-topic", "no.such.topic.here")
    assert r.returncode == 2 and "does not exist" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli("replay", "--topic", src, "--from", "now", "--to=-1h", "--to-topic", src + "x")
    assert r.returncode == 2 and "must be after --from" in r.stderr
    r = cli("replay", "--topic", src, "--from", "yesterday-ish", "--to-topic", "x")
    assert r.returncode == 2 and "cannot read time" in r.stderr
    assert "example" in cli("replay", "--help", check_rc=0).stdout


def test_time_arguments():
    now = 1_700_000_000.0
    assert parse_time("now", now) == 1_700_000_000_000
    assert parse_time("-15m", now) == 1_700_000_000_000 - 900_000
    assert parse_time("2h ago", now) == 1_700_000_000_000 - 7_200_000
    assert parse_time("2023-11-14T22:13:20Z") == 1_700_000_000_000
    assert parse_time("2023-11-14T22:13:20") == 1_700_000_000_000  # no zone: UTC
    assert parse_time("1700000000") == parse_time("1700000000000") == parse_time("1700000000000000000")
    assert is_relative("2h") and is_relative("now") and not is_relative("2024-01-01T00:00:00Z")


def test_a_relative_window_resumes_by_the_command_as_typed(cli, new_topic, produce_at, read_all, tmp_path):
    """Re-running `--from 3000d` a moment later resumes the job (same state file), it does not
    plan a new window; once done, the next run plans the window before its own now."""
    src, dst = new_topic(1), new_topic(1)
    _fill(produce_at, src, 5, partitions=1)
    args = ["replay", "--topic", src, "--from", "3000d", "--to-topic", dst, "--json"]
    first = json.loads(cli(*args, check_rc=0).stdout)
    assert first["copied"] == 5 and not first["resumed"]
    state = json.loads(open(first["state"]).read())
    assert state["job"]["from"] == "3000d" and state["done"]
    second = json.loads(cli(*args, check_rc=0).stdout)
    assert second["state"] == first["state"] and not second["resumed"] and second["copied"] == 5
    assert len(read_all(dst)) == 10


@pytest.mark.timeout(120)
def test_the_same_job_against_a_second_cluster_or_a_recreated_topic_copies_again(
    cli, new_topic, produce_at, read_all, tmp_path
):
    # Issue 17 (4): the job's identity had no cluster id: against a second cluster with the same topic
    # names it printed the first cluster's "copied":N,"done":true and copied nothing.
    import os

    from logtide.broker import EmbeddedBroker
    from logtide.transport import KafkaSettings, TopicSpec, connect

    src, dst = new_topic(2), new_topic(2)
    _fill(produce_at, src, 40, partitions=2)
    args = ["replay", "--topic", src, "--from", str(BASE), "--to", str(BASE + 30_000), "--to-topic", dst, "--json"]
    first = json.loads(cli(*args, check_rc=0).stdout)
    assert first["copied"] == 30 and first["done"]

    second = EmbeddedBroker(log_file=str(tmp_path / "second-broker.log"))
    second.start()
    try:
        other = KafkaSettings(bootstrap=second.bootstrap, client="confluent")
        admin = connect(other).admin()
        admin.create_topics([TopicSpec(src, 2), TopicSpec(dst, 2)])
        admin.close()
        p = connect(other).producer()
        for i in range(40):
            p.produce(src, f"v{i}".encode(), key=f"k{i}".encode(), partition=i % 2, timestamp_ms=BASE + i * 1000)
        assert p.flush(30) == 0
        p.close()
        there = json.loads(cli(*args, "--bootstrap", second.bootstrap, check_rc=0).stdout)
        assert there["copied"] == 30 and there["state"] != first["state"] and not there["already_complete"]
        consumer = connect(other).consumer(None)
        from logtide.topics import partition_ranges

        try:
            ranges = partition_ranges(consumer, consumer.partitions_for(dst))
            assert sum(e - s for s, e in ranges.values()) == 30
        finally:
            consumer.close()
    finally:
        second.stop()

    # the destination deleted and created again on the first cluster: a new job, not "already done"
    admin = connect(KafkaSettings(bootstrap=os.environ["LOGTIDE_BOOTSTRAP"], client="confluent")).admin()
    admin.delete_topics([dst])
    deadline = time.monotonic() + 20
    while dst in admin.list_topics() and time.monotonic() < deadline:
        time.sleep(0.2)
    admin.create_topics([TopicSpec(dst, 2)])
    admin.close()
    again = json.loads(cli(*args, check_rc=0).stdout)
    assert again["copied"] == 30 and not again["already_complete"]
    assert len(read_all(dst)) == 30


def test_a_producer_with_a_slow_clock_writing_into_the_window_is_not_lost(cli, new_topic, produce_at, read_all):
    # Issue 17 (5): a partition was closed at the first record stamped >= --to, so in-window records
    # written a little later by a producer whose clock is 2 s behind were lost.
    src, dst = new_topic(1), new_topic(1)
    end = BASE + 50_000
    on_time = [(0, BASE + i * 1000, b"k", f"v{i}".encode(), []) for i in range(60)]  # ..59 s, up to 9 s past --to
    late = [(0, end - 2000 + i * 400, b"k", f"late{i}".encode(), []) for i in range(10)]  # 48.0 .. 51.6 s
    produce_at(src, on_time[:52] + late + on_time[52:])
    out = json.loads(
        cli(
            "replay",
            "--topic",
            src,
            "--from",
            str(BASE + 20_000),
            "--to",
            str(end),
            "--to-topic",
            dst,
            "--json",
            check_rc=0,
        ).stdout
    )
    got = sorted(r.value.decode() for r in read_all(dst))
    assert got == sorted([f"v{i}" for i in range(20, 50)] + [f"late{i}" for i in range(5)])  # < --to only
    assert out["copied"] == 35
    tight = json.loads(
        cli(
            "replay",
            "--topic",
            src,
            "--from",
            str(BASE + 20_000),
            "--to",
            str(end),
            "--to-topic",
            new_topic(1),
            "--grace",
            "0",
            "--json",
            check_rc=0,
        ).stdout
    )
    assert tight["copied"] == 30  # without grace the late ones are missed: the option is what saves them


def test_create_topic_state_location_and_unwritable_state(cli, new_topic, produce_at, read_all, tmp_path, monkeypatch):
    src = new_topic(3)
    _fill(produce_at, src, 10)
    dst = f"replay.created.{time.time_ns()}"
    r = cli("replay", "--topic", src, "--from", str(BASE), "--to-topic", dst)
    assert r.returncode == 2 and "--create-topic" in r.stderr and "3 partitions" in r.stderr
    monkeypatch.setenv("LOGTIDE_STATE_DIR", str(tmp_path / "pod-state"))  # the chart's writable mount
    out = json.loads(
        cli(
            "replay", "--topic", src, "--from", str(BASE), "--to-topic", dst, "--create-topic", "--json", check_rc=0
        ).stdout
    )
    assert out["copied"] == 10 and out["state"].startswith(str(tmp_path / "pod-state"))
    assert sorted(r.partition for r in read_all(dst)) == sorted(i % 3 for i in range(10))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    r = cli("replay", "--topic", src, "--from", str(BASE), "--to-topic", dst, "--state", str(blocker / "s.json"))
    assert r.returncode == 2 and f"--state {blocker / 's.json'}: cannot write" in r.stderr, r.stderr
    monkeypatch.setenv("LOGTIDE_STATE_DIR", str(blocker / "sub"))
    r = cli("replay", "--topic", src, "--from", str(BASE), "--to", str(BASE + 5000), "--to-topic", dst)
    assert r.returncode == 2 and "cannot write" in r.stderr and "LOGTIDE_STATE_DIR" in r.stderr, r.stderr

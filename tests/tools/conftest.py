"""Helpers for the day-2 tools' tests: run the `logtide` CLI as users do (a subprocess), and produce
records with chosen timestamps (the transport interface has no timestamp argument, so this uses the
confluent-kafka client directly, against the same real broker)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import orjson
import pytest


@pytest.fixture
def cli_proc(broker, tmp_path):
    """Run `logtide ARGS...` as a subprocess against the test broker (as users do)."""

    def run(*args: str, timeout: float = 60, check_rc: int | None = None) -> subprocess.CompletedProcess:
        env = {**os.environ, "LOGTIDE_BOOTSTRAP": broker, "XDG_STATE_HOME": str(tmp_path / "state")}
        proc = subprocess.run(
            [sys.executable, "-m", "logtide.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
        )
        if check_rc is not None:
            assert proc.returncode == check_rc, f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        return proc

    return run


@pytest.fixture
def cli(broker, tmp_path, capsys, monkeypatch):
    """Run `logtide ARGS...` in this process (same code path as the command, without the ~1 s of
    interpreter start and imports per call); signal handlers the tools install are put back."""
    monkeypatch.setenv("LOGTIDE_BOOTSTRAP", broker)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))

    def run(*args: str, check_rc: int | None = None) -> subprocess.CompletedProcess:
        from logtide.cli import main

        handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        capsys.readouterr()
        try:
            rc = main(list(args))
        except SystemExit as exc:  # argparse errors
            rc = exc.code if isinstance(exc.code, int) else 2
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
        out, err = capsys.readouterr()
        proc = subprocess.CompletedProcess(["logtide", *args], rc, out, err)
        if check_rc is not None:
            assert rc == check_rc, f"rc={rc}\nstdout:\n{out}\nstderr:\n{err}"
        return proc

    return run


@pytest.fixture
def popen_cli(broker, tmp_path):
    """Start `logtide ARGS...` in the background (for interrupting); the test owns the process."""
    procs = []

    def start(*args: str) -> subprocess.Popen:
        env = {**os.environ, "LOGTIDE_BOOTSTRAP": broker, "XDG_STATE_HOME": str(tmp_path / "state")}
        p = subprocess.Popen(
            [sys.executable, "-m", "logtide.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def json_out(proc: subprocess.CompletedProcess):
    assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return orjson.loads(proc.stdout)


@pytest.fixture
def produce_at(fast_kafka):
    """produce_at(topic, [(partition, timestamp_ms, key, value, headers)]) with exact timestamps."""
    from logtide.transport import connect

    def produce(topic: str, records) -> None:
        p = connect(fast_kafka).producer()
        try:
            for partition, ts, key, value, headers in records:
                p.produce(topic, value, key=key, headers=headers or None, partition=partition, timestamp_ms=ts)
            assert p.flush(30) == 0
        finally:
            p.close()

    return produce


@pytest.fixture
def read_all(fast_kafka):
    """Every record of a topic now (exact end offsets), sorted by (partition, offset)."""
    from logtide.topics import RangeReader, partition_ranges
    from logtide.transport import connect

    def read(topic: str, timeout: float = 20.0):
        consumer = connect(fast_kafka).consumer(None)
        try:
            ranges = partition_ranges(consumer, consumer.partitions_for(topic))
            got = [rec for batch in RangeReader(consumer, ranges, idle_timeout=timeout).batches() for rec in batch]
            assert len(got) == sum(end - start for start, end in ranges.values()), f"short read of {topic}"
            return sorted(got, key=lambda r: (r.partition, r.offset))
        finally:
            consumer.close()

    return read

"""Processor replicas as real processes: two of them share the partitions with no loss, and a
replica killed with SIGKILL mid-batch loses nothing (its batch is read again; duplicates share ids)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict

import orjson
import pytest

from logtide import envelope
from tests.conftest import ROOT
from tests.processors.conftest import (
    create_topic,
    make_event,
    produce_events,
    read_topic,
    route_topic,
    write_config,
)

PIPELINE = [
    {"type": "parse"},
    {"type": "normalize"},
    {"type": "redact", "kinds": ["email"]},
    {
        "type": "route",
        "rules": [{"when": "severity_number >= 17", "sinks": ["monitoring"]}, {"when": "true", "sinks": ["analytics"]}],
    },
]


def start(config_path, log_path, broker):
    log = open(log_path, "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "logtide.cli", "process", "--config", str(config_path), "--bootstrap", broker],
        cwd=ROOT,
        stdout=log,
        stderr=log,
    )


def stop(proc) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def processed_counts(log_path) -> list[int]:
    out = []
    for line in open(log_path, "rb"):
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if rec.get("msg") == "processor stopped":
            out.append(rec["processed"])
    return out


def ids_of(records) -> list[str]:
    return [envelope.decode(r.value)["id"] for r in records]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_two_replicas_share_partitions_without_loss(broker, fast_kafka, names, tmp_path):
    create_topic(fast_kafka, names["raw"], 4)
    path = write_config(tmp_path / "p.yaml", broker, names, PIPELINE, max_batch=50)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [start(path, logs[0], broker), start(path, logs[1], broker)]
    try:
        events = [
            make_event(i, service=f"svc{i % 8}", level="ERROR" if i % 10 == 0 else "INFO", run="replicas")
            for i in range(3000)
        ]
        # a steady stream over several seconds, so both members are in the group while it flows
        for chunk in range(30):
            produce_events(fast_kafka, names["raw"], events[chunk * 100 : (chunk + 1) * 100])
            time.sleep(0.25)
        out = read_topic(fast_kafka, route_topic(names, "analytics"), 3000, timeout=60)
        mon = read_topic(fast_kafka, route_topic(names, "monitoring"), 300, timeout=20)
    finally:
        for p in procs:
            stop(p)
    assert set(ids_of(out)) == {e["id"] for e in events}
    assert set(ids_of(mon)) == {e["id"] for e in events[::10]}
    counts = [processed_counts(lg) for lg in logs]
    assert all(c and c[-1] > 0 for c in counts), (counts, [lg.read_text()[-2000:] for lg in logs])
    assert sum(c[-1] for c in counts) >= 3000


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_kill_9_mid_batch_then_restart_loses_nothing(broker, fast_kafka, names, tmp_path):
    create_topic(fast_kafka, names["raw"], 2)
    # a backlog that takes the processor seconds: the kill lands while it is busy with a batch
    events = [make_event(i, service=f"svc{i % 4}", run="kill9") for i in range(20000)]
    produce_events(fast_kafka, names["raw"], events[:14000])
    path = write_config(tmp_path / "p.yaml", broker, names, PIPELINE, max_batch=500)
    log = tmp_path / "p.log"
    sent = [0]

    def feed():  # and more keeps coming while it runs, is killed and restarts
        for i in range(14000, len(events), 200):
            produce_events(fast_kafka, names["raw"], events[i : i + 200])
            sent[0] = i + 200
            time.sleep(0.05)

    proc = start(path, log, broker)
    feeder = threading.Thread(target=feed, daemon=True)
    try:
        feeder.start()
        partial = read_topic(fast_kafka, route_topic(names, "analytics"), 2000, timeout=60)
        assert len(partial) >= 2000
        proc.send_signal(signal.SIGKILL)  # no flush, no commit, no goodbye
        proc.wait(10)
        killed_at = len(read_topic(fast_kafka, route_topic(names, "analytics"), 10**9, timeout=1.5))
        proc = start(path, log, broker)
        feeder.join(60)
        out = read_topic(fast_kafka, route_topic(names, "analytics"), len(events), timeout=80, settle=1.0)
    finally:
        stop(proc)
    assert killed_at < len(events), "the kill should come while the stream still flows"
    ids = ids_of(out)
    assert set(ids) == {e["id"] for e in events}  # every input appears in the outputs
    copies = defaultdict(set)
    for r in out:
        ev = envelope.decode(r.value)
        copies[ev["id"]].add((ev["body"], ev["time"], r.key))
    assert all(len(v) == 1 for v in copies.values())  # duplicates are the same event, same id
    print(
        f"outputs {len(ids)} for {len(events)} inputs, duplicates after kill -9: {len(ids) - len(set(ids))}, "
        f"outputs at kill: {killed_at}"
    )

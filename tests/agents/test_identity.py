"""File identity across restarts: a reused inode (new content under a checkpointed dev:ino) is read from
its start, and a file truncated while the agent was down starts a new generation (new ids)."""

from __future__ import annotations

import os

import pytest

from logtide.checkpoint import SqliteCheckpoints
from tests.agents.helpers import RunningAgent, TopicReader, log_dir, metric

HEADER = b"2024-05-01T12:00:00Z service=checkout build=7f3a9c host=node-1 started\n"  # > 64 bytes


def _ship(kafka, tmp_path, logs, topic, reader, n):
    with RunningAgent(kafka, tmp_path / "ck", include=[str(logs / "*.log")], topic=topic):
        reader.count(n)
    return reader.settle(0.3)


@pytest.mark.timeout(60)
def test_reused_inode_and_truncation_while_down(tmp_path, memory_kafka, memory_topic):
    topic = memory_topic(1)
    logs = log_dir(
        tmp_path,
        a_log=b"".join(b"old a %d\n" % i for i in range(50)),
        c_log=HEADER + b"".join(b"old c %d\n" % i for i in range(50)),
    )
    reader = TopicReader(memory_kafka, topic)
    first = _ship(memory_kafka, tmp_path, logs, topic, reader, 101)
    assert len(first) == 101
    old_ids = {e["id"] for e in first}

    # 1. inode reuse: b.log is new, but the store has a checkpoint for its dev:ino (a.log's, at its end)
    (logs / "b.log").write_bytes(b"".join(b"new b %d\n" % i for i in range(30)))
    st = os.stat(logs / "b.log")
    store = SqliteCheckpoints(tmp_path / "ck" / "checkpoints.sqlite")
    a = os.stat(logs / "a.log")
    a_key = f"{a.st_dev}:{a.st_ino}"
    stale = dict(store.get(a_key))
    stale["identity"] = {**stale["identity"], "ino": st.st_ino}
    store.put(f"{st.st_dev}:{st.st_ino}", stale)
    store.close()
    # 2. c.log truncated while the agent was down, then rewritten: same first bytes, shorter than before
    (logs / "c.log").write_bytes(HEADER + b"".join(b"new c %d\n" % i for i in range(5)))
    reuse_before = metric("logtide_agent_rotations_total", kind="inode_reuse")
    truncate_before = metric("logtide_agent_rotations_total", kind="truncate")

    events = _ship(memory_kafka, tmp_path, logs, topic, reader, 101 + 30 + 6)[101:]
    bodies = [e["body"] for e in events]
    assert sorted(b for b in bodies if b.startswith("new b")) == sorted(f"new b {i}" for i in range(30)), (
        "the reused inode's file is read from its first byte, nothing skipped"
    )
    assert sorted(b for b in bodies if b.startswith("new c")) == sorted(f"new c {i}" for i in range(5))
    assert len(events) == 36, "nothing of the old content again"
    assert not old_ids & {e["id"] for e in events}, "new content never reuses an old id"
    assert metric("logtide_agent_rotations_total", kind="inode_reuse") == reuse_before + 1
    assert metric("logtide_agent_rotations_total", kind="truncate") == truncate_before + 1
    reader.close()

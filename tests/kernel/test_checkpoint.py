"""Checkpoint stores: SQLite (node agent) and a compacted Kafka topic (collectors)."""

from __future__ import annotations

import sqlite3
import uuid

import pytest

from logtide.checkpoint import CheckpointError, KafkaCheckpoints, SqliteCheckpoints
from logtide.transport import connect

pytestmark = pytest.mark.timeout(60)


def test_sqlite_survives_reopen(tmp_path):
    path = tmp_path / "state" / "checkpoints.db"  # parent dir is created
    store = SqliteCheckpoints(path)
    store.put("file:/var/log/a.log", {"inode": 42, "offset": 1024})
    store.put("file:/var/log/b.log", {"inode": 43, "offset": 9})
    store.put("file:/var/log/a.log", {"inode": 42, "offset": 2048})  # overwrite
    store.close()
    store = SqliteCheckpoints(path)
    try:
        assert store.get("file:/var/log/a.log") == {"inode": 42, "offset": 2048}
        assert store.get("absent") is None
        assert [k for k, _ in store.items()] == ["file:/var/log/a.log", "file:/var/log/b.log"]
        store.delete("file:/var/log/b.log")
        assert store.get("file:/var/log/b.log") is None
    finally:
        store.close()


def test_sqlite_put_many_is_all_or_nothing(tmp_path):
    path = tmp_path / "cp.db"
    store = SqliteCheckpoints(path)
    store.put("a", {"offset": 1})
    # a value that cannot be encoded fails the whole batch: "a" keeps its old value, "b" is not written
    with pytest.raises(TypeError):
        store.put_many({"a": {"offset": 2}, "b": {"offset": object()}})
    assert store.get("a") == {"offset": 1}
    assert store.get("b") is None
    # a write that fails half-way (a trigger refuses the second row) leaves the first row unchanged
    other = sqlite3.connect(path)
    other.execute(
        "CREATE TRIGGER refuse_b BEFORE INSERT ON checkpoints WHEN NEW.key = 'b' "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    other.commit()
    with pytest.raises(CheckpointError, match="refused"):
        store.put_many({"a": {"offset": 2}, "b": {"offset": 2}})
    assert store.get("a") == {"offset": 1} and store.get("b") is None
    other.execute("DROP TRIGGER refuse_b")
    other.commit()
    other.close()
    store.put_many({"a": {"offset": 3}, "b": {"offset": 4}})
    store.close()
    store = SqliteCheckpoints(path)
    assert dict(store.items()) == {"a": {"offset": 3}, "b": {"offset": 4}}
    store.close()


def test_sqlite_failed_write_rolls_back_and_raises_checkpoint_error(tmp_path):
    path = tmp_path / "cp.db"
    store = SqliteCheckpoints(path)
    store.put("a", {"offset": 1})
    # another connection holds the write lock: our transaction cannot start
    other = sqlite3.connect(path, timeout=0)
    other.execute("BEGIN EXCLUSIVE")
    store._db.execute("PRAGMA busy_timeout=100")
    try:
        with pytest.raises(CheckpointError, match="cannot write checkpoint"):
            store.put_many({"a": {"offset": 2}, "b": {"offset": 3}})
    finally:
        other.rollback()
        other.close()
    assert store.get("a") == {"offset": 1} and store.get("b") is None
    store.put("a", {"offset": 5})  # usable again
    assert store.get("a") == {"offset": 5}
    store.close()


def test_sqlite_unusable_path_is_a_checkpoint_error(tmp_path):
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(CheckpointError, match="cannot open checkpoint store"):
        SqliteCheckpoints(tmp_path / "dir.db")


def test_kafka_checkpoints_survive_a_new_instance_and_delete(fast_kafka, new_topic):
    topic = new_topic(1, prefix="test.checkpoints", config={"cleanup.policy": "compact"})
    transport = connect(fast_kafka)
    ns = f"collector-{uuid.uuid4().hex[:6]}"
    first = KafkaCheckpoints(transport, ns, topic=topic)
    try:
        assert first.get("group-a") is None
        first.put("group-a", {"token": "t1"})
        first.put_many({"group-a": {"token": "t2"}, "group-b": {"token": "u1"}})
        first.put("group-c", {"token": "v1"})
        first.delete("group-c")
    finally:
        first.close()
    # another namespace on the same topic does not see ours
    other = KafkaCheckpoints(transport, ns + "-other", topic=topic)
    try:
        other.put("group-a", {"token": "other"})
    finally:
        other.close()
    second = KafkaCheckpoints(transport, ns, topic=topic)
    try:
        assert second.get("group-a") == {"token": "t2"}
        assert second.get("group-b") == {"token": "u1"}
        assert second.get("group-c") is None
        assert list(second.items()) == [("group-a", {"token": "t2"}), ("group-b", {"token": "u1"})]
    finally:
        second.close()


def test_kafka_checkpoints_on_an_empty_topic(fast_kafka, new_topic):
    topic = new_topic(1, prefix="test.checkpoints", config={"cleanup.policy": "compact"})
    store = KafkaCheckpoints(connect(fast_kafka), "empty", topic=topic)
    try:
        assert list(store.items()) == []
    finally:
        store.close()

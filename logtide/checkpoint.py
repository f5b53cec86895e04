"""Checkpoint stores: where a source records how far it got, moved only after Kafka acknowledged.

- ``SqliteCheckpoints``: a local file (the node agent: one per node, on a hostPath). Each ``put``
  is an atomic, fsync'd SQLite transaction, so kill -9 leaves the previous or the new value.
- ``KafkaCheckpoints``: a compacted topic (collectors), as Kafka Connect keeps source offsets: a
  replacement replica on another machine resumes where the last one stopped.

Both map a string key to a JSON-able dict.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator

import orjson

from logtide.topics import CHECKPOINTS, RangeReader, checkpoints_spec, partition_ranges
from logtide.transport import TopicPartition, Transport, TransportError


class CheckpointError(Exception):
    """A checkpoint could not be read or written (disk full, corrupt file, Kafka down)."""


class SqliteCheckpoints:
    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS checkpoints (key TEXT PRIMARY KEY, value BLOB NOT NULL, "
                "updated REAL NOT NULL)"
            )
        except sqlite3.Error as exc:
            raise CheckpointError(f"cannot open checkpoint store {self.path}: {exc}") from None

    def get(self, key: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM checkpoints WHERE key=?", (key,)).fetchone()
        return orjson.loads(row[0]) if row else None

    def put(self, key: str, value: dict) -> None:
        self.put_many({key: value})

    def put_many(self, values: dict[str, dict]) -> None:
        """Write several checkpoints in one transaction (all or none)."""
        if not values:
            return
        now = time.time()
        # Encode first: a value that cannot be encoded must not leave a transaction open.
        rows = [(k, orjson.dumps(v), now) for k, v in values.items()]
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise CheckpointError(f"cannot write checkpoint to {self.path}: {exc}") from None
            try:
                self._db.executemany(
                    "INSERT INTO checkpoints(key, value, updated) VALUES(?,?,?) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value, updated=excluded.updated",
                    rows,
                )
                self._db.execute("COMMIT")
            except BaseException as exc:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                if isinstance(exc, sqlite3.Error):
                    raise CheckpointError(f"cannot write checkpoint to {self.path}: {exc}") from None
                raise

    def delete(self, key: str) -> None:
        with self._lock:
            try:
                self._db.execute("DELETE FROM checkpoints WHERE key=?", (key,))
            except sqlite3.Error as exc:
                raise CheckpointError(f"cannot delete checkpoint in {self.path}: {exc}") from None

    def items(self) -> Iterator[tuple[str, dict]]:
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM checkpoints ORDER BY key").fetchall()
        for k, v in rows:
            yield k, orjson.loads(v)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class KafkaCheckpoints:
    """Checkpoints in a compacted topic; keys are ``<namespace>/<key>``.

    ``put`` waits for the broker's ack, so a checkpoint that returned is durable.
    """

    def __init__(self, transport: Transport, namespace: str, topic: str = CHECKPOINTS):
        self.transport = transport
        self.namespace = namespace
        self.topic = topic
        self._values: dict[str, dict] = {}
        admin = transport.admin()
        try:
            admin.create_topics([checkpoints_spec(topic)])
        finally:
            admin.close()
        self._producer = transport.producer(linger_ms=0)
        self.reload()

    def reload(self) -> None:
        """Read the whole topic (the last value of each key wins; an empty value deletes)."""
        prefix = self.namespace + "/"
        consumer = self.transport.consumer(None)
        try:
            parts = consumer.partitions_for(self.topic) or [TopicPartition(self.topic, 0)]
            values: dict[str, dict] = {}
            try:
                for batch in RangeReader(
                    consumer, partition_ranges(consumer, parts), max_batch=10_000, idle_timeout=60
                ).batches():
                    for rec in batch:
                        key = (rec.key or b"").decode("utf-8", "replace")
                        if not key.startswith(prefix):
                            continue
                        if rec.value:
                            values[key[len(prefix) :]] = orjson.loads(rec.value)
                        else:
                            values.pop(key[len(prefix) :], None)
            except TimeoutError as exc:
                raise CheckpointError(f"timed out reading checkpoints from {self.topic}: {exc}") from None
        finally:
            consumer.close()
        self._values = values

    def get(self, key: str) -> dict | None:
        return self._values.get(key)

    def put(self, key: str, value: dict) -> None:
        self.put_many({key: value})

    def put_many(self, values: dict[str, dict]) -> None:
        errors: list[Exception] = []
        for k, v in values.items():
            self._producer.produce(
                self.topic,
                orjson.dumps(v),
                key=f"{self.namespace}/{k}".encode(),
                on_delivery=lambda err, rec: err and errors.append(err),
            )
        left = self._producer.flush(30)
        if errors or left:
            raise CheckpointError(f"checkpoint not acknowledged by Kafka: {errors[0] if errors else 'timeout'}")
        self._values.update(values)

    def delete(self, key: str) -> None:
        self._producer.produce(self.topic, None, key=f"{self.namespace}/{key}".encode())
        self._producer.flush(30)
        self._values.pop(key, None)

    def items(self) -> Iterator[tuple[str, dict]]:
        return iter(sorted(self._values.items()))

    def close(self) -> None:
        try:
            self._producer.close()
        except TransportError:
            pass


__all__ = ["CheckpointError", "KafkaCheckpoints", "SqliteCheckpoints"]

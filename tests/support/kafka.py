"""Topics in tests: producing and reading back, on the session's embedded broker or on a fresh
in-memory cluster (``memory_kafka``: for tests of a role's logic, not of Kafka)."""

from __future__ import annotations

import time
import uuid

import pytest

from logtide import envelope
from logtide.transport import KafkaSettings, Record, TopicPartition, TopicSpec, connect


def settings_of(kafka: KafkaSettings | str) -> KafkaSettings:
    """Settings as given, or the fast client on a bootstrap address."""
    return kafka if isinstance(kafka, KafkaSettings) else KafkaSettings(bootstrap=kafka, client="confluent")


def create_topic(kafka: KafkaSettings | str, topic: str, partitions: int = 1, config: dict | None = None) -> str:
    with connect(settings_of(kafka)).admin() as admin:
        admin.create_topics([TopicSpec(topic, partitions, config=config or {})])
    return topic


def produce(
    kafka: KafkaSettings | str, topic: str, values: list[tuple[bytes | None, bytes | None]], headers=None, **overrides
) -> None:
    """Produce (key, value) pairs and wait until every one is acknowledged."""
    producer = connect(settings_of(kafka)).producer(**overrides)
    errors = []
    try:
        for key, value in values:
            producer.produce(
                topic, value, key=key, headers=headers, on_delivery=lambda err, rec: errors.append(err) if err else None
            )
        assert producer.flush(30) == 0
    finally:
        producer.close()
    assert not errors, errors


def read_records(
    kafka: KafkaSettings | str, topic: str, expect: int, timeout: float = 30.0, settle: float = 0.0
) -> list[Record]:
    """Every record of a topic (all partitions, from the start) until ``expect`` arrived or
    ``timeout``; then ``settle`` seconds more (to see duplicates or extras)."""
    consumer = connect(settings_of(kafka)).consumer(None)
    try:
        parts = []
        deadline = time.monotonic() + timeout
        while not parts and time.monotonic() < deadline:
            parts = consumer.partitions_for(topic)
            if not parts:
                time.sleep(0.05)
        if not parts:
            return []
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, 0)
        out: list[Record] = []
        settle_until = None
        while time.monotonic() < deadline:
            out.extend(consumer.poll_batch(10_000, 0.2))
            if len(out) >= expect:
                if settle_until is None:
                    settle_until = time.monotonic() + settle
                if time.monotonic() >= settle_until:
                    break
        return out
    finally:
        consumer.close()


def read_events(
    kafka: KafkaSettings | str, topic: str, want: int, timeout: float = 30.0, settle: float = 0.0
) -> list[dict]:
    """``read_records``, decoded."""
    return [envelope.decode(r.value) for r in read_records(kafka, topic, want, timeout, settle)]


class TopicReader:
    """Reads a topic from the start with manual assignment, keeping every decoded event."""

    def __init__(self, kafka: KafkaSettings | str, topic: str, partitions: int = 1):
        self.consumer = connect(settings_of(kafka)).consumer(None)
        self.consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        self.events: list[dict] = []
        self.keys: list[bytes] = []
        self.headers: list[list] = []

    def _read(self) -> int:
        recs = self.consumer.poll_batch(10_000, 0.2)
        for rec in recs:
            self.events.append(envelope.decode(rec.value))
            self.keys.append(rec.key)
            self.headers.append(list(rec.headers or []))
        return len(recs)

    def read_until(self, predicate, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while not predicate(self.events):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out with {len(self.events)} events; last: {self.events[-3:]}")
            self._read()
        return self.events

    def count(self, n: int, timeout: float = 20.0) -> list[dict]:
        return self.read_until(lambda evs: len(evs) >= n, timeout)

    def settle(self, quiet: float = 1.0) -> list[dict]:
        """Read until nothing new came for ``quiet`` seconds."""
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            if self._read():
                last = time.monotonic()
        return self.events

    def bodies(self) -> list:
        return [e["body"] for e in self.events]

    def close(self):
        self.consumer.close()


@pytest.fixture
def memory_kafka() -> KafkaSettings:
    """Settings of an in-memory cluster of this test's own (``kafka.client: memory``)."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield KafkaSettings(client="memory", bootstrap=name)
    from logtide.transport.memory import drop_cluster

    drop_cluster(name)


@pytest.fixture
def memory_topic(memory_kafka):
    """Factory: create a uniquely named topic on the test's in-memory cluster, return its name."""

    def make(partitions: int = 1, prefix: str = "test", config: dict | None = None) -> str:
        return create_topic(memory_kafka, f"{prefix}.{uuid.uuid4().hex[:10]}", partitions, config)

    return make

"""Helpers for processor tests: produce envelopes to a raw topic, read route topics back, write a
processor config that uses unique route/DLQ topics (the broker is shared by the whole session)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import orjson
import pytest
import yaml

from logtide import envelope
from logtide.transport import Record, TopicPartition, TopicSpec, connect

SINKS = ("monitoring", "audit", "analytics")


def make_event(i: int, *, service: str = "checkout", level: str = "INFO", body=None, run: str = "t") -> dict:
    ev = envelope.new_event(
        id=envelope.make_id("test", run, i),
        body=body if body is not None else orjson.dumps({"level": level.lower(), "msg": f"request {i}",
                                                         "user": f"user{i}@example.com", "n": i}).decode(),
        source="demo", time=time.time_ns(), resource={"service.name": service, "k8s.pod.name": f"{service}-0"})
    ev["ingest_time"] = time.time_ns()
    return ev


def produce(settings, topic: str, values: list[tuple[bytes | None, bytes | None]], headers=None, **overrides) -> None:
    """Produce (key, value) pairs and wait until all are acked."""
    producer = connect(settings).producer(**overrides)
    errors = []
    for key, value in values:
        producer.produce(topic, value, key=key, headers=headers,
                         on_delivery=lambda err, rec: errors.append(err) if err else None)
    assert producer.flush(30) == 0
    producer.close()
    assert not errors, errors


def produce_events(settings, topic: str, events: list[dict]) -> None:
    produce(settings, topic, [(e["resource"]["service.name"].encode(), envelope.encode(e)) for e in events])


def read_topic(settings, topic: str, expect: int, timeout: float = 30.0, settle: float = 0.0) -> list[Record]:
    """Every record of a topic (manual assignment from the start) until ``expect`` arrived or timeout;
    then keep reading ``settle`` seconds more (to see duplicates or extras)."""
    consumer = connect(settings).consumer(None)
    try:
        parts = []
        deadline = time.monotonic() + timeout
        while not parts and time.monotonic() < deadline:
            parts = consumer.partitions_for(topic)
            if not parts:
                time.sleep(0.2)
        if not parts:
            return []
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, 0)
        out: list[Record] = []
        settle_until = None
        while time.monotonic() < deadline:
            out.extend(consumer.poll_batch(5000, 0.3))
            if len(out) >= expect:
                if settle_until is None:
                    settle_until = time.monotonic() + settle
                if time.monotonic() >= settle_until:
                    break
        return out
    finally:
        consumer.close()


@pytest.fixture
def names():
    """Unique raw topic name, route prefix, DLQ topic and group for one test."""
    tag = uuid.uuid4().hex[:8]
    return {"raw": f"test.raw.{tag}", "prefix": f"test.route.{tag}.", "dlq": f"test.dlq.{tag}",
            "group": f"test-proc-{tag}"}


def write_config(path: Path, broker: str, names: dict, pipeline: list | None = None, **extra) -> Path:
    cfg = {
        "kafka": {"bootstrap": broker, "client": "confluent"},
        "http": {"host": "127.0.0.1", "port": 0},
        "group_id": names["group"],
        "topics": [names["raw"]],
        "route_prefix": names["prefix"],
        "dlq_topic": names["dlq"],
        "session_timeout_seconds": 6,
        "partitions": 2,
        **extra,
    }
    if pipeline is not None:
        cfg["pipeline"] = pipeline
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def route_topic(names: dict, sink: str) -> str:
    return names["prefix"] + sink


def tp(topic: str, p: int = 0) -> TopicPartition:
    return TopicPartition(topic, p)


def create_topic(settings, topic: str, partitions: int = 1, config: dict | None = None) -> None:
    admin = connect(settings).admin()
    try:
        admin.create_topics([TopicSpec(topic, partitions, config=config or {})])
    finally:
        admin.close()

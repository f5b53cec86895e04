"""Helpers for processor tests: produce envelopes to a raw topic, read route topics back, write a
processor config that uses unique route/DLQ topics (the broker is shared by the whole session)."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest
import yaml

from logtide import envelope
from logtide.transport import KafkaSettings, Record, TopicPartition

from tests.support.events import make_event as support_event
from tests.support.kafka import create_topic, produce, read_records, settings_of  # noqa: F401 - create_topic: for the tests

SINKS = ("monitoring", "audit", "analytics")


def make_event(i: int, *, service: str = "checkout", level: str = "INFO", body=None, run: str = "t") -> dict:
    return support_event(
        i,
        id=envelope.make_id("test", run, i),
        body=body
        if body is not None
        else orjson.dumps(
            {"level": level.lower(), "msg": f"request {i}", "user": f"user{i}@example.com", "n": i}
        ).decode(),
        source="demo",
        resource={"service.name": service, "k8s.pod.name": f"{service}-0"},
    )


def produce_events(settings, topic: str, events: list[dict]) -> None:
    produce(settings, topic, [(e["resource"]["service.name"].encode(), envelope.encode(e)) for e in events])


def read_topic(settings, topic: str, expect: int, timeout: float = 30.0, settle: float = 0.0) -> list[Record]:
    """Every record of a topic (manual assignment from the start) until ``expect`` arrived or timeout;
    then keep reading ``settle`` seconds more (to see duplicates or extras)."""
    return read_records(settings, topic, expect, timeout, settle)


@pytest.fixture
def names():
    """Unique raw topic name, route prefix, DLQ topic and group for one test."""
    tag = uuid.uuid4().hex[:8]
    return {
        "raw": f"test.raw.{tag}",
        "prefix": f"test.route.{tag}.",
        "dlq": f"test.dlq.{tag}",
        "group": f"test-proc-{tag}",
    }


def write_config(path: Path, kafka: KafkaSettings | str, names: dict, pipeline: list | None = None, **extra) -> Path:
    kafka = settings_of(kafka)
    cfg = {
        "kafka": {"bootstrap": kafka.bootstrap, "client": kafka.client},
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

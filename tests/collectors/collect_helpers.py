"""Helpers for the collectors' tests: run a work item in a thread, read back what reached Kafka."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid

from logtide import envelope
from logtide.transport import KafkaSettings, TopicPartition, connect


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def read_events(settings: KafkaSettings, topic: str, want: int, timeout: float = 30.0,
                settle: float = 0.0) -> list[dict]:
    """Consume a topic from the start until ``want`` events (then ``settle`` more seconds) or timeout."""
    transport = connect(settings)
    consumer = transport.consumer(None)
    out: list[dict] = []
    try:
        parts = consumer.partitions_for(topic) or [TopicPartition(topic, 0)]
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, 0)
        deadline = time.monotonic() + timeout
        settle_until = None
        while time.monotonic() < deadline:
            out += [envelope.decode(r.value) for r in consumer.poll_batch(10_000, 0.3)]
            if len(out) >= want and settle_until is None:
                settle_until = time.monotonic() + settle
            if settle_until is not None and time.monotonic() >= settle_until:
                break
    finally:
        consumer.close()
    return out


@contextlib.contextmanager
def running_item(collector, item: str):
    """Run one work item of a collector in a thread; on exit stop it (it flushes and checkpoints)."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def target():
        try:
            collector.run_item(item, stop)
        except BaseException as exc:  # surfaced to the test
            errors.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    try:
        yield stop
    finally:
        stop.set()
        t.join(30)
        assert not t.is_alive(), "work item did not stop"
    if errors:
        raise errors[0]


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def metric(name: str, **labels) -> float:
    from prometheus_client import REGISTRY
    return REGISTRY.get_sample_value(name, labels) or 0.0

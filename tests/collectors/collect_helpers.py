"""Helpers for the collectors' tests: run a work item in a thread, read back what reached Kafka."""

from __future__ import annotations

import contextlib
import threading
import uuid

from tests.support.kafka import read_events
from tests.support.metrics import metric
from tests.support.wait import wait_for as support_wait_for

__all__ = ["metric", "read_events", "running_item", "unique", "wait_for"]


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


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
    """tests.support's wait_for with this folder's default: 20 s."""
    return support_wait_for(predicate, timeout, interval=interval)

"""Helpers for the collectors' tests: run a work item in a thread, read back what reached Kafka."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import urllib.request
import uuid

from logtide.transport import KafkaSettings
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


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def collect_process(config_path, http_port: int = 0) -> subprocess.Popen:
    """`logtide collect --config FILE` as its own process (stderr kept for the test's messages)."""
    return subprocess.Popen(
        [sys.executable, "-m", "logtide.cli", "collect", "--config", str(config_path), "--http-port", str(http_port)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def http_get(port: int, path: str) -> bytes | None:
    """The body of a 200 answer from the role's HTTP port, or None (not up yet, or not 200)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.read() if resp.status == 200 else None
    except OSError:
        return None


def kill_9_then_replace(
    config_path, settings: KafkaSettings, topic: str, kill_after: int, want: int, items: int
) -> list[dict]:
    """Run `logtide collect`, SIGKILL it once ``kill_after`` events reached Kafka, start a replacement,
    wait until it owns all ``items`` (the killed member's session expired), read ``want`` events, stop
    it with SIGTERM (it must exit 0) and return every event the topic holds."""
    import signal

    from logtide.broker import free_port

    first = collect_process(config_path)
    try:
        seen = read_events(settings, topic, kill_after, timeout=60)
        assert kill_after <= len(seen) < want, "the first replica should be mid-run when killed"
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        port = free_port()
        second = collect_process(config_path, port)
        owned = f'logtide_collector_work_items{{collector="cloudwatch"}} {float(items)}'.encode()
        try:
            wait_for(lambda: http_get(port, "/readyz") is not None, timeout=40)  # its share given (maybe none yet)
            wait_for(lambda: owned in (http_get(port, "/metrics") or b""), timeout=60)
            events = read_events(settings, topic, want, timeout=90, settle=2.0)
        finally:
            second.send_signal(signal.SIGTERM)
            _, err = second.communicate(timeout=30)
        assert second.returncode == 0, err.decode()[-2000:]
    finally:
        if first.poll() is None:
            first.kill()
    return events

"""Following one container's log through the API server, and dropping the overlap of a resume.

A ``ContainerReader`` thread opens ``/log?follow=true&timestamps=true&sinceTime=…`` and puts each
line on the namespace's queue; when the stream ends (container exited, connection broke, idle
timeout) it reopens from its last line with backoff, until told to stop or the pod is gone. When the
checkpoint says the container restarted since, it first reads the rest of the previous instance
(``previous=true``).

``sinceTime`` has whole-second precision, so a resume re-reads the start of that second. ``Dedup``
numbers lines sharing one timestamp (1, 2, …) within a connection; (timestamp, n) is the line's
position, part of its id, and anything at or before the checkpointed position is dropped.
"""

from __future__ import annotations

import queue
import threading

import urllib3
from kubernetes.watch.watch import iter_resp_lines

from logtide.timeutil import parse_rfc3339

from logtide.collectors.base import Backoff, CollectorMetrics, log_error
from logtide.collectors.k8s.api import ApiException, KubernetesApi


def parse_line(line: str) -> tuple[int | None, str]:
    """(Unix ns, message) of ``2024-01-02T03:04:05.123456789Z message``; (None, line) without a timestamp."""
    stamp, sep, text = line.partition(" ")
    ns = parse_rfc3339(stamp) if sep else None
    return (ns, text) if ns is not None else (None, line)


class Position:
    """How far one container's log was shipped: (timestamp ns, n-th line at that timestamp)."""

    __slots__ = ("ts", "n")

    def __init__(self, ts: int = 0, n: int = 0):
        self.ts, self.n = ts, n


class Dedup:
    """Numbers the lines of one connection and says which are new relative to a Position."""

    def __init__(self):
        self.ts, self.k = -1, 0

    def reset(self) -> None:
        self.ts, self.k = -1, 0

    def number(self, ts: int) -> int:
        if ts == self.ts:
            self.k += 1
        else:
            self.ts, self.k = ts, 1
        return self.k

    @staticmethod
    def is_new(ts: int, k: int, pos: Position) -> bool:
        return (ts, k) > (pos.ts, pos.n)


class ContainerReader:
    """Thread that follows one container's log and queues ("reset"|"line", key, payload)."""

    def __init__(
        self,
        api: KubernetesApi,
        metrics: CollectorMetrics,
        out: queue.Queue,
        namespace: str,
        pod: str,
        container: str,
        since_ns: int | None,
        read_previous: bool,
    ):
        self.api, self.metrics, self.out = api, metrics, out
        self.namespace, self.pod, self.container = namespace, pod, container
        self.key = f"{namespace}/{pod}/{container}"
        self.since_ns = since_ns
        self.read_previous = read_previous
        self.stop = threading.Event()
        self.pod_gone = threading.Event()
        self._resp: urllib3.BaseHTTPResponse | None = None
        self.thread = threading.Thread(target=self._run, name=f"k8s-log:{self.key}", daemon=True)

    def start(self) -> ContainerReader:
        self.thread.start()
        return self

    def shutdown(self) -> None:
        """Stop following now (interrupts a blocked read)."""
        self.stop.set()
        resp = self._resp
        if resp is not None:
            try:
                resp.shutdown()
            except Exception:
                pass

    def _run(self) -> None:
        backoff = Backoff(0.5, 30.0)
        # The rest of the previous instance first (the container restarted while nobody followed it).
        while self.read_previous and not self.stop.is_set() and self._read(follow=False, previous=True) is None:
            if self.stop.wait(backoff.next_delay()):
                return
        backoff.reset()
        while not self.stop.is_set():
            lines = self._read(follow=True, previous=False)
            if self.stop.is_set() or self.pod_gone.is_set():
                return
            if lines:
                backoff.reset()
            if self.stop.wait(backoff.next_delay()):
                return

    def _read(self, follow: bool, previous: bool) -> int | None:
        """Read one connection to its end; the number of lines, or None when it could not be opened."""
        self.out.put(("reset", self.key, None))
        self.metrics.api_call("pod_log")
        try:
            resp = self._resp = self.api.open_log(
                self.namespace, self.pod, self.container, follow=follow, since_ns=self.since_ns, previous=previous
            )
        except ApiException as exc:
            if previous and exc.status == 400:
                return 0  # no previous instance any more: nothing to finish
            if exc.status == 404:
                self.pod_gone.set()
                return 0
            self.metrics.error("api")
            log_error(
                self.metrics.collector, "api", "pod log request failed; retrying", container=self.key, status=exc.status
            )
            return None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            self.metrics.error("network")
            log_error(
                self.metrics.collector,
                "network",
                "cannot reach the API server; retrying",
                container=self.key,
                error=exc.__class__.__name__,
            )
            return None
        count = 0
        try:
            for line in iter_resp_lines(resp):
                ts, _ = parse_line(line)
                self.out.put(("line", self.key, line))
                if ts is not None:
                    self.since_ns = ts
                count += 1
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            if not self.stop.is_set():
                self.metrics.error("stream_break")
                log_error(
                    self.metrics.collector,
                    "stream_break",
                    "log stream broke; resuming from its last line",
                    container=self.key,
                    error=exc.__class__.__name__,
                )
        finally:
            self._resp = None
            try:
                resp.release_conn()
            except Exception:
                pass
        return count

"""Delivering notifications: one worker thread per receiver integration, so a slow or dead receiver
never holds up the others or the evaluation loop.

Each worker keeps the pending notifications of a group in order, and a newer one replaces an older
one that it supersedes (one that tells no firing alert the newer does not: after an outage the
receiver gets the current state once, not a backlog); a resolved notification does not replace a
firing one the receiver never got (or an alert that fired and resolved meanwhile would reach nobody,
not even as resolved). Before sending, the
notification log is asked again whether the notification is still news; after a successful send it
is logged (persisted), so a restart or a duplicate flush does not page twice. Failures: 5xx, 429
(honouring Retry-After) and network errors are retried with exponential backoff and full jitter;
other 4xx are dropped and counted. A per-receiver token bucket limits the notification rate.
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from logtide import log

from logtide.alerting import metrics
from logtide.alerting.dispatch import Notification
from logtide.alerting.nflog import NotificationLog, needs_update
from logtide.alerting.notifiers import HttpIntegration, Permanent, RateLimit, Receiver, RetryPolicy, Retryable

_log = log.get("alerting.delivery")


def sendable(n: Notification) -> bool:
    """False for a notification with no alerts to show (all resolved and send_resolved is off, or
    every alert silenced or inhibited): the notification log learns it, nobody is sent it."""
    return bool(n.alerts)


def supersedes(new: Notification, old: Notification) -> bool:
    """``new`` tells the receiver everything ``old`` would have: every alert ``old`` says fires."""
    return old.firing <= new.firing


class TokenBucket:
    def __init__(self, limit: RateLimit | None):
        self.rate = limit.per_minute / 60.0 if limit else None
        self.capacity = float(limit.burst) if limit else 0.0
        self.tokens = self.capacity
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def wait_time(self) -> float:
        """Take a token if one is there (0.0), else say how long until one is."""
        if self.rate is None:
            return 0.0
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / self.rate


def backoff(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(max_seconds, initial_seconds * 2^attempt)], at least a tenth of initial_seconds."""
    cap = min(policy.max_seconds, policy.initial_seconds * (2**attempt))
    return max(policy.initial_seconds / 10, rng.uniform(0, cap))


class Worker:
    def __init__(
        self,
        integration: HttpIntegration,
        bucket: TokenBucket,
        retry: RetryPolicy,
        nflog: NotificationLog,
        on_sent: Callable[[Notification, HttpIntegration], None] | None,
        on_refused: Callable[[Notification], None] | None = None,
    ):
        self.integration = integration
        self.on_refused = on_refused
        self.bucket = bucket
        self.retry = retry
        self.nflog = nflog
        self.on_sent = on_sent
        self.pending: OrderedDict[str, list[Notification]] = OrderedDict()  # group key -> in order
        self.cond = threading.Condition()
        self.rng = random.Random()
        self.thread: threading.Thread | None = None
        self.failed = 0

    def enqueue(self, n: Notification) -> None:
        with self.cond:
            queue = self.pending.setdefault(n.group_key, [])
            if queue and supersedes(n, queue[-1]):
                queue[-1] = n
            else:
                queue.append(n)
            self.pending.move_to_end(n.group_key)
            self.cond.notify()

    def _take(self, group_key: str) -> Notification:
        queue = self.pending[group_key]
        n = queue.pop(0)
        if not queue:
            del self.pending[group_key]
        return n

    def _next(self, stop: threading.Event) -> Notification | None:
        with self.cond:
            while not self.pending and not stop.is_set():
                self.cond.wait(0.5)
            if stop.is_set():
                return None
            return self._take(next(iter(self.pending)))

    def _still_news(self, n: Notification) -> bool:
        entry = self.nflog.get(n.group_key, n.integration)
        return needs_update(entry, n.firing, n.resolved, n.send_resolved, n.repeat_ns, n.now)

    def run(self, stop: threading.Event) -> None:
        integ = self.integration
        while not stop.is_set():
            n = self._next(stop)
            if n is None:
                return
            attempt = 0
            while not stop.is_set():
                if not self._still_news(n):
                    break
                if not sendable(n):
                    self.nflog.log(n.group_key, n.integration, n.firing, n.resolved, n.now)
                    break
                wait = self.bucket.wait_time()
                if wait > 0:
                    metrics.RATE_LIMITED.labels(integ.receiver).inc()
                    stop.wait(wait)
                    continue
                try:
                    integ.send(n)
                except Retryable as exc:
                    metrics.NOTIFY_FAILURES.labels(integ.receiver, integ.kind, exc.reason).inc()
                    delay = exc.retry_after if exc.retry_after is not None else backoff(attempt, self.retry, self.rng)
                    delay = min(delay, self.retry.max_seconds)
                    attempt += 1
                    _log.warning(
                        "notification failed, will retry",
                        extra={
                            "integration": integ.id,
                            "error": str(exc)[:300],
                            "attempt": attempt,
                            "retry_in_s": round(delay, 2),
                        },
                    )
                    if stop.wait(delay):
                        break
                    with self.cond:  # a newer notification for this group may supersede this one
                        queue = self.pending.get(n.group_key)
                        if queue and supersedes(queue[0], n):
                            n = self._take(n.group_key)
                    continue
                except Permanent as exc:
                    self.failed += 1
                    metrics.NOTIFY_FAILURES.labels(integ.receiver, integ.kind, "rejected").inc()
                    _log.error(
                        "notification refused, not retried", extra={"integration": integ.id, "error": str(exc)[:300]}
                    )
                    if self.on_refused:  # the next group_interval flush tries again, as Alertmanager does
                        self.on_refused(n)
                    break
                except Exception as exc:  # a bug in a notifier must not kill the worker
                    self.failed += 1
                    metrics.NOTIFY_FAILURES.labels(integ.receiver, integ.kind, "error").inc()
                    _log.exception("notifier error", extra={"integration": integ.id, "error": str(exc)[:300]})
                    if self.on_refused:
                        self.on_refused(n)
                    break
                self.nflog.log(n.group_key, n.integration, n.firing, n.resolved, n.now)
                metrics.NOTIFICATIONS.labels(integ.receiver, integ.kind).inc()
                if self.on_sent:
                    self.on_sent(n, integ)
                break


class Delivery:
    """All workers; ``enqueue`` routes a notification to its integration's worker."""

    name = "alert-delivery"

    def __init__(
        self,
        receivers: list[Receiver],
        integrations: dict[str, list[HttpIntegration]],
        nflog: NotificationLog,
        on_sent=None,
        on_refused=None,
    ):
        self.workers: dict[str, Worker] = {}
        for r in receivers:
            bucket = TokenBucket(r.rate_limit)
            for integ in integrations.get(r.name, []):
                self.workers[integ.id] = Worker(integ, bucket, r.retry, nflog, on_sent, on_refused)
        self.stop_event = threading.Event()

    def enqueue(self, n: Notification) -> None:
        w = self.workers.get(n.integration)
        if w is not None:
            w.enqueue(n)

    def start(self) -> None:
        for w in self.workers.values():
            if w.thread is None:
                w.thread = threading.Thread(
                    target=w.run, args=(self.stop_event,), name=f"notify-{w.integration.id}", daemon=True
                )
                w.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        for w in self.workers.values():
            with w.cond:
                w.cond.notify_all()
        for w in self.workers.values():
            if w.thread is not None:
                w.thread.join(timeout)
            w.integration.close()

    def idle(self) -> bool:
        return all(not w.pending for w in self.workers.values())

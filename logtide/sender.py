"""Produce envelopes to Kafka and tell the caller when each is acknowledged.

Every source (agent, collectors, demo) and every processor sends through this: it stamps
``ingest_time``, encodes (the value is the whole record, with no headers: see ``logtide.envelope``)
and calls ``on_ack(event)`` only once Kafka has acknowledged the record. Sources move their
checkpoints there, processors commit input offsets there: that is the at-least-once rule of the
whole pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import Counter

from logtide import envelope
from logtide.transport import BufferFull, Producer, Record, TransportError

EVENTS_PRODUCED = Counter("logtide_events_produced_total", "Events acknowledged by Kafka", ["component", "topic"])
PRODUCE_ERRORS = Counter("logtide_produce_errors_total", "Events Kafka refused or timed out", ["component"])
BYTES_PRODUCED = Counter("logtide_bytes_produced_total", "Bytes of event values acknowledged by Kafka", ["component"])


class EventSender:
    def __init__(self, producer: Producer, component: str):
        self.producer = producer
        self.component = component
        self._errors = PRODUCE_ERRORS.labels(component)
        self._bytes = BYTES_PRODUCED.labels(component)
        self._produced: dict[str, Counter] = {}
        self.inflight = 0

    def send(
        self,
        topic: str,
        event: dict,
        key: bytes | None,
        on_ack: Callable[[dict], None] | None = None,
        on_error: Callable[[dict, Exception], None] | None = None,
    ) -> None:
        """Queue one event; exactly one of on_ack/on_error is called later, from poll()/flush()."""
        event["ingest_time"] = time.time_ns()
        value = envelope.encode(event)
        counter = self._produced.get(topic)
        if counter is None:
            counter = self._produced[topic] = EVENTS_PRODUCED.labels(self.component, topic)
        self.inflight += 1

        def delivered(err: Exception | None, rec: Record) -> None:
            self.inflight -= 1
            if err is None:
                counter.inc()
                self._bytes.inc(len(value))
                if on_ack:
                    on_ack(event)
            else:
                self._errors.inc()
                if on_error:
                    on_error(event, err)

        try:
            self.producer.produce(topic, value, key=key, on_delivery=delivered)
        except BaseException:
            self.inflight -= 1  # never queued: no callback will come for it
            raise

    def poll(self, timeout: float = 0.0) -> int:
        return self.producer.poll(timeout)

    def flush(self, timeout: float | None = None) -> int:
        return self.producer.flush(timeout)


class DrainingSender:
    """Produce to one topic at high rates; learn of acknowledgements at drain points, not per record.

    What Kafka Connect's source tasks do at ``offset.flush.interval.ms``: the caller sends freely and
    now and then calls ``drain()``, which waits until Kafka acknowledged every record sent so far.
    Only when it returns True may the caller checkpoint what it had sent: at-least-once, as with
    ``EventSender``, without a Python call per acknowledged record (the producer must be made with
    ``report_successes=False``; at 100k records/s that call and its closure were most of the cost).

    A refused record is sent again as it was (same bytes, so the same id), at most once per
    ``retry_seconds``; a drain completes only when those retries were acknowledged too. A record the
    broker refuses as too large goes through ``shrink(value) -> bytes`` first (e.g. cut the body).
    ``send`` never blocks: when the client's buffer is full (it bounds the bytes in flight exactly),
    records wait in ``waiting``, in order, and go out from ``poll()``/``drain()`` as room comes; a
    caller pauses its reading while ``waiting`` is not empty.
    """

    def __init__(
        self,
        producer: Producer,
        component: str,
        topic: str,
        shrink: Callable[[bytes], bytes] | None = None,
        retry_seconds: float = 1.0,
    ):
        self.producer = producer
        self.component = component
        self.topic = topic
        self.shrink = shrink
        self.retry_seconds = retry_seconds
        self.retry: list[tuple[bytes, bytes | None]] = []
        self.waiting: list[tuple[bytes, bytes | None]] = []  # not taken: the buffer was full
        self._retry_at = 0.0
        self._errors = PRODUCE_ERRORS.labels(component)
        self._bytes = BYTES_PRODUCED.labels(component)
        self._produced = EVENTS_PRODUCED.labels(component, topic)
        self.accepted = 0  # records given to send(): a sequence number for the caller
        self.sent = 0  # records the producer took, retries included
        self.failures = 0  # delivery failures (each one was queued for a retry)
        self.sent_bytes = 0
        self._counted = self._bytes_counted = 0
        self._produce = producer.bind(topic, self._delivered, wait=False)

    def send(self, value: bytes, key: bytes | None) -> None:
        """Queue one encoded record (no headers); if the client's buffer is full it waits here (see
        the class). After a drain that returned True, every record up to ``accepted`` is acknowledged."""
        self.accepted += 1
        self._offer(value, key)

    def _offer(self, value: bytes, key: bytes | None) -> None:
        if self.waiting:
            self.waiting.append((value, key))  # behind the others: order is kept
            return
        try:
            self._produce(value, key, None)
        except BufferFull:
            self.waiting.append((value, key))
            return
        except TransportError as exc:
            # refused before it was queued (e.g. over message.max.bytes): a failed delivery like any other
            self.sent += 1
            self._delivered(exc, Record(self.topic, -1, -1, key, value, None, None))
            return
        self.sent += 1
        self.sent_bytes += len(value)

    def _send_waiting(self) -> None:
        waiting, self.waiting = self.waiting, []
        for i, (value, key) in enumerate(waiting):
            self._offer(value, key)
            if self.waiting:  # full again: the rest stays, in order
                self.waiting.extend(waiting[i + 1 :])
                return

    def _delivered(self, err: Exception | None, rec: Record) -> None:
        if err is None:
            return  # a producer that reports successes too: nothing to do here
        self.failures += 1
        self._errors.inc()
        value = rec.value
        if self.shrink is not None and "too large" in str(err).lower():
            value = self.shrink(value)
        self.retry.append((value, rec.key))

    @property
    def in_flight(self) -> int:
        """Records not yet acknowledged: waiting for room, queued, in flight, or waiting for a retry."""
        return self.producer.pending() + len(self.retry) + len(self.waiting)

    @property
    def acked(self) -> int:
        """Records Kafka acknowledged so far (exact: every failure was counted, and sent again)."""
        return self.sent - self.failures - self.producer.pending()

    def poll(self, timeout: float = 0.0) -> None:
        """Serve failure reports; send what waited for room, then due retries."""
        self.producer.poll(timeout)
        if self.waiting:
            self._send_waiting()
        if self.retry and time.monotonic() >= self._retry_at:
            self._resend()

    def _resend(self) -> None:
        self._retry_at = time.monotonic() + self.retry_seconds  # a Kafka that keeps refusing is not hammered
        retry, self.retry = self.retry, []
        for value, key in retry:
            self._offer(value, key)  # a new failure queues it again

    def drain(self, timeout: float) -> bool:
        """Wait (up to ``timeout`` seconds) until everything sent so far is acknowledged."""
        deadline = time.monotonic() + timeout
        producer = self.producer
        while True:
            if self.waiting:
                self._send_waiting()
            left = producer.flush(max(0.0, deadline - time.monotonic()))  # serves failure reports too
            if left == 0 and not self.waiting and not self.retry:
                self._count_acknowledged()
                return True
            if time.monotonic() >= deadline:
                return False
            if self.retry and not self.waiting:
                producer.poll(min(self.retry_seconds, max(0.0, deadline - time.monotonic())))
                self._resend()

    def _count_acknowledged(self) -> None:
        # At a drain every record sent was acknowledged: bring the counters up to date.
        done = self.sent - self.failures
        if done > self._counted:
            self._produced.inc(done - self._counted)
            self._counted = done
        if self.sent_bytes > self._bytes_counted:
            # failed attempts are included: bytes are an estimate of traffic, events are exact
            self._bytes.inc(self.sent_bytes - self._bytes_counted)
            self._bytes_counted = self.sent_bytes

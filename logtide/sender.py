"""Produce envelopes to Kafka and tell the caller when each is acknowledged.

Every source (agent, collectors, demo) and every processor sends through this: it stamps
``ingest_time``, encodes, sets the routing headers, and calls ``on_ack(event)`` only once Kafka has
acknowledged the record. Sources move their checkpoints there, processors commit input offsets there:
that is the at-least-once rule of the whole pipeline.
"""

from __future__ import annotations

import time
from typing import Callable

from prometheus_client import Counter

from logtide import envelope
from logtide.transport import Producer, Record

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

    def send(self, topic: str, event: dict, key: bytes | None,
             on_ack: Callable[[dict], None] | None = None,
             on_error: Callable[[dict, Exception], None] | None = None) -> None:
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
            self.producer.produce(topic, value, key=key, headers=envelope.headers(event), on_delivery=delivered)
        except BaseException:
            self.inflight -= 1  # never queued: no callback will come for it
            raise

    def poll(self, timeout: float = 0.0) -> int:
        return self.producer.poll(timeout)

    def flush(self, timeout: float | None = None) -> int:
        return self.producer.flush(timeout)

"""Dead letter queue: a record that cannot be decoded or processed goes to ``logtide.dlq`` with its
original key, value and headers, plus ``logtide.error.*`` headers that say why and where it came from
(after Kafka Connect's ``__connect.errors.*``) and the event's id in ``logtide.id`` (events carry no
headers: it is read from the value's head, so a dead letter whose value is cut or broken after its
id still names its event; an older record brings its own). Nothing stops on a bad record."""

from __future__ import annotations

import time

from prometheus_client import Counter

from logtide import envelope
from logtide.topics import DLQ
from logtide.transport import Producer, Record

H_STAGE = "logtide.error.stage"
H_CLASS = "logtide.error.class"
H_MESSAGE = "logtide.error.message"
H_TOPIC = "logtide.error.topic"
H_PARTITION = "logtide.error.partition"
H_OFFSET = "logtide.error.offset"
H_COMPONENT = "logtide.error.component"
H_TIME = "logtide.error.time"
ERROR_HEADERS = (H_STAGE, H_CLASS, H_MESSAGE, H_TOPIC, H_PARTITION, H_OFFSET, H_COMPONENT, H_TIME)

DLQ_RECORDS = Counter(
    "logtide_dlq_records_total", "Records sent to the dead letter queue", ["component", "stage", "error"]
)


class DeadLetters:
    """Writes bad records to the DLQ; ``send`` is asynchronous, flush with the producer."""

    def __init__(self, producer: Producer, component: str, topic: str = DLQ, max_message: int = 1000):
        self.producer = producer
        self.component = component
        self.topic = topic
        self.max_message = max_message
        self.failed = 0

    def _delivered(self, err, rec) -> None:
        if err is not None:
            self.failed += 1

    def send(self, record: Record, stage: str, error: BaseException | str) -> None:
        cls = type(error).__name__ if isinstance(error, BaseException) else "Error"
        message = getattr(error, "reason", None) or str(error)
        # the event's id: an older record brought it as a header, else it is read from the value's head
        event_id = next((v for k, v in record.headers if k == envelope.HEADER_ID), None)
        if event_id is None and (peeked := envelope.peek_id(record.value)) is not None:
            event_id = peeked.encode("utf-8", "surrogatepass")
        headers = original_headers(record.headers)
        if event_id is not None:
            headers.append((envelope.HEADER_ID, event_id))
        headers += [
            (H_STAGE, stage.encode()),
            (H_CLASS, cls.encode()),
            (H_MESSAGE, message[: self.max_message].encode("utf-8", "replace")),
            (H_TOPIC, record.topic.encode()),
            (H_PARTITION, str(record.partition).encode()),
            (H_OFFSET, str(record.offset).encode()),
            (H_COMPONENT, self.component.encode()),
            (H_TIME, str(time.time_ns()).encode()),
        ]
        DLQ_RECORDS.labels(self.component, stage, cls).inc()
        self.producer.produce(self.topic, record.value, key=record.key, headers=headers, on_delivery=self._delivered)


def original_headers(headers: list[tuple[str, bytes]] | None) -> list[tuple[str, bytes]]:
    """A dead letter's headers without the ones the DLQ writes (``logtide.error.*``, ``logtide.id``):
    what a replay sends back with the record."""
    return [(k, v) for k, v in headers or () if k != envelope.HEADER_ID and not k.startswith("logtide.error.")]


def error_info(headers: list[tuple[str, bytes]]) -> dict[str, str]:
    """The ``logtide.error.*`` headers of a DLQ record as a dict (short names: stage, class, …)."""
    out = {}
    for k, v in headers or ():
        if k.startswith("logtide.error."):
            out[k[len("logtide.error.") :]] = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
    return out

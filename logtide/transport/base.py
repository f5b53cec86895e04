"""The Kafka transport interface every component uses; two backends implement it.

Semantics common to both backends (the tests in tests/kernel/test_transport.py run on each):

- ``Producer.produce`` is asynchronous; ``on_delivery(err, record)`` is called later, on the
  caller's thread, from ``poll()`` or ``flush()`` (never from a client-internal thread), with
  ``err`` None and the record's partition/offset set on success. Sources move their checkpoints in
  that callback: at-least-once.
- ``Consumer.poll_batch`` returns up to ``max_records`` ``Record`` objects; offsets are committed
  only by an explicit ``commit({tp: next_offset})`` (auto-commit is always off).
- Offsets passed to ``commit`` are the *next* offset to read (Kafka's convention).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple
from collections.abc import Callable

from pydantic import Field, SecretStr

from logtide.config import Model


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class Record:
    """One Kafka record as both backends return it."""

    __slots__ = ("topic", "partition", "offset", "key", "value", "headers", "timestamp")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None,
        timestamp: int | None,
    ):
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers or []
        self.timestamp = timestamp  # milliseconds since epoch (CreateTime), or None

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    def __repr__(self) -> str:
        return f"Record({self.topic}[{self.partition}]@{self.offset})"


class TransportError(Exception):
    """A Kafka operation failed (unreachable broker, refused request, timeout)."""


class TransportRefused(TransportError):
    """Kafka refused us for a reason retrying cannot fix (TLS trust, hostname, client certificate,
    TLS against a plaintext listener, an unreadable key file, a refused SASL login): report it once
    and stop."""


class BufferFull(TransportError):
    """The client's buffer is full: the record was not queued (``Producer.bind(..., wait=False)``)."""


DeliveryCallback = Callable[[Exception | None, Record], None]


@dataclass
class TopicSpec:
    """A topic to create: partitions and topic-level config (retention.ms, cleanup.policy, …)."""

    name: str
    partitions: int = 1
    replication: int = 1
    config: dict[str, str] = field(default_factory=dict)


class KafkaSettings(Model):
    """How to reach Kafka. The same block appears in every role's config under ``kafka:``."""

    bootstrap: str | None = Field(
        default=None,
        description="host:port[,host:port]; empty means: start the embedded broker (logtide up only)",
    )
    client: Literal["auto", "confluent", "kafka-python", "memory"] = Field(
        default="auto",
        description="Kafka client library; auto = the fastest installed (confluent); "
        "memory = an in-process cluster named by bootstrap (tests)",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    client_id: str = "logtide"
    #: Extra client properties passed through verbatim to the chosen backend (its own names).
    producer: dict[str, Any] = Field(default_factory=dict)
    consumer: dict[str, Any] = Field(default_factory=dict)


class _Client(ABC):
    """A client that is closed when done; usable as a context manager."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Producer(_Client):
    @abstractmethod
    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        on_delivery: DeliveryCallback | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        """Queue one record; may block briefly when the client's buffer is full (backpressure).

        ``timestamp_ms``: the record's CreateTime (default: now), e.g. the original's on a replay."""

    @abstractmethod
    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery callbacks; return how many were served."""

    @abstractmethod
    def flush(self, timeout: float | None = None) -> int:
        """Wait until every queued record is acknowledged (callbacks served); return how many remain."""

    @abstractmethod
    def pending(self) -> int:
        """Records queued or in flight: neither acknowledged nor reported failed yet."""

    def bind(
        self, topic: str, on_delivery: DeliveryCallback | None, wait: bool = True
    ) -> Callable[[bytes, bytes | None, list | None], None]:
        """``produce`` for one topic and one callback, as ``f(value, key, headers)``: for hot loops,
        where a backend can skip per-call argument handling. ``wait=False``: a full buffer raises
        ``BufferFull`` instead of waiting for room (backends that cannot tell wait)."""
        produce = self.produce
        return lambda value, key, headers: produce(topic, value, key, headers, None, on_delivery)


RebalanceCallback = Callable[[list[TopicPartition]], None]


class Consumer(_Client):
    @abstractmethod
    def subscribe(
        self,
        topics: list[str],
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        pattern: bool = False,
    ) -> None:
        """Join the consumer group on these topics (or a regex when ``pattern``)."""

    @abstractmethod
    def assign(self, partitions: list[TopicPartition]) -> None:
        """Manual assignment, no group membership."""

    @abstractmethod
    def assignment(self) -> list[TopicPartition]: ...

    @abstractmethod
    def poll_batch(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]: ...

    @abstractmethod
    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Synchronously commit the next offsets to read; raise TransportError on failure."""

    @abstractmethod
    def committed(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int | None]: ...

    @abstractmethod
    def seek(self, tp: TopicPartition, offset: int) -> None: ...

    @abstractmethod
    def offsets_for_times(self, times_ms: dict[TopicPartition, int]) -> dict[TopicPartition, int | None]:
        """Earliest offset whose timestamp is >= the given time (None: no such record yet)."""

    @abstractmethod
    def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...

    @abstractmethod
    def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...

    @abstractmethod
    def partitions_for(self, topic: str) -> list[TopicPartition]: ...

    @abstractmethod
    def pause(self, partitions: list[TopicPartition]) -> None: ...

    @abstractmethod
    def resume(self, partitions: list[TopicPartition]) -> None: ...


class Admin(_Client):
    @abstractmethod
    def create_topics(self, specs: list[TopicSpec], timeout: float = 30.0) -> list[str]:
        """Create missing topics; existing ones are left as they are. Return the names created."""

    @abstractmethod
    def list_topics(self, timeout: float | None = None) -> dict[str, int]:
        """Topic name → partition count; TransportError when Kafka does not answer within ``timeout``."""

    @abstractmethod
    def delete_topics(self, names: list[str], timeout: float = 30.0) -> None: ...

    @abstractmethod
    def list_groups(self) -> list[str]: ...

    def group_states(self, groups: list[str]) -> dict[str, str | None]:
        """Each group's coordinator state (Stable, Empty, Dead, PreparingRebalance …); None if unknown.

        Backends that cannot ask answer None for every group.
        """
        return {g: None for g in groups}

    @abstractmethod
    def group_offsets(self, group: str) -> dict[TopicPartition, int]:
        """Committed offsets of a consumer group."""

    def cluster_id(self) -> str | None:
        """The cluster's id (None when the backend cannot tell)."""
        return None

    def topic_ids(self, names: list[str]) -> dict[str, str | None]:
        """Each topic's id (a new one when a topic is deleted and created again; None: unknown)."""
        return {n: None for n in names}


class Transport(ABC):
    """Factory of clients for one Kafka cluster, from ``KafkaSettings``."""

    name: str

    def __init__(self, settings: KafkaSettings):
        if not settings.bootstrap:
            raise TransportError(
                "no Kafka bootstrap servers configured (set kafka.bootstrap, LOGTIDE_BOOTSTRAP or --bootstrap)"
            )
        self.settings = settings

    @abstractmethod
    def producer(
        self,
        *,
        linger_ms: int = 5,
        max_buffer: int = 100_000,
        max_buffer_bytes: int | None = None,
        report_successes: bool = True,
        **overrides: Any,
    ) -> Producer:
        """A producer (idempotent, acks=all). ``max_buffer`` bounds records queued but unacked,
        ``max_buffer_bytes`` their bytes (default: the client's own bound).

        ``report_successes=False``: ``on_delivery`` is called for failed records only; a caller learns
        of acknowledgements by ``flush()``/``pending()`` reaching 0. For sources at high rates: no
        Python call per acknowledged record (see logtide/sender.py ``DrainingSender``).
        """

    @abstractmethod
    def consumer(
        self,
        group_id: str | None = None,
        *,
        auto_offset_reset: str = "earliest",
        session_timeout_seconds: float = 45,
        **overrides: Any,
    ) -> Consumer: ...

    @abstractmethod
    def admin(self, *, timeout: float | None = None) -> Admin:
        """An admin client; ``timeout`` bounds how long its requests (and reaching Kafka) may take."""

    def reach(self, timeout: float) -> None:
        """Ask the cluster for its topics once, within ``timeout``: the check at start.

        ``TransportError`` when it does not answer (worth retrying: a broker may be starting),
        ``TransportRefused`` when it answered with a refusal of our settings (SASL), which the
        backends tell from their own error reports, keeping their reconnect noise out of the log."""
        admin = self.admin(timeout=timeout)
        try:
            admin.list_topics(timeout=timeout)
        finally:
            admin.close()


def sasl_refusal(bootstrap: str | None, reason: str) -> TransportRefused:
    """The one line of a refused SASL login (both backends word it alike); never the password."""
    return TransportRefused(
        f"Kafka at {bootstrap} refused SASL authentication ({reason}): check "
        "kafka.sasl_mechanism, kafka.sasl_username and kafka.sasl_password"
    )

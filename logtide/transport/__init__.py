"""Kafka transport: one interface (base.py), two Kafka backends and an in-memory one (memory.py, for
tests), chosen by ``KafkaSettings.client``."""

from __future__ import annotations

from logtide.transport.base import (
    Admin,
    BufferFull,
    Consumer,
    KafkaSettings,
    Producer,
    Record,
    TopicPartition,
    TopicSpec,
    Transport,
    TransportError,
    TransportRefused,
)

BACKENDS = ("confluent", "kafka-python")


def available_backends() -> list[str]:
    """Installed backends, fastest first."""
    out = []
    try:
        import confluent_kafka  # noqa: F401

        out.append("confluent")
    except ImportError:
        pass
    try:
        import kafka  # noqa: F401

        out.append("kafka-python")
    except ImportError:
        pass
    return out


def connect(settings: KafkaSettings) -> Transport:
    """The transport for these settings; ``client: auto`` picks the fastest installed backend."""
    name = settings.client
    if name == "auto":
        installed = available_backends()
        if not installed:
            raise TransportError("no Kafka client installed: pip install confluent-kafka or kafka-python")
        name = installed[0]
    if name == "memory":
        from logtide.transport.memory import MemoryTransport

        return MemoryTransport(settings)
    if name == "confluent":
        from logtide.transport.confluent import ConfluentTransport

        return ConfluentTransport(settings)
    from logtide.transport.kafka_python import KafkaPythonTransport

    return KafkaPythonTransport(settings)


__all__ = [
    "Admin",
    "BufferFull",
    "Consumer",
    "KafkaSettings",
    "Producer",
    "Record",
    "TopicPartition",
    "TopicSpec",
    "Transport",
    "TransportError",
    "TransportRefused",
    "available_backends",
    "connect",
    "BACKENDS",
]

"""Shared fixtures: one embedded Kafka broker per test session (a group join costs seconds)."""

from __future__ import annotations

import os
import uuid

import pytest

from logtide.broker import EmbeddedBroker
from logtide.transport import KafkaSettings, TopicSpec, connect

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _find_corpus() -> str:
    """$LOGTIDE_CORPUS, else ``shared/corpus/loghub`` beside the repo or beside a folder holding it
    (a git worktree under ``wt/``)."""
    if os.environ.get("LOGTIDE_CORPUS"):
        return os.environ["LOGTIDE_CORPUS"]
    parent = os.path.dirname(ROOT)
    candidates = [
        os.path.join(parent, "shared", "corpus", "loghub"),
        os.path.join(os.path.dirname(parent), "shared", "corpus", "loghub"),
    ]
    return next((c for c in candidates if os.path.isdir(c)), candidates[0])


CORPUS = _find_corpus()

#: Consumer-group tests use this session timeout: a join then takes ~3 s instead of ~23 s.
TEST_SESSION_TIMEOUT_SECONDS = 6


@pytest.fixture(scope="session")
def broker():
    """The embedded broker, or an external one from $LOGTIDE_TEST_BOOTSTRAP."""
    external = os.environ.get("LOGTIDE_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    b = EmbeddedBroker(
        log_file=os.path.join(os.environ.get("TMPDIR", "/tmp"), f"logtide-test-broker-{os.getpid()}.log")
    )
    b.start()
    try:
        yield b.bootstrap
    finally:
        b.stop()


@pytest.fixture(params=["confluent", "kafka-python"])
def backend(request) -> str:
    """Run a test once per transport backend."""
    return request.param


@pytest.fixture
def kafka_settings(broker, backend) -> KafkaSettings:
    return KafkaSettings(bootstrap=broker, client=backend)


@pytest.fixture
def fast_kafka(broker) -> KafkaSettings:
    """Settings with the fast backend, for tests that are not about the transport."""
    return KafkaSettings(bootstrap=broker, client="confluent")


@pytest.fixture
def new_topic(broker):
    """Factory: create a uniquely named topic and return its name."""

    def make(partitions: int = 1, prefix: str = "test", config: dict | None = None) -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:10]}"
        admin = connect(KafkaSettings(bootstrap=broker, client="confluent")).admin()
        try:
            admin.create_topics([TopicSpec(name, partitions, config=config or {})])
        finally:
            admin.close()
        return name

    return make


@pytest.fixture
def corpus_dir() -> str:
    if not os.path.isdir(CORPUS):
        pytest.fail(f"Loghub corpus not found at {CORPUS} (expected ../shared/corpus beside the repo)")
    return CORPUS


@pytest.fixture(scope="session")
def tls_kafka(tmp_path_factory):
    """Kafka over TLS and mutual TLS: stunnel in front of brokers of its own (the shared session broker
    stays plaintext); see tests/kernel/kafka_tls.py."""
    from tests.kernel.kafka_tls import TlsKafka

    endpoint = TlsKafka(tmp_path_factory.mktemp("kafka-tls")).start()
    try:
        yield endpoint
    finally:
        endpoint.stop()


# The in-memory transport's fixtures, for every folder (tests/support/kafka.py).
from tests.support.kafka import memory_kafka, memory_topic  # noqa: E402, F401

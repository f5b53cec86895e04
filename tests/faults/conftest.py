"""Fault-suite fixtures: a broker of its own behind a TCP proxy the test can cut and heal."""

from __future__ import annotations

import json
import os
import time

import pytest

from logtide.broker import EmbeddedBroker, free_port
from logtide.topics import exact_end_offsets
from logtide.transport import KafkaSettings, TopicPartition, connect
from tests.faults.tcpproxy import TcpProxy

#: Outage length for the broker-cut tests: the issue's 60 s with FAULT_FULL=1, a reduced 12 s in CI.
FULL = bool(os.environ.get("FAULT_FULL"))
OUTAGE_S = 60.0 if FULL else 12.0


def report(name: str, figures: dict) -> None:
    """Print a test's figures (run pytest with -s to see them); with $FAULT_FIGURES_DIR also keep them as JSON."""
    print(f"\nFAULT {name}: {figures}")
    out = os.environ.get("FAULT_FIGURES_DIR")
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, f"{name}.json"), "w") as f:
            json.dump(figures, f, indent=1)


class FaultBroker:
    def __init__(self, broker: EmbeddedBroker, proxy: TcpProxy):
        self.broker = broker
        self.proxy = proxy
        self.bootstrap = f"127.0.0.1:{proxy.port}"

    def settings(self, client: str = "confluent") -> KafkaSettings:
        return KafkaSettings(bootstrap=self.bootstrap, client=client)


@pytest.fixture
def fault_broker(tmp_path):
    broker_port, proxy_port = free_port(), free_port()
    proxy = TcpProxy("127.0.0.1", broker_port, listen_port=proxy_port)
    broker = EmbeddedBroker(port=broker_port, advertised_port=proxy_port, log_file=tmp_path / "broker.log").start()
    try:
        yield FaultBroker(broker, proxy)
    finally:
        proxy.close()
        broker.stop()


@pytest.fixture
def own_broker(tmp_path):
    """A broker of the test's own (no proxy): the chain tests use the real topic and group names."""
    broker = EmbeddedBroker(log_file=tmp_path / "broker.log").start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


def read_topic(settings: KafkaSettings, topic: str, expect: int | None = None, timeout: float = 30.0) -> list:
    """Every record of a topic (all partitions), reading until the exact end (or ``expect`` records)."""
    transport = connect(settings)
    consumer = transport.consumer(None)
    try:
        parts = consumer.partitions_for(topic)
        ends = exact_end_offsets(consumer, parts)
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, 0)
        out, pos = [], {tp: 0 for tp in parts}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(pos[tp] >= ends[tp] for tp in parts) and (expect is None or len(out) >= expect):
                break
            for rec in consumer.poll_batch(5000, 0.5):
                out.append(rec)
                pos[TopicPartition(rec.topic, rec.partition)] = rec.offset + 1
        return out
    finally:
        consumer.close()

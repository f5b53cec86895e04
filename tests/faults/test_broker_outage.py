"""Kafka unreachable for a while (a TCP proxy cut), then back: sources hold back and catch up, 0 lost."""

from __future__ import annotations

import threading
import time

import orjson
import pytest

from logtide.collectors.demo import TOPIC, DemoSource
from logtide.sender import EventSender
from logtide.up import installation_topics
from logtide.transport import connect
from tests.faults.conftest import OUTAGE_S, read_topic


@pytest.mark.timeout(OUTAGE_S + 120)
@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_source_holds_back_during_outage_and_loses_nothing(fault_broker, client):
    settings = fault_broker.settings(client)
    transport = connect(settings)
    admin = transport.admin()
    admin.create_topics(installation_topics(1, []))
    admin.close()

    total = 3000
    sender = EventSender(transport.producer(), f"fault-{client}")
    source = DemoSource(sender, rate=total / (OUTAGE_S + 6), seed=7, limit=total)
    stop = threading.Event()
    worker = threading.Thread(target=source.run, args=(stop,), daemon=True)
    worker.start()

    time.sleep(3)
    acked_before_cut = source.acked
    fault_broker.proxy.cut()
    time.sleep(OUTAGE_S)
    acked_during_cut = source.acked - acked_before_cut
    fault_broker.proxy.heal()
    worker.join(timeout=90)
    assert not worker.is_alive(), "the source did not finish after the broker came back"

    records = read_topic(fault_broker.settings(), TOPIC, expect=total)
    ids = [orjson.loads(r.value)["id"] for r in records]
    expected = {DemoSource(None, seed=7).gen.next()[0]["id"]}  # the first id of the same seed
    assert expected <= set(ids)
    assert len(set(ids)) == total, f"lost {total - len(set(ids))} of {total}"
    # Idempotent producers: retries during the outage must not write a record twice.
    assert len(ids) == len(set(ids))
    assert source.acked == total
    # While Kafka was away nothing could have been acknowledged (a few in-flight acks may land at the cut).
    assert acked_during_cut <= 50

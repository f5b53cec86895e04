"""A role started while Kafka does not answer waits (/readyz 503 naming Kafka, /healthz 200, no exit) and
starts consuming as soon as it answers, with no restart."""

from __future__ import annotations

import time
import uuid

import pytest

from logtide.broker import free_port
from tests.kernel.test_role_startup import Role, create_and_produce, events, get, metric, wait_for


@pytest.mark.timeout(150)
def test_a_sink_started_before_kafka_answers_consumes_once_it_does(fault_broker, tmp_path):
    run = uuid.uuid4().hex[:8]
    topic = f"test.route.{run}"
    cfg = tmp_path / "sink.yaml"
    cfg.write_text(
        f"kafka: {{bootstrap: '{fault_broker.bootstrap}'}}\n"
        f"monitoring: {{topic: {topic}, group: g-{run}, session_timeout_seconds: 6}}\n"
    )
    fault_broker.proxy.cut()
    sink = Role("sink", str(cfg), free_port())
    try:
        body = wait_for(
            lambda: (r := sink.readyz())[0] == 503 and "kafka" in r[1]["failing"] and r[1],
            60,
            "readyz false while Kafka does not answer",
        )
        assert fault_broker.bootstrap in body["reasons"]["kafka"]
        assert get(f"http://127.0.0.1:{sink.port}/healthz")[0] == 200
        time.sleep(6)  # more than one connection attempt: still waiting, still running
        assert sink.proc.poll() is None
        fault_broker.proxy.heal()
        create_and_produce(fault_broker.bootstrap, topic, events(25, run))
        wait_for(
            lambda: metric(sink.port, "logtide_sink_events_written_total", sink="monitoring") == 25,
            90,
            "the sink to write all 25 events",
        )
        wait_for(lambda: sink.readyz()[0] == 200, 20, "the sink to be ready")
    finally:
        code, err = sink.stop()
    assert code == 0 and "Traceback" not in err, err[-3000:]

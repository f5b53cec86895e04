"""What every role shares: bootstrap precedence, shared flags, running services, reaching Kafka."""

from __future__ import annotations

import argparse
import threading
import time

import pytest

from logtide.role import RoleConfig, add_role_arguments, apply_arguments, connect_checked, kafka_settings, run_services
from logtide.transport import KafkaSettings, TransportError

pytestmark = pytest.mark.timeout(30)


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_role_arguments(p)
    return p.parse_args(list(argv))


def test_bootstrap_precedence_flag_over_env_over_config(monkeypatch):
    cfg = KafkaSettings(bootstrap="from-config:9092")
    monkeypatch.delenv("LOGTIDE_BOOTSTRAP", raising=False)
    assert kafka_settings(cfg, None).bootstrap == "from-config:9092"
    monkeypatch.setenv("LOGTIDE_BOOTSTRAP", "from-env:9092")
    assert kafka_settings(cfg, None).bootstrap == "from-env:9092"
    assert kafka_settings(cfg, "from-flag:9092").bootstrap == "from-flag:9092"
    assert cfg.bootstrap == "from-config:9092"  # the loaded config is not mutated


def test_apply_arguments_over_config(monkeypatch):
    monkeypatch.delenv("LOGTIDE_BOOTSTRAP", raising=False)
    config = RoleConfig.model_validate(
        {"kafka": {"bootstrap": "cfg:9092", "client": "kafka-python"}, "http": {"port": 9000}}
    )
    out = apply_arguments(config, parse("--bootstrap", "flag:9092", "--http-port", "9100", "--log-level", "debug"))
    assert out.kafka.bootstrap == "flag:9092" and out.kafka.client == "kafka-python"
    assert out.http.port == 9100 and out.log_level == "debug"
    same = apply_arguments(config, parse())
    assert same.kafka.bootstrap == "cfg:9092" and same.http.port == 9000 and same.log_level == "info"


class Ticker:
    def __init__(self, name: str, crash_after: float | None = None):
        self.name = name
        self.crash_after = crash_after
        self.stopped_cleanly = False

    def run(self, stop: threading.Event) -> None:
        start = time.monotonic()
        while not stop.wait(0.02):
            if self.crash_after is not None and time.monotonic() - start > self.crash_after:
                raise RuntimeError("boom")
        self.stopped_cleanly = True


def test_run_services_until_duration():
    a, b = Ticker("a"), Ticker("b")
    assert run_services([a, b], threading.Event(), duration=0.3) == 0
    assert a.stopped_cleanly and b.stopped_cleanly


def test_a_crashed_service_stops_the_others_and_fails():
    ok, bad = Ticker("ok"), Ticker("bad", crash_after=0.1)
    stop = threading.Event()
    assert run_services([ok, bad], stop, duration=20) == 1
    assert stop.is_set() and ok.stopped_cleanly


def test_connect_checked_reaches_a_running_broker(broker):
    transport = connect_checked(KafkaSettings(bootstrap=broker, client="confluent"))
    assert transport.name == "confluent"


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_connect_checked_unreachable_is_one_clear_error(client):
    t0 = time.monotonic()
    with pytest.raises(TransportError) as exc:
        connect_checked(KafkaSettings(bootstrap="127.0.0.1:1", client=client), timeout=2)
    msg = str(exc.value)
    assert "127.0.0.1:1 is unreachable" in msg and "--bootstrap" in msg and "\n" not in msg
    assert time.monotonic() - t0 < 15  # bounded by its timeout (generous: the machine is shared)

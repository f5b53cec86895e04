"""The embedded broker (Tansu): start, answer, stop; clear errors when it cannot start."""

from __future__ import annotations

import socket

import pytest

from logtide.broker import BrokerError, EmbeddedBroker, _api_versions_ok, find_binary, port_in_use
from logtide.transport import KafkaSettings, TopicSpec, connect

pytestmark = pytest.mark.timeout(60)


def test_start_answers_kafka_and_stop_frees_the_port(tmp_path):
    log = tmp_path / "broker.log"
    with EmbeddedBroker(log_file=log) as broker:
        assert broker.proc.poll() is None
        assert _api_versions_ok(broker.host, broker.port, 2.0)
        admin = connect(KafkaSettings(bootstrap=broker.bootstrap, client="confluent")).admin()
        admin.create_topics([TopicSpec("t.broker", 2)])
        assert admin.list_topics()["t.broker"] == 2
        port = broker.port
    assert broker.proc.poll() is not None
    assert not port_in_use(port)
    broker.stop()  # stopping twice is harmless


def test_port_in_use_is_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(BrokerError, match=rf"port {port} is already in use.*--port"):
            EmbeddedBroker(port=port).start()


def test_missing_binary_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("LOGTIDE_TANSU_BIN", "/nonexistent")
    with pytest.raises(BrokerError, match="LOGTIDE_TANSU_BIN=/nonexistent is not an executable"):
        find_binary()
    with pytest.raises(BrokerError):
        EmbeddedBroker().start()


def test_binary_that_exits_at_start_is_a_clear_error(tmp_path, monkeypatch):
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'boom' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("LOGTIDE_TANSU_BIN", str(fake))
    log = tmp_path / "b.log"
    with pytest.raises(BrokerError, match=r"exited at start \(code 3\)"):
        EmbeddedBroker(log_file=log).start()
    assert b"boom" in log.read_bytes()


def test_binary_is_found_in_the_wheel(monkeypatch):
    monkeypatch.delenv("LOGTIDE_TANSU_BIN", raising=False)
    assert find_binary().endswith("tansu") or "tansu" in find_binary()


@pytest.mark.timeout(40)
def test_broker_does_not_outlive_a_killed_parent():
    import os
    import signal
    import subprocess
    import sys
    import time

    code = (
        "from logtide.broker import EmbeddedBroker; import time; b = EmbeddedBroker().start(); "
        "print(b.proc.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    pytest.fail("the embedded broker outlived its killed parent")

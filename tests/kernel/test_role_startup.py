"""Start-up the same in every role, driven as processes: a consumer started before its topic exists
waits (/readyz false, saying why) and consumes everything once the topic appears, with no restart; an
unreachable broker is waited for the same way; an unwritable directory is refused before connecting."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest

from logtide import envelope
from logtide.broker import free_port
from logtide.transport import KafkaSettings, TopicSpec, connect

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOGTIDE = [sys.executable, "-m", "logtide"]


def get(url: str) -> tuple[int, dict | str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = resp.read().decode()
            return resp.status, json.loads(body) if url.endswith("z") else body
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError as exc:
        return 0, str(exc)


def wait_for(predicate, timeout: float, what: str):
    """The predicate's first true value, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {value!r})")
        time.sleep(0.3)
    return value


def metric(port: int, name: str, **labels) -> float:
    code, text = get(f"http://127.0.0.1:{port}/metrics")
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in (text if code == 200 else "").splitlines():
        if line.startswith(name + "{"):
            got = ",".join(sorted(line[len(name) + 1 : line.index("}")].split(",")))
            if got == want:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


class Role:
    """`logtide <role> --config FILE` as a process, stopped with SIGTERM at the end."""

    def __init__(self, role: str, config: str, port: int):
        self.port = port
        self.proc = subprocess.Popen(
            LOGTIDE + [role, "--config", config, "--http-port", str(port)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "LOGTIDE_BOOTSTRAP"},
        )

    def readyz(self) -> tuple[int, dict | str]:
        assert self.proc.poll() is None, self.proc.communicate()[1][-3000:]
        return get(f"http://127.0.0.1:{self.port}/readyz")

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err


def events(n: int, run: str) -> list[dict]:
    return [
        envelope.new_event(
            id=envelope.make_id(run, i),
            body=f"payment failed {i}",
            source="k8s",
            time=time.time_ns(),
            severity_text="ERROR",
            resource={"service.name": "payments"},
        )
        for i in range(n)
    ]


def create_and_produce(broker: str, topic: str, evs: list[dict]) -> None:
    transport = connect(KafkaSettings(bootstrap=broker, client="confluent"))
    admin = transport.admin()
    try:
        admin.create_topics([TopicSpec(topic, 2)])
    finally:
        admin.close()
    producer = transport.producer()
    for ev in evs:
        producer.produce(topic, envelope.encode(ev), key=ev["id"].encode())
    assert producer.flush(30) == 0
    producer.close()


def waiting_for_topic(role: Role, service: str, topic: str):
    code, body = role.readyz()
    return code == 503 and service in body["failing"] and topic in body["reasons"].get(service, "") and body


@pytest.mark.timeout(150)
def test_a_sink_and_an_alert_engine_started_before_their_topics_consume_everything_once_they_appear(broker, tmp_path):
    run = uuid.uuid4().hex[:8]
    sink_topic, alert_topic = f"test.route.{run}.sink", f"test.route.{run}.alert"
    sink_cfg = tmp_path / "sink.yaml"
    sink_cfg.write_text(
        f"kafka: {{bootstrap: '{broker}'}}\n"
        f"monitoring: {{topic: {sink_topic}, group: g-{run}-sink, session_timeout_seconds: 6}}\n"
    )
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - name: PaymentErrors\n    kind: threshold\n"
        "    condition: severity_number >= 17\n    count: 5\n    window: 1m\n"
    )
    alert_cfg = tmp_path / "alert.yaml"
    alert_cfg.write_text(
        f"kafka: {{bootstrap: '{broker}'}}\ntopics: [{alert_topic}]\ngroup_id: g-{run}-alert\n"
        f"session_timeout_seconds: 6\nrules_files: [rules.yaml]\nstate_path: {tmp_path}/state/a.db\n"
        f"api: {{port: {free_port()}}}\n"
    )
    sink = Role("sink", str(sink_cfg), free_port())
    alert = Role("alert", str(alert_cfg), free_port())
    try:
        # both wait, say what for, and stay alive (no crash, no restart)
        wait_for(lambda: waiting_for_topic(sink, "sink-monitoring", sink_topic), 60, "sink waiting for its topic")
        wait_for(lambda: waiting_for_topic(alert, "alert-engine", alert_topic), 60, "alert waiting for its topic")
        assert get(f"http://127.0.0.1:{sink.port}/healthz")[0] == 200
        time.sleep(2)
        assert sink.proc.poll() is None and alert.proc.poll() is None

        create_and_produce(broker, sink_topic, events(40, run + "s"))
        create_and_produce(broker, alert_topic, events(30, run + "a"))
        wait_for(
            lambda: metric(sink.port, "logtide_sink_events_written_total", sink="monitoring") == 40,
            60,
            "the sink to write all 40 events",
        )
        wait_for(
            lambda: metric(alert.port, "logtide_consumer_records_total", component="alerting", topic=alert_topic) == 30,
            60,
            "the alert engine to handle all 30 events",
        )
        wait_for(lambda: sink.readyz()[0] == 200, 20, "the sink to be ready")
        wait_for(lambda: alert.readyz()[0] == 200, 20, "the alert engine to be ready")
    finally:
        results = [sink.stop(), alert.stop()]
    for code, err in results:
        assert code == 0, err[-3000:]
        assert "Traceback" not in err


@pytest.mark.timeout(60)
def test_an_unreachable_broker_is_waited_for_with_readyz_false(tmp_path):
    dead = f"127.0.0.1:{free_port()}"
    cfg = tmp_path / "sink.yaml"
    cfg.write_text(f"kafka: {{bootstrap: '{dead}'}}\nmonitoring: {{}}\n")
    sink = Role("sink", str(cfg), free_port())
    try:
        body = wait_for(lambda: (r := sink.readyz())[0] == 503 and r[1], 40, "readyz false while Kafka is away")
        assert body["failing"] == ["kafka"] and dead in body["reasons"]["kafka"]
        assert get(f"http://127.0.0.1:{sink.port}/healthz")[0] == 200  # waiting is not dead: no restart loop
    finally:
        code, err = sink.stop()
    assert code == 0 and "Traceback" not in err


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "role, section, field",
    [
        ("sink", "audit: {storage: {path: DIR}, hmac_key: '${HOME}'}\n", "audit.storage.path"),
        ("sink", "analytics: {parquet: {path: DIR}}\n", "analytics.parquet.path"),
        ("agent", "mode: files\ninclude: ['/tmp/*.log']\ncheckpoint_dir: DIR\n", "checkpoint_dir"),
        ("alert", "rules_files: [rules.yaml]\nstate_path: DIR/alerting.db\n", "state_path"),
    ],
)
def test_an_unwritable_directory_is_refused_before_connecting(tmp_path, role, section, field):
    # Tests run as root, where permissions do not stop writes: a path under a regular file does.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    directory = blocker / "dir"
    (tmp_path / "rules.yaml").write_text("rules: []\n")
    cfg = tmp_path / f"{role}.yaml"
    # the broker does not exist: the refusal must come before any attempt to connect
    cfg.write_text(f"kafka: {{bootstrap: '127.0.0.1:{free_port()}'}}\n" + section.replace("DIR", str(directory)))
    t0 = time.monotonic()
    r = subprocess.run(
        LOGTIDE + [role, "--config", str(cfg), "--http-port", "0"], capture_output=True, text=True, timeout=50, cwd=ROOT
    )
    assert r.returncode == 2, r.stderr[-2000:]
    errors = [line for line in r.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"field '{field}'" in errors[0] and str(directory) in errors[0] and "not a directory" in errors[0]
    assert "Kafka" not in r.stderr and time.monotonic() - t0 < 30

"""The `logtide` command as a user runs it: real subprocesses, real broker, one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys


import pytest

from logtide.config import load_config
from logtide.transport import connect
from logtide.up import UpConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOGTIDE = [sys.executable, "-m", "logtide"]

pytestmark = pytest.mark.timeout(90)


def env(**extra) -> dict:
    e = {k: v for k, v in os.environ.items() if k != "LOGTIDE_BOOTSTRAP"}
    e.update(extra)
    return e


def run(*args, timeout: float = 60, **extra_env) -> subprocess.CompletedProcess:
    return subprocess.run(
        LOGTIDE + list(args), capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env(**extra_env)
    )


def start(*args, **extra_env) -> subprocess.Popen:
    return subprocess.Popen(
        LOGTIDE + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env(**extra_env)
    )


def assert_one_line_error(proc_or_result, stderr: str, *words: str) -> None:
    assert proc_or_result.returncode != 0
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, stderr
    for w in words:
        assert w in errors[0], errors[0]


@pytest.fixture(scope="module")
def slow_runs(tmp_path_factory):
    """The runs that take seconds each, started together so the module stays fast."""
    workdir = tmp_path_factory.mktemp("up")
    procs = {
        "up": start(
            "up",
            "--duration",
            "8",
            "--http-port",
            "0",
            "--rate",
            "100",
            "--log-level",
            "warning",
            "--config",
            str(write_up_config(workdir)),
        ),
        "up-unreachable": start("up", "--bootstrap", "127.0.0.1:1", "--http-port", "0"),
        "topics-unreachable": start("topics", "--bootstrap", "127.0.0.1:1"),
        # only the kernel's own demo source: this one is about Ctrl-C, not the roles
        "up-sigint": start(
            "up",
            "--http-port",
            "0",
            "--config",
            str(write_up_config(workdir, "disable: [10-agent, 20-process, 30-sink, 40-alert]\n", "up-demo-only.yaml")),
        ),
    }
    yield procs
    for p in procs.values():
        if p.poll() is None:
            p.kill()
            p.communicate()


def write_up_config(workdir, extra: str = "", name: str = "up.yaml") -> str:
    path = workdir / name
    path.write_text(f"workdir: {workdir}\npartitions: 2\n{extra}")
    return str(path)


def finish(proc: subprocess.Popen, timeout: float = 75) -> tuple[str, str]:
    return proc.communicate(timeout=timeout)


def test_help_explains_with_examples():
    script = shutil.which("logtide")
    assert script, "the console script `logtide` is not installed: pip install -e ."
    r = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr  # every component's command loaded
    for word in ("broker", "topics", "up", "examples:", "logtide up --duration 60"):
        assert word in r.stdout
    r = run("up", "--help")
    assert r.returncode == 0 and "--duration" in r.stdout and "example" in r.stdout


def test_no_command_prints_help_and_fails():
    r = run()
    assert r.returncode == 2 and "COMMAND" in r.stdout


def test_topics_lists_partitions_and_end_offsets(broker, new_topic):
    topic = new_topic(2)
    from logtide.transport import KafkaSettings

    producer = connect(KafkaSettings(bootstrap=broker, client="confluent")).producer()
    for i in range(7):
        producer.produce(topic, b"x", partition=i % 2)
    producer.flush(10)
    producer.close()
    r = run("topics", "--bootstrap", broker)
    assert r.returncode == 0, r.stderr
    line = next(line for line in r.stdout.splitlines() if line.startswith(topic))
    assert line.split()[1:3] == ["2", "7"] and "[4, 3]" in line
    r = run("topics", "--json", timeout=60, LOGTIDE_BOOTSTRAP=broker)  # from the environment
    assert r.returncode == 0, r.stderr
    rows = {row["topic"]: row for row in json.loads(r.stdout)}
    assert rows[topic] == {"topic": topic, "partitions": 2, "end_offsets": [4, 3], "records": 7}


def test_topics_without_bootstrap_is_a_usage_error():
    r = run("topics")
    assert_one_line_error(r, r.stderr, "--bootstrap")
    assert r.returncode == 2


def test_up_runs_the_demo_and_ends_with_json_counts(slow_runs):
    out, err = finish(slow_runs["up"])
    assert slow_runs["up"].returncode == 0, err[-3000:]
    assert "Traceback" not in err
    assert "logtide up: kafka 127.0.0.1:" in out and "/metrics" in out
    summary = json.loads(out.strip().splitlines()[-1])
    topics = summary["topics"]
    assert topics["logtide.raw.demo"] > 0
    for name in ("logtide.dlq", "logtide.checkpoints", "logtide.route.monitoring", "logtide.raw.k8s"):
        assert name in topics
    assert "demo-source" in summary["services"]
    assert summary["bootstrap"].startswith("127.0.0.1:")


def test_up_stops_cleanly_on_ctrl_c(slow_runs):
    import signal

    proc = slow_runs["up-sigint"]
    banner = proc.stdout.readline()  # printed once every role runs
    assert banner.startswith("logtide up: kafka 127.0.0.1:"), banner + proc.stderr.read()[-2000:]
    assert "demo-source" in banner
    proc.send_signal(signal.SIGINT)
    out, err = finish(proc, timeout=45)
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    assert '"msg":"stopping"' in err and "SIGINT" in err


def test_up_with_unreachable_bootstrap_is_one_line(slow_runs):
    out, err = finish(slow_runs["up-unreachable"], timeout=40)
    assert_one_line_error(slow_runs["up-unreachable"], err, "127.0.0.1:1", "unreachable", "--bootstrap")


def test_topics_with_unreachable_bootstrap_is_one_line(slow_runs):
    out, err = finish(slow_runs["topics-unreachable"], timeout=40)
    assert_one_line_error(slow_runs["topics-unreachable"], err, "127.0.0.1:1", "unreachable")
    assert out == ""


def test_bad_config_file_names_file_and_line(tmp_path):
    cfg = tmp_path / "up.yaml"
    cfg.write_text("partitions: 3\nkafka:\n  bootstrap: k:9092\n  clinet: confluent\n")
    r = run("up", "--config", str(cfg), "--duration", "1")
    assert_one_line_error(r, r.stderr, f"{cfg}:4", "kafka.clinet")
    cfg.write_text("partitions: three\n")
    r = run("up", "--config", str(cfg), "--duration", "1")
    assert_one_line_error(r, r.stderr, f"{cfg}:1", "partitions")
    r = run("up", "--config", str(tmp_path / "absent.yaml"))
    assert_one_line_error(r, r.stderr, "absent.yaml", "not found")


def test_broker_port_in_use_is_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run("broker", "--port", str(port))
    assert_one_line_error(r, r.stderr, f"port {port} is already in use")


def test_broker_missing_binary_is_one_line():
    r = run("broker", LOGTIDE_TANSU_BIN="/nonexistent")
    assert_one_line_error(r, r.stderr, "LOGTIDE_TANSU_BIN")


def test_broker_prints_bootstrap_and_stops_on_sigterm():
    import signal

    p = start("broker")
    try:
        bootstrap = p.stdout.readline().strip()
        host, port = bootstrap.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=20)
    assert p.returncode == 0


def test_example_up_config_loads():
    config = load_config(os.path.join(ROOT, "examples", "up.yaml"), UpConfig)
    assert config.partitions >= 1
    assert "00-demo" in config.roles
    assert not config.kafka.bootstrap  # the embedded broker unless told otherwise


def test_example_up_config_takes_bootstrap_from_env(monkeypatch):
    monkeypatch.setenv("LOGTIDE_BOOTSTRAP", "kafka-0:9092")
    config = load_config(os.path.join(ROOT, "examples", "up.yaml"), UpConfig)
    assert config.kafka.bootstrap == "kafka-0:9092"

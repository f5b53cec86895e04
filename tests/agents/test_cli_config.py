"""The example config loads, config errors name the line, the CLI's quick mode and usage errors,
the agent's part of `logtide up`, and the metrics the issue lists."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from prometheus_client import REGISTRY, generate_latest

from logtide.agents.config import AgentConfig
from logtide.config import ConfigError, load_config
from tests.agents.helpers import RunningAgent, TopicReader, cri, log_dir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_example_config_loads(monkeypatch):
    monkeypatch.setenv("NODE_NAME", "node-7")
    cfg = load_config(os.path.join(ROOT, "examples", "agent.yaml"), AgentConfig)
    assert cfg.mode == "kubernetes" and cfg.kubernetes.node_name == "node-7"
    assert cfg.include_globs() == ["/var/log/pods/*/*/*.log", "/var/log/containers/*.log"]
    assert cfg.topic_name() == "logtide.raw.k8s" and cfg.rate_limit.lines_per_second == 5000


def test_config_errors_name_file_line_and_field(tmp_path):
    bad = tmp_path / "agent.yaml"
    bad.write_text("mode: files\nmultiline:\n  start_pattern: '(['\nqueue:\n  max_recs: 5\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad, AgentConfig)
    text = str(err.value)
    assert f"{bad}:2" in text and "start_pattern" in text
    assert f"{bad}:5" in text and "max_recs" in text


def _agent_cli(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "logtide.cli", "agent", *args],
        cwd=ROOT,
        capture_output=True,
        timeout=timeout,
        env={**os.environ, "LOGTIDE_BOOTSTRAP": ""},
    )


def test_cli_usage_errors_and_help():
    res = _agent_cli("--checkpoint-dir", "/tmp/x")
    assert res.returncode == 2 and b"--path GLOB" in res.stderr
    res = _agent_cli("--path", "/tmp/*.log")
    assert res.returncode == 2 and b"--bootstrap" in res.stderr
    res = _agent_cli("--help")
    assert res.returncode == 0 and b"--checkpoint-dir" in res.stdout and b"examples:" in res.stdout


@pytest.mark.timeout(60)
def test_quick_mode_ships_plain_files(tmp_path, broker, new_topic):
    topic = new_topic(1)
    logs = log_dir(
        tmp_path, app_log=b"".join(b"plain line %d\n" % i for i in range(100)), skip_log=b"excluded line\n" * 10
    )
    res = _agent_cli(
        "--path",
        str(logs / "*.log"),
        "--exclude",
        "*/skip.log",
        "--checkpoint-dir",
        str(tmp_path / "ck"),
        "--bootstrap",
        broker,
        "--topic",
        topic,
        "--http-port",
        "0",
        "--duration",
        "3",
    )
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    reader = TopicReader(broker, topic)
    events = reader.count(100)
    events = reader.settle(0.5)
    assert [e["body"] for e in events] == [f"plain line {i}" for i in range(100)]
    assert reader.keys[0] == str(logs / "app.log").encode() and events[0]["source"] == "file"
    reader.close()


@pytest.mark.timeout(60)
def test_up_part_tails_the_workdir_and_stops(tmp_path, memory_kafka, memory_topic):
    from logtide.agents.up import up
    from logtide.health import HealthServer
    from logtide.transport import connect
    from logtide.up import UpContext

    topic = memory_topic(1)
    ctx = UpContext(
        kafka=memory_kafka,
        transport=connect(memory_kafka),
        workdir=tmp_path,
        health=HealthServer(),
        options={"topic": topic, "read": {"scan_interval_seconds": 0.1}},
    )
    (service,) = up(ctx)
    (tmp_path / "agent-logs" / "demo.log").write_bytes(b"hello from up\n")
    stop = threading.Event()
    t = threading.Thread(target=service.run, args=(stop,), daemon=True)
    t.start()
    reader = TopicReader(memory_kafka, topic)
    (ev,) = reader.count(1)
    stop.set()
    t.join(30)
    assert not t.is_alive()
    assert ev["body"] == "hello from up"
    reader.close()


@pytest.mark.timeout(30)
def test_metrics_the_issue_lists(tmp_path, memory_kafka, memory_topic):
    topic = memory_topic(1)
    pods = tmp_path / "pods" / "ns_p-1_uid" / "c"
    pods.mkdir(parents=True)
    (pods / "0.log").write_bytes(cri("a", tag="P") + cri("b") + cri("one"))
    reader = TopicReader(memory_kafka, topic)
    with RunningAgent(
        memory_kafka,
        tmp_path / "ck",
        mode="kubernetes",
        pods_root=str(tmp_path / "pods"),
        containers_root=str(tmp_path / "none"),
        kubernetes={"enabled": False},
        topic=topic,
    ):
        reader.count(2)
        import time

        time.sleep(1.2)  # one checkpoint interval: the lag gauge is set
        text = generate_latest(REGISTRY).decode()
    for name in (
        "logtide_agent_lines_read_total",
        "logtide_agent_bytes_read_total",
        "logtide_agent_records_produced_total",
        "logtide_agent_partial_merges_total",
        "logtide_agent_rotations_total",
        "logtide_agent_checkpoint_lag_bytes",
        "logtide_agent_dropped_records_total",
        "logtide_agent_queue_depth",
        "logtide_agent_bad_input_total",
    ):
        assert name in text, name
    # Labelled namespace/pod/container/file: the pod uid of the kubelet path stays out of labels.
    assert 'logtide_agent_checkpoint_lag_bytes{path="ns/p-1/c/0.log"} 0.0' in text
    assert "uid" not in "".join(line for line in text.splitlines() if line.startswith("logtide_agent_checkpoint_lag"))
    reader.close()

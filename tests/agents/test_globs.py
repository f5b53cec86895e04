"""Recursive ``**`` globs over a kubelet-shaped tree (flags-only mode, real files, real Kafka), and an
include glob that matches nothing said so (log line and metric) instead of tailing nothing silently."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.agents.helpers import TopicReader, cri

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"


def _agent_cli(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "logtide.cli", "agent", *args],
        cwd=ROOT,
        capture_output=True,
        timeout=timeout,
        env={**os.environ, "LOGTIDE_BOOTSTRAP": ""},
    )


@pytest.mark.timeout(60)
def test_double_star_glob_tails_the_kubelet_tree_with_pod_fields(tmp_path, broker, new_topic):
    pods = tmp_path / "var" / "log" / "pods"
    layout = {
        ("shop", "web-7d9f", "nginx"): 30,
        ("shop", "web-7d9f", "istio-proxy"): 10,
        ("kube-system", "dns-abc12", "coredns"): 20,
    }
    for (ns, pod, container), n in layout.items():
        d = pods / f"{ns}_{pod}_{UID}" / container
        d.mkdir(parents=True)
        (d / "0.log").write_bytes(b"".join(cri(f"{container} line {i}") for i in range(n)))
        (d / "0.log.20240501-120000.gz").write_bytes(b"\x1f\x8b compressed")
    topic = new_topic(1)
    res = _agent_cli(
        "--path",
        str(pods / "**" / "*.log"),
        "--exclude",
        str(pods / "**" / "istio-proxy" / "*"),
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
    reader.count(50)
    events = reader.settle(0.5)
    reader.close()
    assert len(events) == 50  # nginx 30 + coredns 20, istio-proxy excluded
    by_container = {}
    for e in events:
        by_container.setdefault(e["resource"]["k8s.container.name"], []).append(e)
    assert sorted(by_container) == ["coredns", "nginx"]
    web = by_container["nginx"][0]["resource"]
    assert (web["k8s.namespace.name"], web["k8s.pod.name"], web["k8s.pod.uid"]) == ("shop", "web-7d9f", UID)
    assert web["service.name"] == "nginx"  # not "0" (the file name)
    assert by_container["nginx"][0]["body"] == "nginx line 0"  # CRI lines parsed


@pytest.mark.timeout(60)
def test_glob_matching_nothing_is_reported(tmp_path, broker, new_topic):
    (tmp_path / "logs").mkdir()
    missing = str(tmp_path / "logs" / "**" / "*.log")
    res = _agent_cli(
        "--path",
        missing,
        "--checkpoint-dir",
        str(tmp_path / "ck"),
        "--bootstrap",
        broker,
        "--topic",
        new_topic(1),
        "--http-port",
        "0",
        "--duration",
        "2",
        "--log-level",
        "info",
    )
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    err = res.stderr.decode()
    lines = [ln for ln in err.splitlines() if "include glob matches no file" in ln]
    assert len(lines) == 1 and missing in lines[0]  # once per interval, naming the glob


def test_unmatched_glob_metric_and_exclude_semantics(tmp_path):
    from prometheus_client import REGISTRY

    from logtide.agents.discovery import Discovery

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "top.log").write_text("x\n")
    (tmp_path / "a" / "b" / "deep.log").write_text("x\n")
    (tmp_path / "a" / "b" / "skip.log").write_text("x\n")
    d = Discovery(
        [str(tmp_path / "a" / "**" / "*.log"), str(tmp_path / "nothing" / "*.log")],
        ["*/skip.log", str(tmp_path / "a" / "**" / "top.log")],
    )
    found = sorted(os.path.basename(f.path) for f in d.scan().values())
    assert found == ["deep.log"]  # '**/' matched zero directories for top.log
    assert d.unmatched == [str(tmp_path / "nothing" / "*.log")]
    assert REGISTRY.get_sample_value("logtide_agent_include_globs_unmatched") == 1

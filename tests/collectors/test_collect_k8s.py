"""Kubernetes API collector against an API server double over HTTP (list/watch pods, log streams)."""

from __future__ import annotations

import time

import pytest

from logtide.transport import connect

from collect_helpers import metric, read_events, running_item, unique, wait_for
from logtide.collectors.k8s.collector import KubernetesCollector
from logtide.collectors.k8s.config import KubernetesConfig
from logtide.collectors.k8s.logstream import parse_line


def k8s_collector(fast_kafka, double, topic: str, namespaces: list[str], **overrides) -> KubernetesCollector:
    cfg = {
        "namespaces": namespaces,
        "api_server": double.url,
        "in_cluster": False,
        "topic": topic,
        "flush_interval_seconds": 0.1,
        "watch_timeout_seconds": 5,
        **overrides,
    }
    return KubernetesCollector(KubernetesConfig.model_validate(cfg), connect(fast_kafka))


def test_parse_line_with_nanoseconds():
    assert parse_line("2024-01-02T03:04:05.123456789Z hello world") == (1704164645_123456789, "hello world")
    assert parse_line("2024-01-02T03:04:05Z x") == (1704164645_000000000, "x")
    assert parse_line("no timestamp here") == (None, "no timestamp here")


@pytest.mark.timeout(60)
def test_follow_resume_overlap_restart_delete(fast_kafka, new_topic, k8s_double):
    ns = unique("team-")
    topic = new_topic(3)
    k8s_double.add_pod(ns, "web-1", containers=("app", "sidecar"), labels={"app": "web"})
    second = (time.time_ns() // 1_000_000_000 - 5) * 1_000_000_000  # one second shared by many lines
    for i in range(5):
        k8s_double.write(ns, "web-1", "app", f"INFO same-second {i}", ts_ns=second)  # identical timestamps
    k8s_double.write(ns, "web-1", "sidecar", "WARN sidecar up")
    c = k8s_collector(fast_kafka, k8s_double, topic, [ns])
    dups = metric("logtide_collector_duplicates_dropped_total", collector="k8s")
    with running_item(c, ns):
        assert len(read_events(fast_kafka, topic, 6, timeout=20)) == 6
        # The stream breaks; it resumes with sinceTime (whole seconds) and the overlap is dropped by position.
        k8s_double.break_streams()
        k8s_double.write(ns, "web-1", "app", "INFO after break", ts_ns=second + 500)
        wait_for(lambda: metric("logtide_collector_duplicates_dropped_total", collector="k8s") >= dups + 4)
        # The container restarts: the new instance's lines follow.
        k8s_double.restart(ns, "web-1", "app")
        k8s_double.write(ns, "web-1", "app", "ERROR new instance")
        # A new pod appears through the watch; the first pod is deleted.
        k8s_double.add_pod(ns, "worker-1")
        k8s_double.write(ns, "worker-1", "app", "INFO worker says hi")
        events = read_events(fast_kafka, topic, 9, timeout=20, settle=0.5)
        assert wait_for(lambda: c.checkpoints.get(f"{ns}/worker-1/app"))
        k8s_double.delete_pod(ns, "web-1")
        wait_for(lambda: c.checkpoints.get(f"{ns}/web-1/app") is None)
    bodies = sorted(e["body"] for e in events)
    assert bodies == sorted(
        [f"INFO same-second {i}" for i in range(5)]
        + ["WARN sidecar up", "INFO after break", "ERROR new instance", "INFO worker says hi"]
    )
    assert len({e["id"] for e in events}) == 9
    web = next(e for e in events if e["body"] == "INFO after break")
    assert web["time"] == second + 500
    assert web["resource"]["k8s.pod.name"] == "web-1" and web["resource"]["k8s.container.name"] == "app"
    assert web["resource"]["k8s.namespace.name"] == ns and web["resource"]["k8s.pod.labels.app"] == "web"
    assert web["resource"]["service.name"] == "web"
    assert next(e for e in events if e["body"] == "ERROR new instance")["severity_text"] == "ERROR"
    assert any("sinceTime" in r for r in k8s_double.log_requests)
    c.close()


@pytest.mark.timeout(60)
def test_restart_from_checkpoint_reads_previous_instance_and_survives_errors(fast_kafka, new_topic, k8s_double):
    ns = unique("batch-")
    topic = new_topic(1)
    k8s_double.add_pod(ns, "job-1", labels={"collect": "yes"})
    k8s_double.add_pod(ns, "not-selected", labels={"collect": "no"})
    k8s_double.write(ns, "not-selected", "app", "must not be collected")
    for i in range(3):
        k8s_double.write(ns, "job-1", "app", f"line {i}")
    c = k8s_collector(fast_kafka, k8s_double, topic, [ns], label_selector="collect=yes")
    with running_item(c, ns):
        assert len(read_events(fast_kafka, topic, 3, timeout=20)) == 3
    c.close()
    # While no collector runs, the container writes more, restarts, and writes in its new instance.
    k8s_double.write(ns, "job-1", "app", "line 3 (old instance, unseen)")
    k8s_double.restart(ns, "job-1", "app")
    k8s_double.write(ns, "job-1", "app", "line 4 (new instance)")
    k8s_double.fail_log_requests = 3  # the API server answers 500 a few times
    errors = metric("logtide_collector_errors_total", collector="k8s", kind="api")
    c2 = k8s_collector(fast_kafka, k8s_double, topic, [ns], label_selector="collect=yes")
    with running_item(c2, ns):
        events = read_events(fast_kafka, topic, 5, timeout=30, settle=0.5)
    assert sorted(e["body"] for e in events) == [
        "line 0",
        "line 1",
        "line 2",
        "line 3 (old instance, unseen)",
        "line 4 (new instance)",
    ]
    assert any(r.get("previous") == "true" for r in k8s_double.log_requests)
    assert metric("logtide_collector_errors_total", collector="k8s", kind="api") >= errors + 3
    c2.close()

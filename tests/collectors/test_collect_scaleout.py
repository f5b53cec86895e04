"""`logtide collect`: the example config, replicas sharing work items through a consumer group, and a
replica killed with SIGKILL mid-run whose replacement resumes from the Kafka checkpoints."""

from __future__ import annotations

import os
import threading
import time

import pytest
import yaml

from logtide.config import ConfigError, load_config
from logtide.transport import connect

from collect_helpers import kill_9_then_replace, read_events, unique, wait_for
from logtide.collectors.cloudwatch.collector import CloudWatchCollector
from logtide.collectors.cloudwatch.config import CloudWatchConfig
from logtide.collectors.config import CollectConfig
from logtide.collectors.work import WorkGroup

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SESSION_SECONDS = 6


def fill(client, group: str, count: int, prefix: str) -> list[str]:
    client.create_log_group(logGroupName=group)
    client.create_log_stream(logGroupName=group, logStreamName="s")
    base = int(time.time() * 1000) - 60_000
    msgs = [f"{prefix} {i}" for i in range(count)]
    for start in range(0, count, 5000):
        client.put_log_events(
            logGroupName=group,
            logStreamName="s",
            logEvents=[
                {"timestamp": base + i // 10, "message": msgs[i]} for i in range(start, min(count, start + 5000))
            ],
        )
    return msgs


def test_example_config_loads(monkeypatch, tmp_path):
    monkeypatch.setenv("SF_PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----\nexample\n-----END PRIVATE KEY-----")
    config = load_config(os.path.join(ROOT, "examples", "collect.yaml"), CollectConfig)
    assert config.named() == ["cloudwatch", "salesforce", "k8s"]
    assert config.cloudwatch.log_groups[1].prefix == "/ecs/payments/"
    assert config.salesforce.auth.kind == "jwt" and config.salesforce.audit == ["SetupAuditTrail", "LoginHistory"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("cloudwatch:\n  regions: [us-east-1]\n  log_groups:\n    - name: a\n      prefix: b\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:4.*exactly one of 'name' or 'prefix'"):
        load_config(bad, CollectConfig)
    (tmp_path / "none.yaml").write_text("log_level: info\n")
    with pytest.raises(ConfigError, match="at least one collector"):
        load_config(tmp_path / "none.yaml", CollectConfig)


class Recording(CloudWatchCollector):
    """Records when each replica ran each work item (to prove no item ever ran on two at once)."""

    def __init__(self, replica: str, runs: list, *args):
        super().__init__(*args)
        self.replica, self.runs = replica, runs

    def run_item(self, item, stop):
        start = time.monotonic()
        try:
            super().run_item(item, stop)
        finally:
            self.runs.append((item, self.replica, start, time.monotonic()))


@pytest.mark.timeout(90)
def test_two_replicas_split_items_and_hand_over(fast_kafka, new_topic, moto_url, logs_client, aws_env):
    client = logs_client()
    groups = [unique("/app/split-") for _ in range(4)]
    expected = []
    for g in groups:
        expected += fill(client, g, 50, g)
    topic = new_topic(3)
    cfg = CloudWatchConfig.model_validate(
        {
            "regions": ["us-east-1"],
            "log_groups": [{"name": g} for g in groups],
            "endpoint_url": moto_url,
            "topic": topic,
            "poll_interval_seconds": 0.3,
            "lookback_seconds": 120,
            "max_requests_per_second": 50,
        }
    )
    runs: list = []
    owned: dict[str, list[str]] = {"a": [], "b": []}
    replicas = {}
    for name in ("a", "b"):
        group = WorkGroup(
            connect(fast_kafka),
            Recording(name, runs, cfg, connect(fast_kafka)),
            SESSION_SECONDS,
            on_change=lambda items, n=name: owned.__setitem__(n, items),
        )
        stop = threading.Event()
        thread = threading.Thread(target=group.run, args=(stop,), daemon=True)
        thread.start()
        replicas[name] = (group, stop, thread)
    # Both members joined: the coordinator split the four items between them.
    wait_for(lambda: len(owned["a"]) + len(owned["b"]) == 4 and owned["a"] and owned["b"], timeout=40)
    assert not set(owned["a"]) & set(owned["b"])
    events = read_events(fast_kafka, topic, 200, timeout=30)
    # Replica a leaves (a rolling update): b takes over everything, from a's checkpoints.
    replicas["a"][1].set()
    replicas["a"][2].join(30)
    wait_for(lambda: len(owned["b"]) == 4, timeout=40)
    for g in groups:
        client.put_log_events(
            logGroupName=g,
            logStreamName="s",
            logEvents=[{"timestamp": int(time.time() * 1000) - 1000, "message": f"{g} after"}],
        )
    events = read_events(fast_kafka, topic, 204, timeout=30, settle=1.0)
    replicas["b"][1].set()
    replicas["b"][2].join(30)
    assert sorted(e["body"] for e in events) == sorted(expected + [f"{g} after" for g in groups])
    # Never two replicas on one item at once.
    for item in {r[0] for r in runs}:
        spans = sorted((start, end, who) for it, who, start, end in runs if it == item)
        for (_s1, e1, w1), (s2, _e2, w2) in zip(spans, spans[1:]):
            assert e1 <= s2, f"{item} ran on {w1} and {w2} at once"


@pytest.mark.timeout(120)
def test_kill_9_mid_run_then_replacement_resumes(
    broker, fast_kafka, new_topic, moto_url, logs_client, aws_env, tmp_path
):
    client = logs_client()
    groups = [unique("/app/kill-") for _ in range(2)]
    expected = []
    for g in groups:
        expected += fill(client, g, 1500, g)
    topic = new_topic(3)
    config = {
        "kafka": {"bootstrap": broker},
        "http": {"host": "127.0.0.1", "port": 0},
        "log_level": "warning",
        "work": {"session_timeout_seconds": SESSION_SECONDS},
        "cloudwatch": {
            "regions": ["us-east-1"],
            "log_groups": [{"name": g} for g in groups],
            "endpoint_url": moto_url,
            "topic": topic,
            "page_limit": 100,
            "max_requests_per_second": 10,
            "poll_interval_seconds": 0.3,
            "lookback_seconds": 120,
        },
    }
    path = tmp_path / "collect.yaml"
    path.write_text(yaml.safe_dump(config))

    events = kill_9_then_replace(path, fast_kafka, topic, 300, 3000, items=2)
    ids_by_body: dict[str, set] = {}
    for e in events:
        ids_by_body.setdefault(e["body"], set()).add(e["id"])
    assert sorted(ids_by_body) == sorted(expected)  # nothing missing
    assert all(len(ids) == 1 for ids in ids_by_body.values())  # duplicates share ids


@pytest.mark.timeout(30)
def test_a_crashing_item_is_one_traceback_then_one_line_per_retry_and_marks_health(caplog):
    import logging

    from logtide.collectors.base import CollectorMetrics, ItemHealth
    from logtide.collectors.work import ItemTask

    class Broken:
        name = "broken"
        metrics = CollectorMetrics("broken")
        health = ItemHealth(metrics, reminder_seconds=0.0)  # every retry logged, to count them
        calls = 0

        def run_item(self, item, stop):
            Broken.calls += 1
            raise ValueError("bad answer from the source")

    collector = Broken()
    task = ItemTask(collector, "only-item")
    with caplog.at_level(logging.WARNING, logger="collectors"):
        task.thread.start()
        wait_for(lambda: Broken.calls >= 3, timeout=20)
        assert collector.health.failing() == {"only-item": "item_crashed"} and not collector.health.healthy()
        task.stop.set()
        task.thread.join(10)
    lines = [r for r in caplog.records if "work item failed (ValueError: bad answer" in r.getMessage()]
    assert len(lines) >= 2
    assert lines[0].exc_info is not None and all(r.exc_info is None for r in lines[1:])
    assert collector.health.failing() == {}  # the item was given up: not counted any more

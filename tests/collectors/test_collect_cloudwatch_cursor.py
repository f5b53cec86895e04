"""The CloudWatch cursor against moto's server (its own process) with pages that come stream by
stream: a collector killed with SIGKILL mid-read, a read handed to another replica mid-read, and a busy
group whose lookback holds more events than the dedup memory. Records are counted in Kafka."""

from __future__ import annotations

import collections
import os
import threading
import time

import pytest
import yaml

from logtide.transport import connect

from collect_helpers import kill_9_then_replace, read_events, running_item, unique, wait_for
from logtide.collectors.cloudwatch.collector import CloudWatchCollector
from logtide.collectors.cloudwatch.config import CloudWatchConfig
from logtide.collectors.work import WorkGroup

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SESSION_SECONDS = 6
STREAMS = ("web-a", "web-b", "web-c", "web-d")


def backlog(client, group: str, per_stream: int, span_ms: int) -> list[str]:
    """Streams whose events interleave in time over the last ``span_ms`` (read stream by stream, the
    first stream's newest event is far newer than the other streams' oldest ones)."""
    client.create_log_group(logGroupName=group)
    now = int(time.time() * 1000) - 30_000
    bodies = []
    for k, stream in enumerate(STREAMS):
        client.create_log_stream(logGroupName=group, logStreamName=stream)
        step = span_ms // per_stream
        events = [{"timestamp": now - span_ms + i * step + k, "message": f"{stream} {i}"} for i in range(per_stream)]
        for start in range(0, per_stream, 5000):
            client.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events[start : start + 5000])
        bodies += [e["message"] for e in events]
    return bodies


def counted(events: list[dict]) -> collections.Counter:
    return collections.Counter(e["body"] for e in events)


@pytest.mark.timeout(150)
def test_sigkill_mid_read_then_replacement_loses_nothing(
    broker, fast_kafka, new_topic, fault_proxy, logs_client, aws_env, tmp_path
):
    client = logs_client()
    group = unique("/app/backlog-")
    expected = backlog(client, group, 1000, 20 * 60_000)  # 20 minutes of 4 streams, lookback 60 s
    fault_proxy.stream_by_stream = True
    fault_proxy.delay = 0.05
    topic = new_topic(3)
    config = {
        "kafka": {"bootstrap": broker},
        "http": {"host": "127.0.0.1", "port": 0},
        "log_level": "warning",
        "work": {"session_timeout_seconds": SESSION_SECONDS},
        "cloudwatch": {
            "regions": ["us-east-1"],
            "log_groups": [{"name": group}],
            "endpoint_url": fault_proxy.url,
            "topic": topic,
            "page_limit": 100,
            "max_requests_per_second": 50,
            "poll_interval_seconds": 0.5,
            "lookback_seconds": 60,
            "start_seconds_ago": 3600,
        },
    }
    path = tmp_path / "collect.yaml"
    path.write_text(yaml.safe_dump(config))

    events = kill_9_then_replace(path, fast_kafka, topic, 1400, len(expected), items=1)  # ~35 % read
    got = counted(events)
    assert sorted(got) == sorted(expected), f"{len(set(expected) - set(got))} events lost"
    # Re-sent: at most the page in flight when killed (same ids), never the backlog again.
    assert len(events) - len(expected) <= 100
    assert len({e["id"] for e in events}) == len(expected)


class Slow(CloudWatchCollector):
    """Notes each checkpoint put, to see the handover happen while a read is in progress."""

    def __init__(self, puts: list, *args):
        super().__init__(*args)
        original = self.checkpoints.put

        def put(item, key, value):
            original(item, key, value)
            puts.append(value)

        self.checkpoints.put = put


@pytest.mark.timeout(150)
def test_rebalance_mid_read_hands_the_read_over(fast_kafka, new_topic, fault_proxy, logs_client, aws_env):
    client = logs_client()
    group = unique("/app/handover-")
    expected = backlog(client, group, 600, 20 * 60_000)
    fault_proxy.stream_by_stream = True
    fault_proxy.delay = 0.05
    topic = new_topic(3)
    cfg = CloudWatchConfig.model_validate(
        {
            "regions": ["us-east-1"],
            "log_groups": [{"name": group}],
            "endpoint_url": fault_proxy.url,
            "topic": topic,
            "page_limit": 100,
            "max_requests_per_second": 50,
            "poll_interval_seconds": 0.5,
            "lookback_seconds": 60,
        }
    )
    puts: dict[str, list] = {"a": [], "b": []}
    owned: dict[str, list[str]] = {"a": [], "b": []}
    replicas = {}

    def start(name: str):
        wg = WorkGroup(
            connect(fast_kafka),
            Slow(puts[name], cfg, connect(fast_kafka)),
            SESSION_SECONDS,
            on_change=lambda items, n=name: owned.__setitem__(n, items),
        )
        stop = threading.Event()
        thread = threading.Thread(target=wg.run, args=(stop,), daemon=True)
        thread.start()
        replicas[name] = (stop, thread, wg)

    start("a")
    wait_for(lambda: owned["a"], timeout=40)
    start("b")
    wait_for(replicas["b"][2].joined.is_set, timeout=60)  # b is a member (the item stayed with a, or moved)
    read_events(fast_kafka, topic, 700, timeout=60)  # a third into the read
    replicas["a"][0].set()  # a leaves: rebalance, b takes over
    replicas["a"][1].join(60)
    assert puts["a"] and "sweep" in puts["a"][-1], "a should have handed over in the middle of a read"
    wait_for(lambda: owned["b"], timeout=60)
    events = read_events(fast_kafka, topic, len(expected), timeout=90, settle=2.0)
    replicas["b"][0].set()
    replicas["b"][1].join(60)
    assert sorted(counted(events)) == sorted(expected)
    assert len(events) - len(expected) <= 100
    # b resumed a's read (its first put continues a's sweep), not a new one from the cursor.
    assert (
        puts["b"][0].get("sweep", {}).get("start_ms", puts["b"][0]["cursor_ms"]) == puts["a"][-1]["sweep"]["start_ms"]
    )


@pytest.mark.timeout(120)
def test_busy_group_is_shipped_once(fast_kafka, new_topic, moto_url, logs_client, aws_env):
    """1,000 events/s, a lookback that holds 120,000 and a memory of 5,000 ids: each event once in Kafka."""
    client = logs_client()
    group = unique("/app/busy-")
    client.create_log_group(logGroupName=group)
    for s in ("a", "b"):
        client.create_log_stream(logGroupName=group, logStreamName=s)
    topic = new_topic(3)
    c = CloudWatchCollector(
        CloudWatchConfig.model_validate(
            {
                "regions": ["us-east-1"],
                "log_groups": [{"name": group}],
                "endpoint_url": moto_url,
                "topic": topic,
                "poll_interval_seconds": 0.5,
                "lookback_seconds": 120,
                "max_seen_ids": 5000,
                "start_position": "end",
                "max_requests_per_second": 50,
            }
        ),
        connect(fast_kafka),
    )
    written: list[str] = []
    stop_writing = threading.Event()

    def writer():
        n = 0
        while not stop_writing.is_set() and n < 4000:
            tick = time.monotonic()
            now = int(time.time() * 1000)
            for s in ("a", "b"):  # 2 × 100 events every 0.2 s: 1,000 events/s
                batch = [{"timestamp": now - 200 + i * 2, "message": f"{s} {n + i}"} for i in range(100)]
                client.put_log_events(logGroupName=group, logStreamName=s, logEvents=batch)
                written.extend(e["message"] for e in batch)
            n += 100
            stop_writing.wait(max(0.0, 0.2 - (time.monotonic() - tick)))

    with running_item(c, c.work_items()[0]):
        time.sleep(1.0)  # start_position end: the collector starts now
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        t.join(30)  # 8,000 events in ~8 s: ~16 polls while they come in
        stop_writing.set()
        events = read_events(fast_kafka, topic, len(written), timeout=60, settle=3.0)
    assert len(written) == 8000
    got = counted(events)
    assert set(got) == set(written), f"{len(set(written) - set(got))} events missing"
    assert len(events) == len(written), f"{len(events) - len(written)} records shipped again"
    cp = c.checkpoints.get(f"us-east-1/{group}")
    assert len(cp["seen"]) <= 5000 and cp["forgotten_ms"] > 0
    c.close()

"""CloudWatch Logs collector against moto's standalone server (real HTTP), through a fault proxy."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from logtide.transport import connect

from collect_helpers import metric, read_events, running_item, unique, wait_for
from logtide.collectors.cloudwatch import lambda_report
from logtide.collectors.cloudwatch.collector import CloudWatchCollector
from logtide.collectors.cloudwatch.config import CloudWatchConfig


def put(client, group: str, stream: str, messages: list[str], ts_ms: int | None = None) -> None:
    base = ts_ms if ts_ms is not None else int(time.time() * 1000) - 5000
    client.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": base + i, "message": m} for i, m in enumerate(messages)],
    )


def make_group(client, group: str, streams=("s1",)) -> None:
    client.create_log_group(logGroupName=group)
    for s in streams:
        client.create_log_stream(logGroupName=group, logStreamName=s)


def collector(fast_kafka, endpoint: str, topic: str, **overrides) -> CloudWatchCollector:
    cfg = {
        "regions": ["us-east-1"],
        "log_groups": [{"prefix": "/none"}],
        "endpoint_url": endpoint,
        "poll_interval_seconds": 0.2,
        "lookback_seconds": 120,
        "page_limit": 50,
        "topic": topic,
        "retry_max_seconds": 0.5,
        "min_requests_per_second": 2,
        **overrides,
    }
    return CloudWatchCollector(CloudWatchConfig.model_validate(cfg), connect(fast_kafka))


def test_lambda_platform_lines_become_attributes():
    rep = lambda_report.parse(
        "REPORT RequestId: 3f1c-77\tDuration: 102.25 ms\tBilled Duration: 103 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 70 MB\tInit Duration: 150.42 ms\t"
    )
    assert rep == {
        "aws.lambda.record": "report",
        "faas.invocation_id": "3f1c-77",
        "aws.lambda.duration_ms": 102.25,
        "aws.lambda.billed_duration_ms": 103.0,
        "aws.lambda.memory_size_mb": 128,
        "aws.lambda.max_memory_used_mb": 70,
        "aws.lambda.init_duration_ms": 150.42,
        "faas.coldstart": True,
    }
    assert lambda_report.parse("START RequestId: ab-1 Version: $LATEST") == {
        "aws.lambda.record": "start",
        "faas.invocation_id": "ab-1",
        "faas.version": "$LATEST",
    }
    assert lambda_report.parse("END RequestId: ab-1")["aws.lambda.record"] == "end"
    assert lambda_report.parse("Something else") is None


@pytest.mark.timeout(60)
def test_pages_empty_pages_lambda_and_late_events(fast_kafka, new_topic, fault_proxy, logs_client, aws_env):
    client = logs_client()
    group = unique("/aws/lambda/checkout-")
    make_group(client, group, ("2024/01/01/[$LATEST]a", "2024/01/01/[$LATEST]b"))
    msgs = (
        ["START RequestId: r-1 Version: $LATEST"]
        + [f"INFO line {i}" for i in range(118)]
        + [
            "END RequestId: r-1",
            "REPORT RequestId: r-1\tDuration: 12.50 ms\tBilled Duration: 13 ms\t"
            "Memory Size: 128 MB\tMax Memory Used: 64 MB\t",
        ]
    )
    put(client, group, "2024/01/01/[$LATEST]a", msgs)
    put(client, group, "2024/01/01/[$LATEST]b", [f"ERROR other {i}" for i in range(80)])
    fault_proxy.empty_pages = 2  # every query first answers two empty pages carrying a nextToken
    topic = new_topic(3)
    c = collector(fast_kafka, fault_proxy.url, topic, log_groups=[{"prefix": group}])
    item = c.work_items()[0]
    dup_before = metric("logtide_collector_duplicates_dropped_total", collector="cloudwatch")
    with running_item(c, item):
        events = read_events(fast_kafka, topic, 201, timeout=30)
        assert len(events) == 201
        # A late event (older than the cursor, inside the lookback) is still found, once.
        put(client, group, "2024/01/01/[$LATEST]b", ["WARN arrived late"], ts_ms=int(time.time() * 1000) - 60_000)
        events = read_events(fast_kafka, topic, 202, timeout=30, settle=1.0)
        wait_for(lambda: metric("logtide_collector_duplicates_dropped_total", collector="cloudwatch") > dup_before)
    assert len(events) == 202 and len({e["id"] for e in events}) == 202
    report = next(e for e in events if e["body"].startswith("REPORT"))
    assert report["attributes"]["aws.lambda.duration_ms"] == 12.5
    assert report["attributes"]["faas.invocation_id"] == "r-1"
    assert report["resource"]["faas.name"] == group.rsplit("/", 1)[-1]
    assert report["resource"]["aws.log.group.names"] == [group]
    assert {e["severity_text"] for e in events} >= {"INFO", "ERROR", "WARN"}
    cp = c.checkpoints.get(f"us-east-1/{group}")
    assert cp["cursor_ms"] > 0 and len(cp["seen"]) == 202
    c.close()


@pytest.mark.timeout(90)
def test_throttling_5xx_and_expired_credentials_storms(
    fast_kafka, new_topic, fault_proxy, logs_client, aws_env, caplog
):
    client = logs_client()
    group = unique("/app/storm-")
    make_group(client, group)
    put(client, group, "s1", [f"event {i}" for i in range(120)])
    topic = new_topic(1)
    c = collector(fast_kafka, fault_proxy.url, topic, log_groups=[{"name": group}])
    before = {
        k: metric("logtide_collector_errors_total", collector="cloudwatch", kind=k) for k in ("server", "credentials")
    }
    throttles = metric("logtide_collector_throttles_total", collector="cloudwatch")
    fault_proxy.inject("throttle", 4)
    fault_proxy.inject("server", 3)
    fault_proxy.inject("expired", 2)
    fault_proxy.inject("throttle", 2)
    with caplog.at_level(logging.WARNING, logger="collectors"):
        with running_item(c, c.work_items()[0]):
            events = read_events(fast_kafka, topic, 120, timeout=60, settle=0.5)
    assert sorted(e["body"] for e in events) == sorted(f"event {i}" for i in range(120))
    assert metric("logtide_collector_throttles_total", collector="cloudwatch") - throttles >= 6
    assert metric("logtide_collector_errors_total", collector="cloudwatch", kind="server") - before["server"] >= 3
    assert (
        metric("logtide_collector_errors_total", collector="cloudwatch", kind="credentials") - before["credentials"]
        >= 2
    )
    assert any("refused the credentials" in r.getMessage() for r in caplog.records)
    assert c.aws.rates["us-east-1"].rate <= c.config.max_requests_per_second
    c.close()


@pytest.mark.timeout(60)
def test_log_group_deleted_mid_run_keeps_checkpoint(fast_kafka, new_topic, moto_url, logs_client, aws_env, caplog):
    client = logs_client()
    group = unique("/app/doomed-")
    make_group(client, group)
    put(client, group, "s1", [f"before {i}" for i in range(30)])
    topic = new_topic(1)
    c = collector(fast_kafka, moto_url, topic, log_groups=[{"name": group}])
    gone = metric("logtide_collector_errors_total", collector="cloudwatch", kind="log_group_gone")
    with caplog.at_level(logging.WARNING, logger="collectors"):
        with running_item(c, c.work_items()[0]):
            assert len(read_events(fast_kafka, topic, 30, timeout=20)) == 30
            cp = wait_for(lambda: c.checkpoints.get(f"us-east-1/{group}"))
            client.delete_log_group(logGroupName=group)
            wait_for(
                lambda: metric("logtide_collector_errors_total", collector="cloudwatch", kind="log_group_gone") > gone
            )
    assert c.checkpoints.get(f"us-east-1/{group}")["cursor_ms"] >= cp["cursor_ms"]
    assert any("log group not found" in r.getMessage() for r in caplog.records)
    c.close()


@pytest.mark.timeout(60)
def test_two_regions_with_assumed_role(fast_kafka, new_topic, moto_url, logs_client, aws_env):
    group = unique("/app/multi-")
    for region in ("us-east-1", "eu-west-1"):
        client = logs_client(region)
        make_group(client, group)
        put(client, group, "s1", [f"{region} {i}" for i in range(10)])
    topic = new_topic(1)
    c = collector(
        fast_kafka,
        moto_url,
        topic,
        regions=["us-east-1", "eu-west-1"],
        log_groups=[{"name": group}],
        assume_role={"role_arn": "arn:aws:iam::123456789012:role/logtide-reader"},
    )
    items = c.work_items()
    assert len(items) == 2
    with running_item(c, items[0]), running_item(c, items[1]):
        events = read_events(fast_kafka, topic, 20, timeout=30)
    assert sorted({e["resource"]["cloud.region"] for e in events}) == ["eu-west-1", "us-east-1"]
    assert metric("logtide_collector_api_calls_total", collector="cloudwatch", call="AssumeRole") >= 2
    c.close()


def test_prefix_and_pattern_select_log_groups(fast_kafka, new_topic, moto_url, logs_client, aws_env):
    client = logs_client()
    prefix = unique("/ecs/payments-")
    for suffix in ("-prod", "-staging", "-dev"):
        client.create_log_group(logGroupName=prefix + suffix)
    c = collector(fast_kafka, moto_url, new_topic(1), log_groups=[{"prefix": prefix, "match": "-(prod|staging)$"}])
    selector = c.config.log_groups[0]
    assert c.work_items() == [f"us-east-1|prefix:{prefix}~-(prod|staging)$"]
    assert sorted(c.log_groups("us-east-1", selector, threading.Event())) == [prefix + "-prod", prefix + "-staging"]
    c.close()


def warnings_with(caplog, text: str) -> list:
    return [r for r in caplog.records if r.levelno >= logging.WARNING and text in r.getMessage()]


@pytest.mark.timeout(90)
def test_missing_permission_one_clear_line_then_nothing_lost(
    fast_kafka, new_topic, fault_proxy, logs_client, aws_env, caplog
):
    client = logs_client()
    group = unique("/app/denied-")
    make_group(client, group)
    put(client, group, "s1", [f"event {i}" for i in range(40)])
    topic = new_topic(1)
    c = collector(
        fast_kafka,
        fault_proxy.url,
        topic,
        log_groups=[{"name": group}],
        retry_initial_seconds=0.05,
        retry_max_seconds=0.1,
    )
    item = c.work_items()[0]
    before = metric("logtide_collector_errors_total", collector="cloudwatch", kind="access_denied")
    fault_proxy.inject("denied", 10_000)
    with caplog.at_level(logging.INFO, logger="collectors"):
        with running_item(c, item):
            wait_for(
                lambda: (
                    metric("logtide_collector_errors_total", collector="cloudwatch", kind="access_denied") - before
                    >= 10
                )
            )
            assert c.health.failing() == {item: "access_denied"} and not c.health.healthy()
            assert metric("logtide_collector_work_items_failing", collector="cloudwatch") == 1
            with fault_proxy.lock:
                fault_proxy.pending.clear()  # the permission is granted
            events = read_events(fast_kafka, topic, 40, timeout=30, settle=0.5)
            wait_for(c.health.healthy)
    assert sorted(e["body"] for e in events) == sorted(f"event {i}" for i in range(40))
    denied = warnings_with(caplog, "missing IAM permission logs:FilterLogEvents")
    assert len(denied) == 1 and denied[0].exc_info is None  # one line, no traceback per retry
    assert any(r.getMessage() == "work item recovered" for r in caplog.records)
    c.close()


@pytest.mark.timeout(90)
def test_no_credentials_said_so_then_picked_up(
    fast_kafka, new_topic, moto_url, logs_client, monkeypatch, tmp_path, caplog
):
    client = logs_client()
    group = unique("/app/nocreds-")
    make_group(client, group)
    put(client, group, "s1", [f"event {i}" for i in range(20)])
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    topic = new_topic(1)
    c = collector(fast_kafka, moto_url, topic, log_groups=[{"name": group}], retry_max_seconds=0.2)
    before = metric("logtide_collector_errors_total", collector="cloudwatch", kind="no_credentials")
    network = metric("logtide_collector_errors_total", collector="cloudwatch", kind="network")
    with caplog.at_level(logging.WARNING, logger="collectors"):
        with running_item(c, c.work_items()[0]):
            wait_for(
                lambda: (
                    metric("logtide_collector_errors_total", collector="cloudwatch", kind="no_credentials") - before
                    >= 3
                )
            )
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")  # credentials appear (a pod role, a fixed env)
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
            events = read_events(fast_kafka, topic, 20, timeout=30, settle=0.5)
    assert len({e["body"] for e in events}) == 20
    lines = warnings_with(caplog, "no AWS credentials found")
    assert len(lines) == 1 and "AWS_ACCESS_KEY_ID" in lines[0].getMessage() and lines[0].exc_info is None
    assert metric("logtide_collector_errors_total", collector="cloudwatch", kind="network") == network
    c.close()


@pytest.mark.timeout(60)
def test_vanished_named_group_warns_once_and_resumes(fast_kafka, new_topic, moto_url, logs_client, aws_env, caplog):
    client = logs_client()
    group = unique("/app/vanish-")
    topic = new_topic(1)
    c = collector(fast_kafka, moto_url, topic, log_groups=[{"name": group}])
    gone = metric("logtide_collector_errors_total", collector="cloudwatch", kind="log_group_gone")
    with caplog.at_level(logging.WARNING, logger="collectors"):
        with running_item(c, c.work_items()[0]):
            wait_for(
                lambda: (
                    metric("logtide_collector_errors_total", collector="cloudwatch", kind="log_group_gone") - gone >= 4
                )
            )  # four polls
            make_group(client, group)  # created after all
            put(client, group, "s1", ["finally here"])
            events = read_events(fast_kafka, topic, 1, timeout=20)
    assert [e["body"] for e in events] == ["finally here"]
    assert len(warnings_with(caplog, "log group not found")) == 1
    c.close()


def test_invalid_match_regex_refused_at_load(tmp_path):
    from logtide.config import ConfigError, load_config

    from logtide.collectors.config import CollectConfig

    path = tmp_path / "collect.yaml"
    path.write_text(
        "cloudwatch:\n  regions: [us-east-1]\n  log_groups:\n    - prefix: /ecs/\n      match: 'prod-(\\d+'\n"
    )
    with pytest.raises(ConfigError, match=r"collect.yaml:5.*match.*not a valid regular expression"):
        load_config(path, CollectConfig)


@pytest.mark.timeout(60)
def test_stream_filters_and_start_positions(fast_kafka, new_topic, moto_url, logs_client, aws_env):
    client = logs_client()
    group = unique("/app/streams-")
    make_group(client, group, ("web-1", "web-2", "worker-1"))
    old = int(time.time() * 1000) - 3 * 86400_000  # three days old
    for s in ("web-1", "web-2", "worker-1"):
        put(client, group, s, [f"{s} old"], ts_ms=old)
        put(client, group, s, [f"{s} new"])
    runs = {
        "names": ({"log_stream_names": ["web-2", "worker-1"]}, {}, {"web-2 new", "worker-1 new"}),
        "prefix": (
            {"log_stream_prefix": "web-"},
            {"start_position": "beginning"},
            {"web-1 old", "web-1 new", "web-2 old", "web-2 new"},
        ),
    }
    for name, (selector, extra, want) in runs.items():
        topic = new_topic(1)
        c = collector(fast_kafka, moto_url, topic, log_groups=[{"name": group, **selector}], **extra)
        with running_item(c, c.work_items()[0]):
            events = read_events(fast_kafka, topic, len(want), timeout=20, settle=1.0)
        assert {e["body"] for e in events} == want, name
        c.close()
    # start_position end: nothing of the past, only what comes after the start.
    topic = new_topic(1)
    c = collector(fast_kafka, moto_url, topic, log_groups=[{"name": group}], start_position="end")
    with running_item(c, c.work_items()[0]):
        wait_for(lambda: c.checkpoints.get(f"us-east-1/{group}"))
        put(client, group, "web-1", ["after start"], ts_ms=int(time.time() * 1000))
        events = read_events(fast_kafka, topic, 1, timeout=20, settle=1.0)
    assert [e["body"] for e in events] == ["after start"]
    c.close()


def test_lambda_json_records_typed_like_text_in_any_group():
    import json

    from logtide.collectors.cloudwatch.collector import to_event

    report = json.dumps(
        {
            "time": "2024-05-01T12:00:00.000Z",
            "type": "platform.report",
            "record": {
                "requestId": "r-9",
                "metrics": {
                    "durationMs": 12.5,
                    "billedDurationMs": 13,
                    "memorySizeMB": 128,
                    "maxMemoryUsedMB": 64,
                    "initDurationMs": 150.4,
                },
                "status": "success",
            },
        }
    )
    text = (
        "REPORT RequestId: r-9\tDuration: 12.50 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB\t"
        "Max Memory Used: 64 MB\tInit Duration: 150.40 ms\t"
    )
    as_json, as_text = lambda_report.parse(report), lambda_report.parse(text)
    assert as_json.pop("aws.lambda.status") == "success"
    assert as_json == as_text
    start = lambda_report.parse(
        json.dumps({"type": "platform.start", "record": {"requestId": "r-9", "version": "$LATEST"}})
    )
    assert start == lambda_report.parse("START RequestId: r-9 Version: $LATEST")
    # A function logging to a custom group (LoggingConfig): still parsed; its JSON app lines give a level.
    event, _ = to_event("us-east-1", "/custom/checkout", {"eventId": "1", "timestamp": 1, "message": report})
    assert event["attributes"]["aws.lambda.duration_ms"] == 12.5
    assert event["resource"]["cloud.platform"] == "aws_lambda"
    app, _ = to_event(
        "us-east-1",
        "/custom/checkout",
        {
            "eventId": "2",
            "timestamp": 1,
            "message": json.dumps(
                {"timestamp": "2024-05-01T12:00:00Z", "level": "WARN", "message": "slow", "requestId": "r-9"}
            ),
        },
    )
    assert app["severity_text"] == "WARN" and app["attributes"]["faas.invocation_id"] == "r-9"

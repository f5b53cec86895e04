"""A collector whose work item crash-loops (AccessDenied on every call) turns /healthz red, naming the
collector and the error; one that recovers turns green again once its failures age out."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from logtide.health import HealthPolicy, HealthServer
from logtide.role import Runtime
from logtide.transport import connect

from collect_helpers import unique, wait_for
from logtide.collectors.cloudwatch.collector import CloudWatchCollector
from logtide.collectors.cloudwatch.config import CloudWatchConfig
from logtide.collectors.work import WorkGroup


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Denied(CloudWatchCollector):
    """Every DescribeLogGroups is refused, as with an IAM role missing logs:DescribeLogGroups."""

    def log_groups(self, region, selector, stop, status=None):
        self.metrics.api_call("DescribeLogGroups")
        raise ClientError(
            {
                "Error": {
                    "Code": "AccessDeniedException",
                    "Message": "not authorized to perform: logs:DescribeLogGroups",
                }
            },
            "DescribeLogGroups",
        )


@pytest.mark.timeout(90)
def test_a_crash_looping_work_item_turns_healthz_red(fast_kafka, aws_env):
    health = HealthServer("127.0.0.1", 0).start()
    runtime = Runtime(fast_kafka, connect(fast_kafka), health, HealthPolicy(max_failures=3, period_seconds=60))
    config = CloudWatchConfig(
        regions=["us-east-1"],
        log_groups=[{"prefix": f"/denied/{unique('g')}"}],
        endpoint_url="http://127.0.0.1:1",
        topic=unique("test.raw.cw"),
    )
    collector = Denied(config, runtime.transport)
    group = WorkGroup(
        runtime.transport,
        collector,
        session_timeout_seconds=6,
        revoke_timeout=10,
        status=runtime.status("collect-cloudwatch"),
    )
    stop = threading.Event()
    t = threading.Thread(target=group.run, args=(stop,), daemon=True)
    t.start()
    try:
        assert get(health.url + "/healthz")[0] == 200
        code, body = wait_for(lambda: (r := get(health.url + "/healthz"))[0] == 503 and r, timeout=60)
        assert body["failing"] == ["collect-cloudwatch"]
        reason = body["reasons"]["collect-cloudwatch"]
        assert "failed 3 times within 60s" in reason and "AccessDeniedException" in reason
        assert get(health.url + "/readyz")[0] == 503  # not live: not ready either
    finally:
        stop.set()
        t.join(30)
        health.stop()
    assert not t.is_alive()

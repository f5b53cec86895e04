"""The /metrics, /healthz, /readyz endpoint every role serves (a real HTTP server on loopback)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from logtide.health import HealthServer

pytestmark = pytest.mark.timeout(30)


def get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read(), resp.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers["Content-Type"]


@pytest.fixture
def server():
    registry = CollectorRegistry()
    s = HealthServer("127.0.0.1", 0, registry=registry).start()
    s.test_registry = registry
    yield s
    s.stop()


def test_metrics_are_served_in_prometheus_format(server):
    c = Counter("logtide_test_things_total", "Things", ["kind"], registry=server.test_registry)
    c.labels("a").inc(3)
    code, body, ctype = get(server.url + "/metrics")
    assert code == 200
    assert ctype.startswith("text/plain")
    assert b'logtide_test_things_total{kind="a"} 3.0' in body


def test_healthz_and_readyz_ok_without_checks(server):
    for path in ("/healthz", "/readyz"):
        code, body, ctype = get(server.url + path)
        assert code == 200 and ctype == "application/json"
        assert json.loads(body) == {"ok": True, "failing": []}


def test_readyz_503_names_failing_checks(server):
    kafka_up = {"value": False}
    server.add_readiness("kafka", lambda: kafka_up["value"])
    server.add_readiness("sink", lambda: True)
    server.add_readiness("disk", lambda: 1 / 0)  # a check that raises is failing
    code, body, _ = get(server.url + "/readyz")
    assert code == 503
    assert json.loads(body) == {"ok": False, "failing": ["disk", "kafka"]}
    # readiness does not affect liveness
    code, _, _ = get(server.url + "/healthz")
    assert code == 200
    kafka_up["value"] = True
    server.add_readiness("disk", lambda: True)
    code, body, _ = get(server.url + "/readyz")
    assert code == 200 and json.loads(body)["failing"] == []


def test_failing_liveness_fails_both(server):
    server.add_liveness("loop", lambda: False)
    assert get(server.url + "/healthz")[0] == 503
    code, body, _ = get(server.url + "/readyz")
    assert code == 503 and json.loads(body)["failing"] == ["loop"]


def test_unknown_path_is_404_with_a_hint(server):
    code, body, _ = get(server.url + "/nope?x=1")
    assert code == 404 and b"/metrics" in body


def test_port_in_use_is_a_clear_error(server):
    with pytest.raises(OSError, match=rf"cannot serve metrics on 127.0.0.1:{server.port}.*http.port"):
        HealthServer("127.0.0.1", server.port)


def test_repeated_failures_of_a_service_fail_healthz_until_they_age_out(server):
    from logtide.health import HealthPolicy, ServiceStatus

    now = [1000.0]
    status = ServiceStatus("collect-x", HealthPolicy(max_failures=3, period_seconds=60), clock=lambda: now[0])
    server.add_status(status)
    status.failed("first")
    status.failed("second")
    assert get(server.url + "/healthz")[0] == 200  # two failures: below the bound
    now[0] += 30
    status.failed("AccessDenied on logs:FilterLogEvents")
    code, body, _ = get(server.url + "/healthz")
    assert code == 503
    assert json.loads(body) == {
        "ok": False,
        "failing": ["collect-x"],
        "reasons": {"collect-x": "failed 3 times within 60s, last: AccessDenied on logs:FilterLogEvents"},
    }
    now[0] += 31  # the first two are older than the period now
    assert get(server.url + "/healthz")[0] == 200


def test_a_waiting_service_fails_readyz_only_and_says_why(server):
    from logtide.health import ServiceStatus

    status = ServiceStatus("sink-audit")
    server.add_status(status)
    status.waiting("waiting for input topics to exist: logtide.route.audit")
    assert get(server.url + "/healthz")[0] == 200
    code, body, _ = get(server.url + "/readyz")
    assert code == 503 and json.loads(body)["reasons"] == {
        "sink-audit": "waiting for input topics to exist: logtide.route.audit"
    }
    status.ready()
    assert get(server.url + "/readyz")[0] == 200

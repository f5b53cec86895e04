"""The other steps on their own: normalize, filter, sample, ratelimit, route, aggregate, and the
pipeline's handling of a step that fails on an event."""

from __future__ import annotations

import orjson
import pytest

from logtide import envelope
from logtide.processors.pipeline import Pipeline, StepError, build_steps
from logtide.processors.steps import StepContext
from logtide.processors.steps.aggregate import OVERFLOW, WINDOW_EVENTS, Aggregate, AggregateConfig
from logtide.processors.steps.ratelimit import RateLimit, RateLimitConfig
from logtide.processors.steps.sample import Sample, SampleConfig
from tests.processors.conftest import make_event

CTX = StepContext(sinks=("monitoring", "audit", "analytics"))


def pipeline(*entries) -> Pipeline:
    return Pipeline(build_steps(list(entries), CTX))


def test_normalize_cri_and_docker():
    p = pipeline({"type": "normalize"})
    ((ev, _),) = p.run(make_event(1, body="2024-05-01T10:00:00.123456789Z stderr F boom happened"))
    assert ev["body"] == "boom happened" and ev["attributes"]["log.iostream"] == "stderr"
    assert ev["time"] == 1714557600123456789
    ((ev, _),) = p.run(make_event(2, body='{"log":"hello\\n","stream":"stdout","time":"2024-05-01T10:00:00Z"}'))
    assert ev["body"] == "hello" and ev["attributes"]["log.iostream"] == "stdout"


def test_normalize_lambda_report():
    ev = envelope.new_event(
        id="x",
        source="cloudwatch",
        resource={"aws.log.group.names": ["/aws/lambda/resize"]},
        body="REPORT RequestId: 3f2a-11 Duration: 102.25 ms Billed Duration: 103 ms "
        "Memory Size: 128 MB Max Memory Used: 70 MB Init Duration: 250.10 ms",
    )
    ((ev, _),) = pipeline({"type": "normalize"}).run(ev)
    assert ev["resource"]["service.name"] == "resize" and ev["resource"]["faas.name"] == "resize"
    a = ev["attributes"]
    assert (a["faas.duration_ms"], a["faas.billed_duration_ms"], a["faas.memory_used_mb"]) == (102.25, 103, 70)
    assert a["faas.coldstart"] is True and a["faas.invocation_id"] == "3f2a-11"


def test_normalize_salesforce_row():
    row = {
        "EVENT_TYPE": "Login",
        "USER_ID": "005xx0001",
        "CLIENT_IP": "203.0.113.9",
        "URI": "/login",
        "LOGIN_STATUS": "LOGIN_ERROR_INVALID_PASSWORD",
        "TIMESTAMP_DERIVED": "2024-05-01T10:00:00.000Z",
    }
    ev = envelope.new_event(id="sf", source="salesforce", body=row)
    ((ev, _),) = pipeline({"type": "normalize"}).run(ev)
    a = ev["attributes"]
    assert a["enduser.id"] == "005xx0001" and a["client.address"] == "203.0.113.9" and a["event.name"] == "Login"
    assert ev["body"] == "Login /login" and ev["severity_number"] == 17
    assert ev["time"] == 1714557600000000000


def test_normalize_fills_service_and_severity():
    ev = envelope.new_event(
        id="n", source="k8s", body="x", severity_text="warning", resource={"k8s.container.name": "api"}
    )
    ((ev, _),) = pipeline({"type": "normalize"}).run(ev)
    assert ev["severity_number"] == 13 and ev["resource"]["service.name"] == "api" and ev["time"]


def test_filter_drop_and_keep():
    p = pipeline({"type": "filter", "drop": 'body contains "healthz"'})
    assert p.run(make_event(1, body="GET /healthz 200")) == []
    assert len(p.run(make_event(2, body="GET /api 200"))) == 1
    p = pipeline({"type": "filter", "keep": "severity_number >= 13"})
    assert p.run(make_event(3, body="x")) == []
    with pytest.raises(Exception, match="exactly one"):
        pipeline({"type": "filter"})


def test_sample_is_deterministic_and_close_to_rate():
    s = Sample(SampleConfig(type="sample", rate=0.25), CTX)
    ids = [envelope.make_id("s", i) for i in range(4000)]
    kept = [i for i in ids if s.keeps(i)]
    assert 800 < len(kept) < 1200
    s2 = Sample(SampleConfig(type="sample", rate=0.25), CTX)
    assert kept == [i for i in ids if s2.keeps(i)]


def test_sample_only_when():
    p = pipeline({"type": "sample", "rate": 0.0, "when": "severity_number < 9"})
    assert p.run(make_event(1, body="x")) == []  # severity 0: sampled away
    ev = make_event(2, body="x")
    ev["severity_number"] = 17
    assert len(p.run(ev)) == 1


def test_ratelimit_per_service_with_overflow():
    now = [100.0]
    rl = RateLimit(RateLimitConfig(type="ratelimit", rate=10, burst=5, max_keys=2), CTX, clock=lambda: now[0])
    passed = {
        svc: sum(rl.process(make_event(i, service=svc)) is not None for i in range(20)) for svc in ("a", "b", "c", "d")
    }
    assert passed["a"] == 5 and passed["b"] == 5
    assert passed["c"] + passed["d"] == 5  # c and d share the overflow bucket
    now[0] += 0.5  # half a second refills 5 tokens
    assert sum(rl.process(make_event(i, service="a")) is not None for i in range(20)) == 5


def test_route_rules_default_and_drop():
    p = pipeline(
        {
            "type": "route",
            "rules": [
                {"when": "severity_number >= 17", "sinks": ["monitoring"]},
                {"when": 'resource["service.name"] == "auth"', "sinks": ["audit"], "stop": True},
                {"when": "true", "sinks": ["analytics"]},
            ],
        }
    )
    err = make_event(1, service="auth", level="x")
    err["severity_number"] = 17
    ((ev, sinks),) = p.run(err)
    assert sinks == ("monitoring", "audit") and ev["routes"] == ["monitoring", "audit"]
    ((ev, sinks),) = p.run(make_event(2, service="shop"))
    assert sinks == ("analytics",)
    p = pipeline({"type": "route", "rules": [{"when": "source == 'k8s'", "sinks": ["audit"]}]})
    assert p.run(make_event(3)) == []  # no rule, no default: dropped
    p = pipeline({"type": "route", "default": ["analytics"]})
    assert p.run(make_event(4))[0][1] == ("analytics",)


def test_aggregate_windows_and_bounded_series():
    agg = Aggregate(
        AggregateConfig(type="aggregate", window_seconds=10, grace_seconds=1, max_series=3, name="agg-t"), CTX
    )
    base = 1_700_000_000 * 10**9
    for i, svc in enumerate(["a", "a", "b", "c", "d", "e"]):
        ev = make_event(i, service=svc)
        ev.update(
            time=base + i, severity_text="ERROR" if svc == "a" else "INFO", severity_number=17 if svc == "a" else 9
        )
        agg.process(ev)
    agg.end_batch(now_ns=base + 5 * 10**9)  # window still open
    assert agg.emitted == []
    agg.end_batch(now_ns=base + 12 * 10**9)  # past end + grace: closed
    rows = {r["service"]: r for r in agg.emitted}
    assert rows["a"]["events"] == 2 and rows["a"]["errors"] == 2
    assert rows[OVERFLOW]["events"] == 2  # d and e: beyond max_series=3
    assert set(rows) == {"a", "b", "c", OVERFLOW}
    assert WINDOW_EVENTS.labels("agg-t", "a", "demo", "ERROR")._value.get() == 2
    late = make_event(9, service="a")
    late["time"] = base + 1
    agg.process(late)
    assert agg.late == 1


def test_step_failure_is_a_step_error_with_the_stage():
    bomb = '{"a":' * 200 + "1" + "}" * 200
    p = pipeline({"type": "parse", "name": "parse-json"})
    with pytest.raises(StepError) as exc:
        p.run(make_event(1, body=bomb))
    assert exc.value.stage == "parse-json" and "nested" in str(exc.value.cause)
    # a body that is merely broken JSON is plain text, not an error
    ((ev, _),) = p.run(make_event(2, body='{"a": 1'))
    assert ev["body"] == '{"a": 1'


def test_list_results_fan_out():
    from logtide.processors.steps.base import Step, register

    @register("test-split")
    class Split(Step):
        def process(self, event):
            return [dict(event, body=part) for part in event["body"].split("|")]

    p = pipeline({"type": "test-split"}, {"type": "route", "default": ["audit"]})
    out = p.run(make_event(1, body="a|b|c"))
    assert [ev["body"] for ev, _ in out] == ["a", "b", "c"]
    assert orjson.dumps(out[0][0])

"""Notifications over real HTTP: signatures and secret rotation, retries, a receiver down then
back (delivered once), 4xx not retried, rate limit, templates in the sandbox, Slack and PagerDuty."""

import time

import pytest
import yaml

from alert_helpers import S, T0, Receiver, config, event

from logtide.alerting import metrics
from logtide.alerting.engine import AlertEngine
from logtide.alerting.notifiers.pagerduty import dedup_key
from logtide.alerting.notifiers.webhook import H_SIGNATURE, H_TIMESTAMP, sign, verify
from logtide.alerting.rules import parse_rules
from logtide.alerting.store import Store

RULES = """
rules:
  - name: Boom
    kind: match
    condition: body contains "boom"
    group_by: [service.name]
    window: 1m
    annotations: {summary: "boom in {{ labels.service_name }}"}
"""


def engine(cfg, store=None):
    eng = AlertEngine(cfg, parse_rules(yaml.safe_load(RULES), "r.yaml"), store or Store(":memory:"))
    eng.delivery.start()
    return eng


def fire(eng, t=T0, service="checkout"):
    eng.ingest([(event(1, t, service=service), 0)])
    eng.advance_to(t + 11 * S)


def wait_idle(eng, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not eng.delivery.idle():
        time.sleep(0.05)


@pytest.mark.timeout(60)
def test_signed_webhook_with_secret_rotation(receiver):
    # the engine signs with [new, old]; this receiver only knows the old secret: still accepted
    eng = engine(config(receiver.url))
    try:
        fire(eng)
        [d] = receiver.wait_for(1)
        assert receiver.bad_signatures == 0
        sigs = d["headers"][H_SIGNATURE].split(",")
        assert len(sigs) == 2 and all(s.startswith("v1=") for s in sigs)
        ts = d["headers"][H_TIMESTAMP]
        assert sigs[0] == "v1=" + sign("new-secret", ts, d["raw"])
        assert verify(d["headers"], d["raw"], ["new-secret"]) and not verify(d["headers"], d["raw"], ["other"])
        assert not verify(d["headers"], d["raw"] + b" ", ["old-secret"])  # body tampered
        assert not verify(d["headers"], d["raw"], ["old-secret"], now=int(ts) + 3600)  # replayed later
        body = d["body"]
        assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "hook"
        assert set(body) >= {"groupKey", "groupLabels", "commonLabels", "commonAnnotations", "externalURL", "alerts"}
        a = body["alerts"][0]
        assert set(a) >= {"fingerprint", "startsAt", "endsAt", "generatorURL", "labels", "annotations", "status"}
        assert a["annotations"]["summary"] == "boom in checkout"
    finally:
        eng.delivery.stop()


@pytest.mark.timeout(60)
def test_wrong_secret_is_refused_and_not_retried():
    r = Receiver(secrets=["something-else"])
    eng = engine(config(r.url))
    try:
        fire(eng)
        deadline = time.monotonic() + 10
        while r.attempts < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        assert r.bad_signatures == 1 and r.attempts == 1  # 401 is a 4xx: not retried
        assert r.deliveries == []
        r.secrets = ["new-secret"]  # fixed: the next group_interval flush (1m of event time) tries again
        eng.ingest([(event(2, T0 + 30 * S), 0)])
        assert r.attempts == 1
        eng.ingest([(event(3, T0 + 75 * S), 0)])
        assert len(r.wait_for(1)) == 1
    finally:
        eng.delivery.stop()
        r.close()


@pytest.mark.timeout(60)
def test_receiver_down_then_back_is_delivered_once_and_not_again_after_restart(receiver, tmp_path):
    receiver.status = 503
    path = tmp_path / "state.db"
    eng = engine(config(receiver.url), Store(path))
    try:
        fire(eng)
        # it stays firing (an event every 30s) through several group_interval flushes while down
        for k in range(1, 11):
            eng.ingest([(event(10 + k, T0 + (11 + 30 * k) * S), 0)])
        deadline = time.monotonic() + 10
        while receiver.attempts < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert receiver.attempts >= 3 and receiver.deliveries == []
        receiver.status = 200
        receiver.wait_for(1)
        time.sleep(1.0)  # retries in flight would show up now
        assert len(receiver.deliveries) == 1
        eng.persist()
    finally:
        eng.delivery.stop()
        eng.store.close()
    # restart: the notification log says the receiver knows; no second page
    eng2 = engine(config(receiver.url), Store(path))
    try:
        for t in range(320, 400, 10):  # still firing (events keep coming); flushes find nothing new
            eng2.ingest([(event(99 + t, T0 + t * S), 0)])
        wait_idle(eng2)
        time.sleep(0.5)
        assert [b["status"] for b in receiver.bodies()] == ["firing"]
    finally:
        eng2.delivery.stop()


@pytest.mark.timeout(60)
def test_429_honours_retry_after_then_delivers(receiver):
    receiver.status = 429
    receiver.extra_headers = {"Retry-After": "0.2"}
    eng = engine(config(receiver.url))
    try:
        fire(eng)
        deadline = time.monotonic() + 10
        while receiver.attempts < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        receiver.status = 200
        assert len(receiver.wait_for(1)) == 1
    finally:
        eng.delivery.stop()


@pytest.mark.timeout(60)
def test_rate_limit_per_receiver(receiver):
    cfg = config(receiver.url)
    cfg.receivers[0].rate_limit = (
        type(cfg.receivers[0]).model_fields["rate_limit"].annotation.__args__[0](per_minute=60, burst=2)
    )
    eng = engine(cfg)
    try:
        before = metrics.RATE_LIMITED.labels("hook")._value.get()
        eng.ingest([(event(i, T0, service=f"svc{i}"), 0) for i in range(4)])  # 4 groups
        eng.advance_to(T0 + 11 * S)
        got = receiver.wait_for(4, timeout=15)
        assert len(got) == 4
        # a burst of 2, then one per second: a lower bound on spacing (slowness cannot break it)
        assert got[2]["at"] - got[0]["at"] >= 0.8 and got[3]["at"] - got[0]["at"] >= 1.8
        assert metrics.RATE_LIMITED.labels("hook")._value.get() > before
    finally:
        eng.delivery.stop()


SANDBOX_ESCAPES = [
    "{{ alert.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__base__.__subclasses__() }}",
    "{{ group.update({'x': 1}) }}",
    "{{ cycler.__init__.__globals__.os.system('id') }}",
    "{% for x in range(10**9) %}{% endfor %}",
    "{{ nope.nothing }}",  # undefined
]
# (a syntax error, "{{ alert.labels.alertname", is refused when the config loads: test_alerting_trust.py)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("template", SANDBOX_ESCAPES)
def test_template_escape_is_blocked_and_a_plain_message_is_sent(template):
    slack = Receiver()
    cfg = config(slack.url, receivers=[{"name": "hook", "slack": [{"url": slack.url, "text": template}]}])
    eng = engine(cfg)
    try:
        before = metrics.TEMPLATE_ERRORS.labels("hook")._value.get()
        fire(eng)
        [d] = slack.wait_for(1)
        msg = d["body"]
        assert metrics.TEMPLATE_ERRORS.labels("hook")._value.get() == before + 1
        assert "[FIRING] Boom" in msg["text"] and "service_name=checkout" in msg["text"]
        assert "subclasses" not in msg["text"] and "uid=" not in msg["text"] and "<class" not in msg["text"]
        assert [b["type"] for b in msg["blocks"]] == ["header", "section", "context"]
    finally:
        eng.delivery.stop()
        slack.close()


def test_a_template_that_does_not_compile_is_refused_at_load_not_at_the_first_alert():
    # Was a render-time fallback; issue 14: templates are compiled when the config is loaded (and by --check).
    from logtide.config import ConfigError, validate_config
    from logtide.alerting.config import AlertConfig

    data = {
        "rules_files": ["r.yaml"],
        "route": {"receiver": "hook"},
        "receivers": [{"name": "hook", "slack": [{"url": "http://x", "text": "{{ alert.labels.alertname"}]}],
    }
    with pytest.raises(ConfigError, match=r"receivers.0.slack.0.text.*template does not compile"):
        validate_config(data, AlertConfig, "alert.yaml")


@pytest.mark.timeout(60)
def test_slack_template_sees_alert_group_and_sample_events():
    slack = Receiver()
    cfg = config(
        slack.url,
        receivers=[
            {
                "name": "hook",
                "slack": [
                    {
                        "url": slack.url,
                        "title": "{{ group.status }} {{ group.groupLabels.service_name }}",
                        "text": "{{ alert.labels.alertname }}: {{ events[-1].body }} ({{ alerts | length }})",
                    }
                ],
            }
        ],
    )
    eng = engine(cfg)
    try:
        fire(eng)
        [d] = slack.wait_for(1)
        assert d["body"]["blocks"][0]["text"]["text"] == "firing checkout"
        assert d["body"]["blocks"][1]["text"]["text"] == "Boom: boom (1)"
        assert d["body"]["text"].startswith("firing checkout\n")
    finally:
        eng.delivery.stop()
        slack.close()


@pytest.mark.timeout(60)
def test_pagerduty_trigger_then_resolve_with_same_dedup_key():
    pd = Receiver()
    cfg = config(pd.url, receivers=[{"name": "hook", "pagerduty": [{"routing_key": "R" * 32, "url": pd.url}]}])
    eng = engine(cfg)
    try:
        fire(eng)
        pd.wait_for(1)
        for t in range(80, 200, 10):  # the match window (1m) ends: resolved at the next flush
            eng.advance_to(T0 + t * S)
        first, second = pd.wait_for(2)
        trig, res = first["body"], second["body"]
        assert trig["event_action"] == "trigger" and res["event_action"] == "resolve"
        assert (
            trig["dedup_key"] == res["dedup_key"] == dedup_key(eng.nflog.entries and next(iter(eng.nflog.entries))[0])
        )
        assert trig["routing_key"] == "R" * 32
        assert trig["payload"]["severity"] == "warning" and "Boom" in trig["payload"]["summary"]
    finally:
        eng.delivery.stop()
        pd.close()


@pytest.mark.timeout(60)
def test_an_alert_that_fires_and_resolves_while_the_receiver_is_down_is_told_both_once(receiver):
    receiver.status = 503
    eng = engine(config(receiver.url))
    try:
        fire(eng)  # the firing notification is retried while the receiver is down
        for t in range(20, 200, 10):  # the 1m match window ends: resolved at a group_interval flush
            eng.advance_to(T0 + t * S)
        deadline = time.monotonic() + 10
        while receiver.attempts < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        receiver.status = 200
        receiver.wait_for(2)
        wait_idle(eng)
        time.sleep(0.5)  # a third delivery would show up now
        # the resolved one does not replace the firing one nobody got: both arrive, in order, once
        assert [b["status"] for b in receiver.bodies()] == ["firing", "resolved"]
    finally:
        eng.delivery.stop()

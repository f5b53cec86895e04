"""Rule kinds, lifecycle, grouping and muting, with time driven by event timestamps (no sleeps)."""

import yaml

from alert_helpers import S, T0, config, event

from logtide.alerting.engine import AlertEngine
from logtide.alerting.evaluators import NewTermEvaluator
from logtide.alerting.rules import parse_rules
from logtide.alerting.store import Store


class Sent(list):
    """Notifications 'delivered' at once (logged like a successful send)."""

    engine = None

    def __call__(self, n):
        self.append(n)
        self.engine.nflog.log(n.group_key, n.integration, n.firing, n.resolved, n.now)


def make(rules_yaml: str, store=None, **cfg):
    sent = Sent()
    eng = AlertEngine(
        config(**cfg), parse_rules(yaml.safe_load(rules_yaml), "rules.yaml"), store or Store(":memory:"), notify=sent
    )
    sent.engine = eng
    return eng, sent


def states(eng):
    return {(a.labels["alertname"], a.labels.get("service_name", "")): a.state for a in eng.states.alerts.values()}


def feed(eng, events):
    eng.ingest([(e, 0) for e in events])


THRESHOLD = """
rules:
  - name: Errors
    kind: threshold
    condition: severity_number >= 17
    group_by: [service.name]
    count: 5
    window: 1m
    for: 20s
    annotations: {summary: "{{ value }} errors in {{ labels.service_name }}"}
"""


def test_threshold_pending_firing_resolved_with_notifications():
    eng, sent = make(THRESHOLD)
    feed(eng, [event(i, T0 + i * S) for i in range(4)] + [event(9, T0, level="INFO")])
    assert states(eng) == {}
    feed(eng, [event(4, T0 + 4 * S)])
    assert states(eng) == {("Errors", "checkout"): "pending"}
    feed(eng, [event(5, T0 + 25 * S)])  # still 6 in the window, past `for`
    assert states(eng) == {("Errors", "checkout"): "firing"}
    eng.advance_to(T0 + 36 * S)  # group_wait 10s after firing
    assert len(sent) == 1 and sent[0].status == "firing"
    payload = sent[0].payload()
    assert payload["version"] == "4" and payload["groupLabels"] == {"alertname": "Errors", "service_name": "checkout"}
    assert payload["alerts"][0]["annotations"]["summary"] == "6 errors in checkout"
    eng.advance_to(T0 + 90 * S)  # window empty → resolved
    assert states(eng) == {("Errors", "checkout"): "resolved"}
    eng.advance_to(T0 + 100 * S)  # next group_interval tick
    assert [n.status for n in sent] == ["firing", "resolved"]
    eng.advance_to(T0 + 200 * S)
    assert eng.states.alerts == {}  # forgotten after the resolved notification
    assert len(sent) == 2


def test_pending_that_does_not_last_never_notifies():
    eng, sent = make(THRESHOLD)
    feed(eng, [event(i, T0 + i * S) for i in range(5)])
    eng.advance_to(T0 + 70 * S)
    eng.advance_to(T0 + 200 * S)
    assert states(eng) == {} and sent == []


FLAPPY = """
rules:
  - name: Flappy
    kind: match
    condition: body contains "boom"
    group_by: [service.name]
    window: 10s
    keep_firing_for: 1m
"""


def test_flapping_condition_pages_once():
    eng, sent = make(FLAPPY)
    # on for one event, off for 20s (window 10s → false), on again …, for 5 minutes
    for k in range(15):
        feed(eng, [event(k, T0 + k * 20 * S)])
        eng.advance_to(T0 + (k * 20 + 15) * S)
    assert states(eng) == {("Flappy", "checkout"): "firing"}  # keep_firing_for bridged every gap
    assert [n.status for n in sent] == ["firing"]
    eng.advance_to(T0 + 500 * S)
    eng.advance_to(T0 + 600 * S)
    assert [n.status for n in sent] == ["firing", "resolved"]


def test_flapping_without_keep_firing_for_alternates():
    eng, sent = make(FLAPPY.replace("keep_firing_for: 1m", "keep_firing_for: 0s").replace("window: 10s", "window: 30s"))
    resolutions = 0
    for k in range(10):  # firing ~30s, quiet ~10s, ten times
        feed(eng, [event(k, T0 + k * 40 * S)])
        for t in range(5, 40, 5):
            eng.advance_to(T0 + (k * 40 + t) * S)
            resolutions += states(eng).get(("Flappy", "checkout")) == "resolved"
    assert resolutions >= 10
    # without keep_firing_for every cycle that outlives group_wait is a page and a resolve (as in
    # Alertmanager): never more than one notification per state change, never two firings in a row
    statuses = [n.status for n in sent]
    assert 2 <= len(statuses) <= 10 and statuses[0] == "firing"
    assert all(a != b for a, b in zip(statuses, statuses[1:]))


def test_ratio_needs_min_total():
    eng, _ = make("""
rules:
  - name: Ratio
    kind: ratio
    errors: severity_number >= 17
    group_by: [service.name]
    above: 0.5
    min_total: 10
    window: 1m
""")
    feed(eng, [event(i, T0 + i * S) for i in range(3)])  # 3/3 errors but too few events
    assert states(eng) == {}
    feed(
        eng,
        [event(10 + i, T0 + (3 + i) * S, level="INFO") for i in range(4)]
        + [event(20 + i, T0 + (7 + i) * S) for i in range(3)],
    )  # 6 errors / 10
    assert states(eng) == {("Ratio", "checkout"): "firing"}
    assert list(eng.states.alerts.values())[0].value == 0.6


def test_spike_up_against_reference():
    eng, _ = make("""
rules:
  - name: Spike
    kind: spike
    group_by: [service.name]
    window: 1m
    reference: 5m
    factor: 3
    min_reference: 10
""")
    # reference: 1 event / 10s for 5 minutes (30 events: 6 per minute expected)
    feed(eng, [event(i, T0 + i * 10 * S, level="INFO") for i in range(30)])
    eng.advance_to(T0 + 360 * S)
    assert states(eng) == {}
    feed(eng, [event(100 + i, T0 + 360 * S + i * S, level="INFO") for i in range(30)])  # 30 in a minute: x5
    assert states(eng) == {("Spike", "checkout"): "firing"}


def test_absence_fires_for_expected_key_never_seen_and_for_key_gone_quiet():
    eng, _ = make("""
rules:
  - name: Silent
    kind: absence
    group_by: [service.name]
    window: 1m
    expected: [payments]
    expect_seen_within: 1h
""")
    feed(eng, [event(i, T0 + i * S, service="checkout", level="INFO") for i in range(30)])
    assert states(eng) == {}  # no full window observed yet
    eng.advance_to(T0 + 61 * S)
    assert states(eng) == {("Silent", "payments"): "firing"}  # expected, never seen
    eng.advance_to(T0 + 95 * S)
    assert states(eng) == {("Silent", "payments"): "firing", ("Silent", "checkout"): "firing"}
    feed(eng, [event(99, T0 + 96 * S, service="checkout", level="INFO")])
    assert states(eng) == {("Silent", "payments"): "firing", ("Silent", "checkout"): "resolved"}


def test_new_term_after_learning():
    eng, _ = make("""
rules:
  - name: NewTerm
    kind: new_term
    field: attributes.code
    group_by: [service.name]
    learning: 1m
    window: 5m
""")
    feed(eng, [event(i, T0 + i * S, code=f"E{i % 3}") for i in range(30)])  # learning E0..E2
    feed(eng, [event(50, T0 + 70 * S, code="E1")])
    assert states(eng) == {}
    feed(eng, [event(51, T0 + 80 * S, code="E42")])
    alerts = list(eng.states.alerts.values())
    assert [a.labels["code"] for a in alerts] == ["E42"] and alerts[0].state == "firing"
    feed(eng, [event(52, T0 + 90 * S, code="E42")])  # known now: no second alert
    assert len(eng.states.alerts) == 1


def test_event_storm_is_bounded():
    eng, _ = make("""
rules:
  - name: PerUser
    kind: threshold
    group_by: [attributes.user]
    count: 1000
    window: 1h
    max_keys: 500
  - name: NewUser
    kind: new_term
    field: attributes.user
    learning: 1s
    max_terms: 1000
    max_keys: 200
""")
    for b in range(20):  # 20k events, each with a new user
        feed(eng, [event(i, T0 + (b * 1000 + i) * 1000_000, user=f"u{b}-{i}") for i in range(1000)])
    per_user = eng.evaluators["PerUser"]
    new_user = eng.evaluators["NewUser"]
    assert isinstance(new_user, NewTermEvaluator)
    assert len(per_user.series) == 500
    assert len(new_user.terms) == 1000
    assert len(new_user.series) == 200
    assert len(eng.states.alerts) <= 200
    assert all(len(s.samples) <= 3 for s in per_user.series.values())


ROUTED = """
rules:
  - name: Crit
    kind: match
    condition: severity_number >= 21
    group_by: [service.name]
    severity: critical
  - name: Warn
    kind: match
    condition: severity_number >= 17 and severity_number < 21
    group_by: [service.name]
    severity: warning
"""


def two_receivers(**over):
    return dict(
        route={
            "receiver": "hook",
            "group_by": ["alertname", "service_name"],
            "group_wait": "0s",
            "group_interval": "1m",
            "routes": [
                {"matchers": ['severity="critical"'], "receiver": "pager", "continue": True},
                {"matchers": ['service_name=~"check.*"'], "receiver": "hook"},
            ],
        },
        receivers=[
            {"name": "hook", "webhook": [{"url": "http://127.0.0.1:9/"}]},
            {"name": "pager", "pagerduty": [{"routing_key": "k", "url": "http://127.0.0.1:9/"}]},
        ],
        **over,
    )


def test_routing_continue_and_inhibition():
    eng, sent = make(
        ROUTED,
        **two_receivers(
            inhibit_rules=[
                {
                    "source_matchers": ['severity="critical"'],
                    "target_matchers": ['severity="warning"'],
                    "equal": ["service_name"],
                }
            ]
        ),
    )
    feed(eng, [event(1, T0, level="FATAL"), event(2, T0, level="ERROR"), event(3, T0, service="cart", level="ERROR")])
    eng.advance_to(T0 + S)
    got = sorted((n.receiver, n.common_labels["alertname"], n.common_labels["service_name"]) for n in sent)
    # critical → pager, and (continue) → hook; checkout's warning is inhibited by its critical; cart's is not
    assert got == [("hook", "Crit", "checkout"), ("hook", "Warn", "cart"), ("pager", "Crit", "checkout")]


def test_silence_mutes_until_expired():
    eng, sent = make(ROUTED, **two_receivers())
    eng.silences.add(['service_name="cart"'], T0 - S, T0 + 100 * S, "alice", "deploy", T0)
    feed(eng, [event(3, T0, service="cart", level="ERROR")])
    eng.advance_to(T0 + 30 * S)
    assert sent == []
    assert eng.alerts_api()[0]["silencedBy"]
    sid = eng.silences.list()[0].id
    eng.silences.expire(sid, T0 + 40 * S)
    feed(eng, [event(4, T0 + 50 * S, service="cart", level="ERROR")])
    eng.advance_to(T0 + 70 * S)
    assert [n.common_labels["service_name"] for n in sent] == ["cart"]


def test_mute_time_interval():
    over = two_receivers(
        time_intervals=[
            {"name": "night", "time_intervals": [{"times": [{"start_time": "00:00", "end_time": "06:00"}]}]}
        ]
    )
    over["route"]["mute_time_intervals"] = ["night"]
    eng, sent = make(ROUTED, **over)
    feed(eng, [event(3, T0, service="cart", level="ERROR")])  # T0 is midnight UTC
    eng.advance_to(T0 + 120 * S)
    assert sent == []
    feed(eng, [event(4, T0 + 6 * 3600 * S, service="cart", level="ERROR")])
    eng.advance_to(T0 + 6 * 3600 * S + 61 * S)
    assert len(sent) == 1


def test_repeat_interval():
    eng, sent = make(FLAPPY.replace("window: 10s", "window: 3h"))
    feed(eng, [event(1, T0)])
    for m in range(1, 130):
        eng.advance_to(T0 + m * 60 * S)
    assert [n.status for n in sent] == ["firing", "firing", "firing"]  # at 10s, then every hour


def test_state_survives_restart_without_double_page(tmp_path):
    path = tmp_path / "state.db"
    eng, sent = make(THRESHOLD, store=Store(path))
    feed(eng, [event(i, T0 + i * S) for i in range(6)])
    eng.advance_to(T0 + 30 * S)
    eng.persist()
    eng.store.close()
    assert [n.status for n in sent] == ["firing"] or sent == []
    first = len(sent)
    eng2, sent2 = make(THRESHOLD, store=Store(path))
    assert states(eng2) == states(eng)
    eng2.advance_to(T0 + 45 * S)
    eng2.advance_to(T0 + 50 * S)
    assert len(sent2) + first == 1  # one firing notification across both lives
    # windows survived too: one more error keeps it firing
    assert eng2.evaluators["Errors"].series[("checkout",)].total == 6


def test_duplicate_events_are_counted_once():
    eng, _ = make(THRESHOLD)
    events = [event(i, T0 + i * S) for i in range(4)]
    feed(eng, events)
    feed(eng, events)  # re-sent upstream with the same deterministic ids
    assert eng.evaluators["Errors"].series[("checkout",)].total == 4
    assert states(eng) == {}


def test_spike_down():
    eng, _ = make("""
rules:
  - name: Drop
    kind: spike
    group_by: [service.name]
    window: 1m
    reference: 5m
    factor: 4
    direction: down
    min_reference: 10
""")
    feed(eng, [event(i, T0 + i * 5 * S, level="INFO") for i in range(72)])  # 12/min for 6 minutes
    assert states(eng) == {}
    eng.advance_to(T0 + 420 * S)  # a quiet minute: 0 against 12 expected
    assert states(eng) == {("Drop", "checkout"): "firing"}

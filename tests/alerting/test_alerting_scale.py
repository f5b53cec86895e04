"""Alerting at high cardinality: an evaluation looks at the keys that changed (touched by events or
due in time), with the same results as looking at every key; max_groups bounds a rule under a flood
of new keys; `logtide alert backtest` over a window of a topic on the real broker."""

import random

import pytest
import yaml
from prometheus_client import REGISTRY

from alert_helpers import S, T0, event

from logtide import envelope
from logtide.transport import connect

from logtide.alerting.backtest import Backtest
from logtide.alerting.engine import AlertEngine
from logtide.alerting.rules import parse_rules

PER_USER = """
rules:
  - name: PerUser
    kind: threshold
    group_by: [attributes.user]
    count: 3
    window: 1m
"""


def test_a_batch_evaluates_the_keys_it_touched_and_the_keys_due():
    bt = Backtest(parse_rules(yaml.safe_load(PER_USER), "r.yaml"))
    eng: AlertEngine = bt.engine
    ev = eng.evaluators["PerUser"]
    bt.feed([event(i, T0 + i * 1000, user=f"u{i}") for i in range(5000)])  # 5000 keys, one event each
    looked: list = []
    holds = ev.holds
    ev.holds = lambda key, s, now: looked.append(key) or holds(key, s, now)
    bt.feed([event(10_000 + i, T0 + 10 * S, user="u7") for i in range(3)])
    assert looked == [("u7",)]  # one evaluation (one event time), of the one key touched
    assert [a.labels["user"] for a in eng.states.alerts.values()] == ["u7"]
    looked.clear()
    eng.advance_to(T0 + 11 * S)  # nothing due: nothing looked at
    assert looked == []
    eng.advance_to(T0 + 62 * S)  # the 5000 single events left the window: each key once
    assert sorted(looked) == sorted((f"u{i}",) for i in range(5000))
    assert len(ev.series) == 1  # the expired keys are gone; u7's events are still in its window
    looked.clear()
    eng.advance_to(T0 + 80 * S)  # u7 expires: resolved
    assert looked == [("u7",)] and [a.state for a in eng.states.alerts.values()] == ["resolved"]


ALL_KINDS = """
rules:
  - {name: thr, kind: threshold, condition: 'severity_text == "ERROR"', group_by: [attributes.user],
     window: 1m, count: 5, for: 20s, keep_firing_for: 30s}
  - {name: m, kind: match, condition: 'body contains "panic"', group_by: [attributes.user], window: 2m}
  - {name: rat, kind: ratio, errors: 'severity_text == "ERROR"', group_by: [attributes.svc], window: 2m,
     above: 0.3, min_total: 5}
  - {name: sp, kind: spike, group_by: [attributes.svc], window: 1m, reference: 5m, factor: 2, min_reference: 5}
  - {name: ab, kind: absence, group_by: [attributes.svc], window: 2m, expected: [a, b, c, z]}
  - {name: nt, kind: new_term, field: attributes.user, group_by: [attributes.svc], learning: 5m, window: 3m}
"""


def _events(seed: int) -> list[dict]:
    rnd = random.Random(seed)
    out = []
    for i in range(3000):
        t = T0 + int(i * 0.6 * S) + rnd.randrange(S // 2)
        burst = 600 < i < 900 or 2500 < i < 2600
        svc = rnd.choice("abc") if not 1500 < i < 2200 else rnd.choice("ab")
        level = "ERROR" if (burst and rnd.random() < 0.7) or rnd.random() < 0.05 else "INFO"
        body = "panic here" if rnd.random() < 0.003 else "hello"
        out.append(event(i, t, level=level, body=body, user=f"u{rnd.randint(0, 8 if i < 700 else 30)}", svc=svc))
    return sorted(out, key=lambda e: e["time"])


@pytest.mark.parametrize("seed", [1, 2])
def test_results_are_those_of_evaluating_every_key(seed):
    """The incremental engine against the same engine made to look at every key at every evaluation
    (what it did before): the same transitions, at the same times, and the same notifications."""
    rules = parse_rules(yaml.safe_load(ALL_KINDS), "r.yaml")
    runs = []
    for sweep in (False, True):
        lines: list[str] = []
        bt = Backtest(rules, echo=lines.append)
        if sweep:
            printing = bt.engine.after_evaluate

            def every_key(eng=bt.engine, printing=printing):
                printing()
                for ev in eng.evaluators.values():
                    ev.full = True

            bt.engine.after_evaluate = every_key
        events = _events(seed)
        for i in range(0, len(events), 500):
            bt.feed(events[i : i + 500])
        bt.finish()
        runs.append((lines, bt.notifications))
    (lines, sent), (ref_lines, ref_sent) = runs
    assert len(ref_lines) > 20 and len(ref_sent) > 5  # the rules did fire and resolve
    assert lines == ref_lines
    assert sent == ref_sent


def test_a_rule_at_max_groups_under_a_flood_of_new_keys(caplog):
    rules = parse_rules(yaml.safe_load(PER_USER.replace("window: 1m", "window: 1m\n    max_groups: 100")), "r.yaml")
    bt = Backtest(rules)
    eng = bt.engine
    ev = eng.evaluators["PerUser"]
    dropped = lambda: REGISTRY.get_sample_value("logtide_alerting_groups_dropped_total", {"rule": "PerUser"}) or 0.0
    before = dropped()
    bt.feed([event(i, T0 + i * 1000, user=f"old{i}") for i in range(100)])  # 100 groups: the cap
    for b in range(10):  # 20,000 events of new users, and the old users still erring
        flood = [event(b * 10_000 + i, T0 + S + b * S + i * 1000, user=f"new{b}-{i}") for i in range(2000)]
        flood += [event(900_000 + b * 100 + i, T0 + S + b * S + 5000 + i, user=f"old{i}") for i in range(5)]
        bt.feed(flood)
    assert len(ev.series) == 100
    assert dropped() - before == 20_000
    # the groups it had still alert (old0..old4 had 1 + 10 events in the window)
    firing = sorted(a.labels["user"] for a in eng.states.alerts.values() if a.state == "firing")
    assert firing == [f"old{i}" for i in range(5)]
    warned = [r for r in caplog.records if "max_groups" in r.getMessage()]
    assert len(warned) == 1


@pytest.mark.timeout(90)
def test_backtest_over_a_topic_window(tmp_path, fast_kafka, new_topic, logtide):
    """Records before --from and after --to are not evaluated; nobody is notified."""
    topic = new_topic(partitions=2)
    transport = connect(fast_kafka)
    p = transport.producer()
    base_ms = T0 // 1_000_000
    # 3 errors before the window, 4 in it (one alert), 5 after it; record time = event time
    for i, (svc, sec) in enumerate(
        [("early", s) for s in (0, 1, 2)]
        + [("inside", s) for s in (100, 101, 102, 103)]
        + [("late", s) for s in (300, 301, 302, 303, 304)]
    ):
        e = event(i, T0 + sec * S, service=svc)
        p.produce(topic, envelope.encode(e), key=svc.encode(), timestamp_ms=base_ms + sec * 1000)
    p.produce(topic, b"not an envelope", key=b"x", timestamp_ms=base_ms + 101_000)
    assert p.flush(10) == 0
    p.close()
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: Errs, kind: threshold, group_by: [service.name], count: 3, window: 1m}\n")
    cfg = tmp_path / "alert.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap": fast_kafka.bootstrap},
                "topics": [topic],
                "rules_files": ["rules.yaml"],
                "route": {"receiver": "hook", "group_by": ["alertname"], "group_wait": "0s"},
                "receivers": [{"name": "hook", "webhook": [{"url": "http://127.0.0.1:9/never-called"}]}],
            }
        )
    )
    t_from = envelope_time(T0 + 50 * S)
    out = logtide("alert", "backtest", "--config", str(cfg), "--from", t_from, "--to", envelope_time(T0 + 200 * S))
    assert out.returncode == 0, out.stderr
    assert 'FIRING   {alertname="Errs", service_name="inside", severity="warning"}' in out.stdout
    assert "early" not in out.stdout and "late" not in out.stdout
    assert "4 records, 1 not envelopes (skipped)" in out.stdout
    assert "Errs: 1 alerts fired (1 firings)" in out.stdout
    assert "4 events, 1 rules: 1 alerts fired, 2 notifications" in out.stdout  # printed, not sent
    bad = logtide("alert", "backtest", "--config", str(cfg), "--from", "2h", "--to", "3h")
    assert bad.returncode == 2 and "must be after" in bad.stderr


def envelope_time(ns: int) -> str:
    from logtide.timeutil import format_rfc3339

    return format_rfc3339(ns, digits=3)

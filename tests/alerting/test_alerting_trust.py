"""Alerting you can trust: clocks (a future stamp, a backlog after a stop, the saved watermark),
forwarding to Debian's Alertmanager with a short resolve_timeout, a rule edited while firing,
silences and templates refused when broken, and Alertmanager's own amtool against logtide's API."""

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from alert_helpers import S, T0, Receiver, config, event, free_port, running_alertmanager, serving

from logtide import envelope
from logtide.config import ConfigError
from logtide.transport import connect

from logtide.alerting import metrics
from logtide.alerting.config import load_alert_config
from logtide.alerting.engine import AlertEngine, Ticker
from logtide.alerting.rules import load_rules, parse_rules
from logtide.alerting.store import Batch, Store

ROOT = Path(__file__).resolve().parents[2]
AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"
BURST = """rules:
  - name: Burst
    kind: threshold
    condition: severity_number >= 17
    group_by: [service.name]
    count: 5
    window: WINDOW
    annotations: {summary: "{{ value }} errors in {{ labels.service_name }}"}
"""


def metric(text: str, name: str, **labels) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    want = {k: str(v) for k, v in labels.items()}
    for line in text.splitlines():
        m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if m and m.group(1) == name:
            got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            if all(got.get(k) == v for k, v in want.items()):
                return float(m.group(3))
    return 0.0


def firing_for(receiver: Receiver, service: str) -> list[dict]:
    return [
        b
        for b in receiver.bodies()
        if b["status"] == "firing" and any(a["labels"].get("service_name") == service for a in b["alerts"])
    ]


class AlertProcess:
    """`logtide alert --config FILE` as users run it."""

    def __init__(self, cfg: Path, log: Path):
        self.cfg, self.log, self.proc = cfg, log, None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "logtide.cli", "alert", "--config", str(self.cfg)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(30)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def wait_until(predicate, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.2)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    pytest.fail(f"timed out waiting for {what}\n{tail}")


@pytest.mark.timeout(150)
def test_a_future_stamp_blinds_nothing_and_a_backlog_after_a_stop_fires(tmp_path, fast_kafka, new_topic):
    """One INFO event an hour ahead, then a burst: it pages, before and after a restart; errors
    logged while the engine was stopped page after it starts again (caught up in event time);
    older than the catch-up horizon is counted per rule, not paged."""
    topic = new_topic(1)
    receiver = Receiver(secrets=["s3cret"])
    (tmp_path / "rules.yaml").write_text(BURST.replace("WINDOW", "10s"))
    http_port = free_port()
    cfg = tmp_path / "alert.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap": fast_kafka.bootstrap, "client": "confluent"},
                "http": {"host": "127.0.0.1", "port": http_port},
                "topics": [topic],
                "group_id": f"trust-{uuid.uuid4().hex[:8]}",
                "session_timeout_seconds": 6,
                "rules_files": ["rules.yaml"],
                "state_path": str(tmp_path / "alerting.db"),
                "clock": {"mode": "hybrid", "lateness_seconds": 2, "catch_up_horizon_seconds": 600},
                "api": {"host": "127.0.0.1", "port": 0},
                "route": {
                    "receiver": "hook",
                    "group_by": ["alertname", "service_name"],
                    "group_wait": "5s",
                    "group_interval": "2s",
                    "repeat_interval": "4h",
                },
                "receivers": [
                    {
                        "name": "hook",
                        "webhook": [{"url": receiver.url, "secrets": ["s3cret"]}],
                        "retry": {"initial_seconds": 0.1, "max_seconds": 1},
                    }
                ],
            }
        )
    )
    producer = connect(fast_kafka).producer()

    def send(service: str, n: int, t: int, level: str = "ERROR") -> None:
        for i in range(n):
            e = envelope.new_event(
                id=f"{service}-{uuid.uuid4().hex}",
                body=f"boom {i}",
                source="test",
                time=t,
                observed_time=t,
                severity_text=level,
                resource={"service.name": service},
            )
            producer.produce(topic, envelope.encode(e), key=service.encode())
        assert producer.flush(10) == 0

    def scrape() -> str:
        try:
            return requests.get(f"http://127.0.0.1:{http_port}/metrics", timeout=2).text
        except requests.RequestException:
            return ""

    alert = AlertProcess(cfg, tmp_path / "alert.log")
    try:
        alert.start()
        send("skewed", 1, time.time_ns() + 3600 * S, level="INFO")  # a node an hour ahead
        wait_until(
            lambda: metric(scrape(), "logtide_alerting_events_total", result="too_far_future") >= 1,
            60,
            "the future event to be counted",
            alert.log,
        )
        send("a", 10, time.time_ns())
        wait_until(lambda: firing_for(receiver, "a"), 30, "a FIRING page for a", alert.log)
        assert alert.stop() == 0
        wm = sqlite3.connect(tmp_path / "alerting.db").execute("SELECT v FROM meta WHERE k='watermark'").fetchone()
        assert 0 < json.loads(wm[0]) <= time.time_ns()  # the saved watermark never passed the wall clock

        # while it is stopped: errors happen (b), and one is stamped 2 hours ago (c: past the horizon)
        send("b", 6, time.time_ns())
        send("c", 6, time.time_ns() - 7200 * S)
        time.sleep(13)  # longer than the 10s window plus the 2s lateness_seconds: live evaluation would miss b
        send("d", 1, time.time_ns(), level="INFO")  # the present: b's group_wait must have run out in b's time
        alert.start()
        wait_until(lambda: firing_for(receiver, "b"), 60, "a FIRING page for the backlog's b", alert.log)
        text = wait_until(
            lambda: (
                (t := scrape())
                and metric(t, "logtide_alerting_events_dropped_total", rule="Burst", reason="too_late") >= 6
                and t
            ),
            30,
            "too-late events counted for the rule",
            alert.log,
        )
        assert metric(text, "logtide_alerting_events_total", result="too_late") >= 6
        send("a", 10, time.time_ns())  # after the restart a burst still pages (the clock is sane)
        time.sleep(4)
        assert alert.stop() == 0
    finally:
        alert.kill()
        producer.close()
        receiver.close()
    assert firing_for(receiver, "c") == []
    assert len(firing_for(receiver, "b")) == 1
    log = (tmp_path / "alert.log").read_text()
    assert log.count('"reason": "too_late"') + log.count('"reason":"too_late"') == 1  # logged once per rule


def hybrid_engine(store=None, **over):
    cfg = config(clock={"mode": "hybrid", "lateness_seconds": 2}, **over)
    sent = []
    eng = AlertEngine(
        cfg,
        parse_rules(yaml.safe_load(BURST.replace("WINDOW", "1m")), "r.yaml"),
        store or Store(":memory:"),
        notify=sent.append,
    )
    return eng, sent


def test_errors_stamped_minutes_ago_fire_and_older_than_the_horizon_are_counted():
    eng, _ = hybrid_engine()
    before = metrics.EVENTS_DROPPED.labels("Burst", "too_late")._value.get()
    three_min_ago = time.time_ns() - 180 * S
    eng.ingest([(event(i, three_min_ago + i * S, service="late"), 0) for i in range(10)])
    assert [(a.labels["service_name"], a.state) for a in eng.states.alerts.values()] == [("late", "firing")]
    eng.ingest([(event(i, time.time_ns() - 3600 * S + i * S, service="ancient"), 0) for i in range(10)])
    assert {a.labels["service_name"] for a in eng.states.alerts.values()} == {"late"}
    assert metrics.EVENTS_DROPPED.labels("Burst", "too_late")._value.get() == before + 10


def saved_watermark(path, value: int) -> Store:
    store = Store(path)
    batch = Batch()
    batch.meta["watermark"] = value
    store.save(batch)
    return store


def test_saved_watermark_is_checked_against_the_wall_clock(tmp_path):
    path = tmp_path / "state.db"
    eng, _ = hybrid_engine(saved_watermark(path, time.time_ns() + 3600 * S))  # saved by a clock an hour ahead
    assert eng.clock.watermark <= time.time_ns()
    eng.ingest([(event(i, time.time_ns(), service="a"), 0) for i in range(5)])
    assert [a.state for a in eng.states.alerts.values()] == ["firing"]
    eng.persist()
    eng.store.close()
    eng, _ = hybrid_engine(saved_watermark(path, 1))  # stopped for decades
    horizon = eng.clock.horizon
    assert time.time_ns() - horizon - 5 * S <= eng.clock.watermark <= time.time_ns() - horizon + 5 * S


FORWARD = """rules:
  - name: StillFiring
    kind: match
    condition: body contains "boom"
    group_by: [service.name]
    window: 3s
"""


@pytest.mark.timeout(120)
def test_alertmanager_keeps_a_forwarded_alert_active_past_its_resolve_timeout(tmp_path):
    am_config = (
        "global:\n  resolve_timeout: 3s\nroute:\n  receiver: blackhole\n  group_wait: 1h\n"
        "receivers:\n  - name: blackhole\n"
    )
    with running_alertmanager(tmp_path / "am", am_config) as am:
        cfg = config(
            clock={"mode": "hybrid", "lateness_seconds": 1},
            route={
                "receiver": "am",
                "group_by": ["alertname"],
                "group_wait": "0s",
                "group_interval": "1s",
                "repeat_interval": "4h",
            },
            receivers=[
                {
                    "name": "am",
                    "alertmanager": [{"url": am, "resend_interval_seconds": 1}],
                    "retry": {"initial_seconds": 0.1, "max_seconds": 1},
                }
            ],
        )
        eng = AlertEngine(cfg, parse_rules(yaml.safe_load(FORWARD), "r.yaml"), Store(":memory:"))
        ticker = Ticker(eng, [], reload_interval_seconds=3600)
        stop = threading.Event()
        threads = [threading.Thread(target=ticker.run, args=(stop,), daemon=True)]
        eng.delivery.start()
        threads[0].start()

        def in_am() -> list[dict]:
            return [
                a
                for a in requests.get(am + "/api/v2/alerts", timeout=5).json()
                if a["labels"].get("alertname") == "StillFiring"
            ]

        try:
            eng.ingest([(event(0, time.time_ns(), service="db"), 0)])
            wait_until(in_am, 20, "the alert in Alertmanager")
            seen = []
            for k in range(1, 25):  # 12 s of firing: four times Alertmanager's resolve_timeout
                eng.ingest([(event(k, time.time_ns(), service="db"), 0)])
                time.sleep(0.5)
                seen.append([a["status"]["state"] for a in in_am()])
            assert all(s == ["active"] for s in seen), seen
            [a] = in_am()
            assert a["endsAt"] > a["startsAt"] and a["fingerprint"] == next(iter(eng.states.alerts))
            # events stop: the 3s window ends, the resolved alert is sent with its endsAt
            wait_until(lambda: not in_am(), 30, "the alert to resolve in Alertmanager")
            assert [a.state for a in eng.states.alerts.values()] in ([], ["resolved"])
        finally:
            stop.set()
            threads[0].join(10)
            eng.delivery.stop()


EDITABLE = """rules:
  - name: Boom
    kind: match
    condition: body contains "boom"
    group_by: [service.name]
    window: 10m
    annotations: {summary: "first text"}
"""


def test_editing_a_firing_rule_pages_once_and_broken_edits_are_refused(tmp_path, caplog):
    path = tmp_path / "rules.yaml"
    path.write_text(EDITABLE)
    sent = []
    eng = AlertEngine(
        config(),
        load_rules([path]),
        Store(tmp_path / "s.db"),
        notify=lambda n: (sent.append(n), eng.nflog.log(n.group_key, n.integration, n.firing, n.resolved, n.now)),
    )
    ticker = Ticker(eng, [path])
    eng.ingest([(event(1, T0), 0)])
    eng.advance_to(T0 + 11 * S)
    assert [n.status for n in sent] == ["firing"]

    def edit(text: str) -> bool:
        path.write_text(text)
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
        return ticker.reload_if_changed()

    assert edit(EDITABLE.replace("first text", "second text") + "    keep_firing_for: 1m\n") is True
    for k in range(2, 20):
        eng.advance_to(T0 + k * 10 * S)
    assert [n.status for n in sent] == ["firing"]  # no RESOLVED, no second FIRING
    [a] = eng.alerts_api()
    assert a["state"] == "firing" and a["annotations"]["summary"] == "second text"

    refused = metrics.RULE_RELOADS.labels("refused")._value.get()
    for garbage, line in [
        ("rules:\n  - name: Boom\n    kind: match\n    window: [\n", None),
        (EDITABLE.replace('"first text"', '"{{ labels.service_name "'), 7),
    ]:
        caplog.clear()
        assert edit(garbage) is False
        if line:
            [err] = [r.error for r in caplog.records if r.getMessage().startswith("rules not reloaded")]
            assert f"{path}:{line}:" in err and "template does not compile" in err
    assert metrics.RULE_RELOADS.labels("refused")._value.get() == refused + 2
    eng.advance_to(T0 + 300 * S)
    assert [a["state"] for a in eng.alerts_api()] == ["firing"] and len(sent) == 1

    # grouping changed: the old alert resolves (once), the new one fires (once)
    assert edit(EDITABLE.replace("[service.name]", "[service.name, k8s.pod.name]")) is True
    eng.ingest([(event(2, T0 + 310 * S), 0)])
    for k in range(32, 50):
        eng.advance_to(T0 + k * 10 * S)
    # both in the same group (alertname, service_name): one notification tells both
    [n] = sent[1:]
    assert sorted((a.state, "k8s_pod_name" in a.labels) for a in n.alerts) == [("firing", True), ("resolved", False)]


def test_broken_templates_are_refused_at_load_with_file_and_line(tmp_path, capsys):
    rules = tmp_path / "rules.yaml"
    rules.write_text(EDITABLE.replace('{summary: "first text"}', '\n      summary: "{{ labels.service_name "'))
    with pytest.raises(ConfigError) as err:
        load_rules([rules])
    assert f"{rules}:8:" in str(err.value) and "template does not compile" in str(err.value)

    from logtide.cli import main

    events = tmp_path / "events.jsonl"
    events.write_text('{"body": "boom", "time": "2026-01-01T00:00:00Z"}\n')
    assert main(["alert", "test", str(rules), str(events)]) == 2
    assert f"{rules}:8:" in capsys.readouterr().err

    cfg = tmp_path / "alert.yaml"
    cfg.write_text(
        "rules_files: [rules.yaml]\nroute: {receiver: s}\nreceivers:\n  - name: s\n    slack:\n"
        "      - url: http://127.0.0.1:9/\n        text: '{% for a in alerts %}{{ a }}'\n"
    )
    with pytest.raises(ConfigError) as err:
        load_alert_config(cfg)
    assert f"{cfg}:7:" in str(err.value) and "template does not compile" in str(err.value)


@pytest.fixture
def api():
    """A hybrid-clock engine (wall-clock silences) with two firing alerts, behind its HTTP API."""
    cfg = config(
        clock={"mode": "hybrid", "lateness_seconds": 2},
        api={"host": "127.0.0.1", "port": 0},
        receivers=[{"name": "hook", "webhook": [{"url": "http://127.0.0.1:9/", "secrets": ["hush-hush"]}]}],
    )
    eng = AlertEngine(cfg, parse_rules(yaml.safe_load(EDITABLE), "r.yaml"), Store(":memory:"), notify=lambda n: None)
    now = time.time_ns()
    eng.ingest([(event(1, now), 0), (event(2, now, service="cart"), 0)])
    with serving(eng, cfg.api) as url:
        yield eng, url


def test_silences_are_validated_and_run_on_the_wall_clock(api):
    eng, url = api
    for matchers, words in [
        (['foo=""'], "does not match the empty string"),
        (['foo=~".*"', 'bar!="x"'], "does not match the empty string"),
        (['foo=~"("'], "invalid regex"),
        ([], "at least one matcher"),
    ]:
        r = requests.post(
            url + "/api/v2/silences",
            json={"matchers": matchers, "duration": "1h", "createdBy": "me", "comment": "x"},
            timeout=5,
        )
        assert r.status_code == 400 and words in r.json()["error"], (matchers, r.text)
    r = requests.post(
        url + "/api/v2/silences",
        json={
            "matchers": ['service_name="cart"'],
            "createdBy": "me",
            "comment": "x",
            "startsAt": "2030-01-01T02:00:00Z",
            "endsAt": "2030-01-01T01:00:00Z",
        },
        timeout=5,
    )
    assert r.status_code == 400 and "after startsAt" in r.json()["error"]
    out = subprocess.run(
        [sys.executable, "-m", "logtide.cli", "alert", "silence", "add", 'foo=""', "--comment", "x", "--url", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "does not match the empty string" in out.stderr

    before = time.time_ns()
    r = requests.post(
        url + "/api/v2/silences",
        json={"matchers": ['service_name="cart"'], "duration": "1h", "createdBy": "me", "comment": "deploy"},
        timeout=5,
    )
    after = time.time_ns()
    [s] = eng.silences.list()
    assert r.status_code == 200 and before <= s.starts_at <= after  # the wall clock, not event time - lateness_seconds
    assert s.ends_at - s.starts_at == 3600 * S


def amtool(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([AMTOOL, f"--alertmanager.url={url}", *args], capture_output=True, text=True, timeout=30)


@pytest.mark.timeout(120)
def test_amtool_works_against_logtides_api(api):
    eng, url = api
    out = amtool(url, "alert", "query", "-o", "json")
    assert out.returncode == 0, out.stderr
    assert {a["labels"]["service_name"] for a in json.loads(out.stdout)} == {"checkout", "cart"}
    out = amtool(url, "alert", "query", "service_name=cart")
    assert out.returncode == 0 and "Boom" in out.stdout and "first text" in out.stdout, out.stdout + out.stderr

    out = amtool(url, "silence", "add", "service_name=cart", "--comment=deploy", "--author=alice", "--duration=1h")
    assert out.returncode == 0, out.stderr
    sid = out.stdout.strip()
    assert [s.id for s in eng.silences.list()] == [sid]
    out = amtool(url, "silence", "query", "-o", "json")
    [s] = json.loads(out.stdout)
    assert s["id"] == sid and s["createdBy"] == "alice" and s["status"]["state"] == "active"
    active = json.loads(amtool(url, "alert", "query", "-o", "json").stdout)
    assert [a["labels"]["service_name"] for a in active] == ["checkout"]  # cart is silenced now
    silenced = json.loads(amtool(url, "alert", "query", "--silenced", "-o", "json").stdout)
    assert [(a["labels"]["service_name"], a["status"]["silencedBy"]) for a in silenced] == [("cart", [sid])]
    out = amtool(url, "silence", "expire", sid)
    assert out.returncode == 0, out.stderr
    assert json.loads(amtool(url, "silence", "query", "-o", "json").stdout) == []  # only unexpired by default

    out = amtool(url, "config", "show")
    assert out.returncode == 0, out.stderr
    assert "receiver: hook" in out.stdout and "hush-hush" not in out.stdout and "<secret>" in out.stdout
    assert [r["name"] for r in requests.get(url + "/api/v2/receivers", timeout=5).json()] == ["hook"]


@pytest.mark.parametrize("pipeline", ["examples/process.yaml", "processors/default_pipeline.yaml"])
def test_the_default_setup_feeds_the_engine_every_severity(tmp_path, pipeline):
    """What the engine reads (logtide.route.monitoring, by default and in `logtide up`) carries every
    severity, through the example pipeline and the processor's default one (`logtide up`, and the
    Helm chart's processor, whose config has no pipeline)."""
    from logtide.alerting.config import AlertConfig

    assert AlertConfig().topics == ["logtide.route.monitoring"]
    spec = tmp_path / "tests.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "pipeline": str(ROOT / pipeline),
                "defaults": {"source": "k8s", "resource": {"service.name": "checkout"}},
                "tests": [
                    {
                        "name": "every severity reaches monitoring",
                        "input": [
                            {"body": "fine", "severity_text": "INFO"},
                            {"body": "slow", "severity_text": "WARN"},
                            {"body": "boom", "severity_text": "ERROR"},
                            {"body": "dead", "severity_text": "FATAL"},
                        ],
                        "expect": {"monitoring": {"count": 4}},
                    }
                ],
            }
        )
    )
    out = subprocess.run(
        [sys.executable, "-m", "logtide.cli", "test", str(spec)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert out.returncode == 0 and "1 passed" in out.stdout, out.stdout + out.stderr

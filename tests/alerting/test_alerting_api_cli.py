"""The HTTP API and the CLI: list alerts and groups, silences added/listed/expired with
`logtide alert silence`, and `logtide alert test` over a file of events."""

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import requests
import yaml

from alert_helpers import S, T0, config, event, serving

from logtide.timeutil import parse_rfc3339

from logtide.alerting.engine import AlertEngine
from logtide.alerting.rules import parse_rules
from logtide.alerting.store import Store

ROOT = Path(__file__).resolve().parents[2]

RULES = """
rules:
  - name: Boom
    kind: match
    condition: body contains "boom"
    group_by: [service.name]
    window: 10m
"""


@pytest.fixture
def api():
    cfg = config(api={"host": "127.0.0.1", "port": 0, "token": "sekrit"})
    eng = AlertEngine(cfg, parse_rules(yaml.safe_load(RULES), "r.yaml"), Store(":memory:"), notify=lambda n: None)
    with serving(eng, cfg.api) as url:
        yield eng, url


@pytest.mark.timeout(120)
def test_api_and_silence_cli(api, logtide):
    eng, url = api
    eng.ingest([(event(1, T0), 0), (event(2, T0, service="cart"), 0)])
    eng.advance_to(T0 + 20 * S)
    alerts = requests.get(url + "/api/v2/alerts", timeout=5).json()
    assert {a["labels"]["service_name"] for a in alerts} == {"checkout", "cart"}
    assert all(a["state"] == "firing" and a["silencedBy"] == [] for a in alerts)
    groups = requests.get(url + "/api/v2/alerts/groups", timeout=5).json()
    assert len(groups) == 2 and groups[0]["receiver"] == {"name": "hook"}

    # writes need the token
    r = requests.post(
        url + "/api/v2/silences",
        json={"matchers": ['service_name="cart"'], "duration": "1h", "createdBy": "x", "comment": "y"},
        timeout=5,
    )
    assert r.status_code == 401
    out = logtide(
        "alert",
        "silence",
        "--url",
        url,
        "--token",
        "sekrit",
        "add",
        'service_name="cart"',
        "--start",
        "2026-01-01T00:00:00Z",
        "--duration",
        "2h",
        "--author",
        "alice",
        "--comment",
        "deploy",
    )
    assert out.returncode == 0, out.stderr
    sid = out.stdout.strip()
    listed = logtide("alert", "silence", "--url", url, "list", "--json")
    [s] = orjson.loads(listed.stdout)
    assert s["id"] == sid and s["createdBy"] == "alice" and s["status"]["state"] == "active"
    assert s["matchers"] == [{"name": "service_name", "value": "cart", "isRegex": False, "isEqual": True}]
    alerts = {a["labels"]["service_name"]: a for a in requests.get(url + "/api/v2/alerts", timeout=5).json()}
    assert alerts["cart"]["silencedBy"] == [sid] and alerts["checkout"]["silencedBy"] == []
    table = logtide("alert", "silence", "--url", url, "list")
    assert sid in table.stdout and 'service_name="cart"' in table.stdout

    out = logtide("alert", "silence", "expire", sid, "--url", url)  # options after the subcommand too
    assert out.returncode == 2 and "401" in out.stderr
    out = logtide("alert", "silence", "expire", sid, "--url", url, "--token", "sekrit")
    assert out.returncode == 0, out.stderr
    [s] = orjson.loads(logtide("alert", "silence", "--url", url, "list", "--json").stdout)
    assert s["status"]["state"] == "expired"

    bad = logtide("alert", "silence", "--url", url, "--token", "sekrit", "add", "service_name", "--comment", "x")
    assert bad.returncode == 2 and "invalid matcher" in bad.stderr
    gone = logtide("alert", "silence", "--url", url, "--token", "sekrit", "expire", "nope")
    assert gone.returncode == 2 and "404" in gone.stderr

    # --start takes the time expressions of every other command; both flags are checked before sending
    out = logtide(
        "alert",
        "silence",
        "--url",
        url,
        "--token",
        "sekrit",
        "add",
        'service_name="cart"',
        "--start=-10m",
        "--duration",
        "1h",
        "--comment",
        "relative",
    )
    assert out.returncode == 0, out.stderr
    [s] = [
        s
        for s in orjson.loads(logtide("alert", "silence", "--url", url, "list", "--json").stdout)
        if s["id"] == out.stdout.strip()
    ]
    assert abs(parse_rfc3339(s["startsAt"]) - (time.time_ns() - 600 * S)) < 60 * S
    for flag, value in (("--start", "yesterday"), ("--duration", "1 hour")):
        bad = logtide(
            "alert",
            "silence",
            "--url",
            url,
            "--token",
            "sekrit",
            "add",
            'service_name="cart"',
            flag,
            value,
            "--comment",
            "x",
        )
        assert bad.returncode == 2 and value in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.timeout(60)
def test_alert_test_command(tmp_path, logtide):
    rules = tmp_path / "rules.yaml"
    rules.write_text("""rules:
  - name: Errors
    kind: threshold
    condition: severity_number >= 17
    group_by: [service.name]
    count: 3
    window: 1m
    annotations: {summary: "{{ value }} errors in {{ labels.service_name }}"}
""")
    events = tmp_path / "events.jsonl"
    lines = [orjson.dumps(event(i, T0 + i * S, level="ERROR" if i % 2 else "INFO")).decode() for i in range(8)]
    lines.append(
        '{"time": "2026-01-01T00:00:09Z", "body": "x", "severity_text": "ERROR", '
        '"resource": {"service.name": "checkout"}}'
    )
    events.write_text("\n".join(lines) + "\n")
    out = logtide("alert", "test", str(rules), str(events))
    assert out.returncode == 0, out.stderr
    assert 'FIRING   {alertname="Errors", service_name="checkout", severity="warning"}' in out.stdout
    assert "--- notification at" in out.stdout and "[FIRING:1] Errors\n" in out.stdout
    assert "• FIRING Errors: 3 errors in checkout (service_name=checkout severity=warning)" in out.stdout
    # (issue 15: time runs on after the last event until the alert resolves, and that is notified too)
    assert "1 alerts fired, 2 notifications" in out.stdout and "[RESOLVED] Errors\n" in out.stdout
    assert logtide("alert", "test", str(rules), str(events), "--fail-on-fire").returncode == 1

    rules.write_text("rules:\n  - name: Errors\n    kind: threshold\n    count: 3\n    condtion: x\n")
    bad = logtide("alert", "test", str(rules), str(events))
    assert bad.returncode == 2 and f"{rules}:5: unknown field 'condtion'" in bad.stderr


def test_help_has_examples(logtide):
    out = logtide("alert", "--help")
    assert out.returncode == 0 and "logtide alert test" in out.stdout and "silence add" in out.stdout


def help_examples() -> list[str]:
    """The commands of `logtide alert --help` (continuation lines joined), but the role itself
    (`logtide alert --config`, which runs until stopped: test_alerting_kafka runs it)."""
    from logtide.alerting.cli import EPILOG

    commands, current = [], ""
    for line in EPILOG.splitlines():
        stripped = line.strip()
        if current:
            current += "\n" + line
        elif re.match(r"^(logtide alert (test|silence)|id=\$\(logtide|amtool) ", stripped) and line.startswith("  "):
            current = stripped
        if current and not current.endswith("\\"):
            commands.append(current)
            current = ""
    return commands


@pytest.mark.timeout(120)
def test_every_help_example_runs_as_written(tmp_path):
    commands = help_examples()
    assert len(commands) == 5 and any("silence expire" in c for c in commands)
    cfg = config(api={"host": "127.0.0.1", "port": 9093}, clock={"mode": "hybrid"})
    eng = AlertEngine(cfg, parse_rules(yaml.safe_load(RULES), "r.yaml"), Store(":memory:"), notify=lambda n: None)
    settings = cfg.api
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", 9093))
        except OSError:  # 9093 is taken on this machine: the same commands against another port
            settings = cfg.api.model_copy(update={"port": 0})
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    env.pop("LOGTIDE_ALERT_URL", None)
    with serving(eng, settings) as url:
        script = "\n".join(commands).replace("http://127.0.0.1:9093", url)
        out = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=100,
        )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "FIRING" in out.stdout and "RESOLVED" in out.stdout  # alert test
    [s] = eng.silences.list()
    assert s.created_by == "alice" and s.state(time.time_ns()) == "expired"  # added, listed, expired


def test_alert_test_follows_alerts_through_resolve_and_shows_only_what_is_sent(logtide):
    out = logtide(
        "alert",
        "test",
        str(ROOT / "examples" / "alert-rules.yaml"),
        str(ROOT / "examples" / "alert-events.jsonl"),
        "--config",
        str(ROOT / "examples" / "alert.yaml"),
    )
    assert out.returncode == 0, out.stderr
    transitions = re.findall(r"^\S+  (FIRING|RESOLVED|PENDING) +\{alertname=\"(\w+)\"", out.stdout, re.M)
    assert ("RESOLVED", "FatalLogged") in transitions and ("RESOLVED", "ErrorBurst") in transitions
    sent = re.findall(r"^--- notification at \S+ to (\S+) \((\w+), group \S+:\{alertname=\"(\w+)\"", out.stdout, re.M)
    # FatalLogged pages and resolves (PagerDuty and the Alertmanager forward); ErrorBurst is inhibited
    # by it (same service, critical over warning) for its whole life: the engine sends nothing for it
    assert sorted(sent) == sorted(
        [
            (i, status, "FatalLogged")
            for i in ("oncall-pagerduty/pagerduty/0", "oncall-pagerduty/alertmanager/0")
            for status in ("firing", "resolved")
        ]
    )
    assert "2 alerts fired, 4 notifications" in out.stdout

"""`logtide up` as a new user runs it, for a few minutes: the demo's healthy services page for
nothing; payments, which has an error burst and then a silent period, pages for each (once)."""

import collections
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from alert_helpers import stop_process

ROOT = Path(__file__).resolve().parents[2]
PAGE = re.compile(r"^ALERT (FIRING|RESOLVED) receiver=\S+ group=(\S+:\{.*\}) \(")
ALERT = re.compile(r"^\s+(firing|resolved)\s+[0-9a-f]{16} (.*?)(?:  — (.*))?$")


@pytest.mark.timeout(480)
def test_logtide_up_pages_for_the_misbehaving_service_only(tmp_path):
    cfg = tmp_path / "up.yaml"
    # the demo's incident a little earlier than by default (burst 30-90s, silent 120-270s), same shape
    incident = {"burst_from_seconds": 15, "burst_to_seconds": 60, "silent_from_seconds": 70, "silent_to_seconds": 250}
    cfg.write_text(
        yaml.safe_dump(
            {
                "workdir": str(tmp_path / "work"),
                "http": {"host": "127.0.0.1", "port": 0},
                "roles": {"00-demo": {"incident": incident}},
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "LOGTIDE_BOOTSTRAP"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "logtide.cli", "up", "--config", str(cfg), "--rate", "50", "--duration", "400"],
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "up.log", "wb"),
        text=True,
        cwd=ROOT,
        env=env,
    )
    lines: list[str] = []
    done = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
        done.set()

    threading.Thread(target=read, daemon=True).start()

    def pages() -> list[tuple[str, str, dict[str, str], str]]:
        """(status, group key, labels, summary) of every alert in every notification."""
        out, status = [], None
        for line in list(lines):
            if m := PAGE.match(line):
                status = m.group(1)
            elif status and (m := ALERT.match(line)):
                labels = dict(kv.split("=", 1) for kv in m.group(2).split())
                out.append((m.group(1), labels["alertname"], labels, m.group(3) or ""))
        return out

    # ServiceSilent needs 2 minutes of nothing from payments: it fires about 190s after the start
    deadline = time.monotonic() + 400
    try:
        while time.monotonic() < deadline and not done.is_set():
            if any(a == "ServiceSilent" and s == "firing" for s, a, _, _ in pages()):
                break
            time.sleep(1)
    finally:
        stop_process(proc, 60)
    got = pages()
    log = (tmp_path / "up.log").read_text()[-3000:]
    firing = collections.Counter((a, labels.get("service_name")) for s, a, labels, _ in got if s == "firing")
    assert {svc for _, svc in firing} == {"payments"}, (firing, log)
    assert set(firing) == {
        ("FatalLogged", "payments"),
        ("ErrorBurst", "payments"),
        ("HighErrorRatio", "payments"),
        ("ServiceSilent", "payments"),
    }, (firing, log)
    assert set(firing.values()) == {1}, firing  # each paged once
    summaries = {a: summary for s, a, _, summary in got if s == "firing"}
    assert summaries["ServiceSilent"] == "payments logged nothing for 2 minutes"
    ratio = float(re.match(r"([\d.]+)% of payments logs are errors", summaries["HighErrorRatio"]).group(1))
    assert 5 < ratio < 100  # the ratio of errors among all its logs, not among its errors

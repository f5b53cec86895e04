"""Forwarding to Debian's real Alertmanager: alerts arrive via /api/v2/alerts with the same
fingerprint (our FNV-1a matches Alertmanager's) and resolve there when they resolve here."""

import time

import pytest
import requests
import yaml

from alert_helpers import S, config, event

from logtide.alerting.engine import AlertEngine
from logtide.alerting.rules import parse_rules
from logtide.alerting.store import Store

RULES = """
rules:
  - name: ForwardMe
    kind: match
    condition: body contains "boom"
    group_by: [service.name]
    window: 1m
    labels: {team: "db"}
    annotations: {summary: "boom in {{ labels.service_name }}"}
"""


def am_alerts(url):
    return [
        a for a in requests.get(url + "/api/v2/alerts", timeout=5).json() if a["labels"].get("alertname") == "ForwardMe"
    ]


@pytest.mark.timeout(90)
def test_forward_to_alertmanager(alertmanager):
    cfg = config(
        receivers=[
            {
                "name": "hook",
                "alertmanager": [{"url": alertmanager}],
                "retry": {"initial_seconds": 0.1, "max_seconds": 1},
            }
        ]
    )
    eng = AlertEngine(cfg, parse_rules(yaml.safe_load(RULES), "r.yaml"), Store(":memory:"))
    eng.delivery.start()
    try:
        t0 = time.time_ns() - 300 * S  # so that event-time resolutions are in the past for Alertmanager
        eng.ingest([(event(1, t0, service="orders"), 0), (event(2, t0, service="billing"), 0)])
        eng.advance_to(t0 + 11 * S)
        deadline = time.monotonic() + 20
        while len(am_alerts(alertmanager)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        got = {a["labels"]["service_name"]: a for a in am_alerts(alertmanager)}
        ours = {a.labels["service_name"]: a for a in eng.states.alerts.values()}
        assert set(got) == {"orders", "billing"}
        for svc in got:
            assert got[svc]["fingerprint"] == ours[svc].fingerprint  # Alertmanager computed the same hash
            assert got[svc]["labels"] == ours[svc].labels
            assert got[svc]["annotations"]["summary"] == f"boom in {svc}"
            assert got[svc]["status"]["state"] == "active"
        # one minute of event time later the match window ends: resolved here, then in Alertmanager
        for k in range(7, 14):
            eng.advance_to(t0 + k * 10 * S)
        assert all(a.state == "resolved" for a in eng.states.alerts.values()) or not eng.states.alerts
        deadline = time.monotonic() + 20
        while am_alerts(alertmanager) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert am_alerts(alertmanager) == []  # Alertmanager lists only unresolved alerts
    finally:
        eng.delivery.stop()

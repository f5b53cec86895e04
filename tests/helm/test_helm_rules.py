"""The PrometheusRule's alerts, rendered by the chart, checked by Debian's promtool: syntax
(`check rules`) and behaviour (`test rules` with tests/helm/rules_test.yaml)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from helm_support import exported_metrics, full_values, metrics_in, promtool, rules_file

UNIT_TESTS = Path(__file__).resolve().parent / "rules_test.yaml"
ALERTS = {
    "LogtideTargetDown",
    "LogtideConsumerLagGrowing",
    "LogtideDLQRateHigh",
    "LogtideProduceErrors",
    "LogtideCommitErrors",
    "LogtideAgentNotShipping",
    "LogtideCollectorCheckpointStale",
    "LogtideNotificationsFailing",
}


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def _rules(path: Path) -> list[dict]:
    return [r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]


def test_promtool_accepts_the_rules(tmp_path):
    path = rules_file(tmp_path)
    out = _promtool("check", "rules", path.name, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in out.stdout
    assert {r["alert"] for r in _rules(path)} == ALERTS


def test_promtool_accepts_full_values_rules_with_extra_groups(tmp_path):
    path = rules_file(tmp_path, full_values())
    out = _promtool("check", "rules", path.name, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert all(r["labels"]["team"] == "platform" for r in _rules(path) if r["alert"] in ALERTS)


def test_promtool_catches_a_broken_expression(tmp_path):
    """The check is real: an additional group with bad PromQL fails it."""
    broken = {"name": "broken", "rules": [{"alert": "Broken", "expr": "rate(logtide_events_produced_total[5m]"}]}
    path = rules_file(tmp_path, {"metrics": {"prometheusRule": {"additionalGroups": [broken]}}})
    out = _promtool("check", "rules", path.name, cwd=tmp_path)
    assert out.returncode != 0 and "Broken" in out.stdout + out.stderr


def test_alerts_fire_on_failure_and_stay_quiet_when_healthy(tmp_path):
    rules_file(tmp_path)
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    out = _promtool("test", "rules", UNIT_TESTS.name, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    tested = {
        t["alertname"] for case in yaml.safe_load(UNIT_TESTS.read_text())["tests"] for t in case["alert_rule_test"]
    }
    assert tested == ALERTS, f"alerts without a unit test: {ALERTS - tested}"


def test_thresholds_come_from_values(tmp_path):
    """With the lag and checkpoint thresholds raised, the same unit tests must fail."""
    rules_file(tmp_path, {"metrics": {"prometheusRule": {"lagThreshold": 10**9, "checkpointStaleSeconds": 10**6}}})
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    out = _promtool("test", "rules", UNIT_TESTS.name, cwd=tmp_path)
    assert out.returncode != 0
    assert "LogtideConsumerLagGrowing" in out.stdout + out.stderr
    assert "LogtideCollectorCheckpointStale" in out.stdout + out.stderr


def test_every_metric_a_rule_uses_is_exported(tmp_path):
    exported = exported_metrics()
    for rule in _rules(rules_file(tmp_path)):
        missing = metrics_in(rule["expr"]) - set(exported)
        assert not missing, f"{rule['alert']} uses metrics logtide does not define: {missing}"


def test_rate_only_on_counters(tmp_path):
    """rate()/increase() on a gauge or delta() on a counter evaluates but means nothing."""
    exported = exported_metrics()
    for rule in _rules(rules_file(tmp_path)):
        for fn, metric in re.findall(r"\b(rate|increase|delta|deriv)\((logtide_[a-z0-9_]+)", rule["expr"]):
            is_counter = exported.get(metric) == "counter"
            assert is_counter == (fn in ("rate", "increase")), f"{rule['alert']}: {fn}({metric})"


def test_readme_scrape_snippet_is_a_valid_prometheus_config(tmp_path):
    """The relabelling the chart README gives annotation-based Prometheus setups."""
    readme = (Path(__file__).resolve().parents[2] / "helm" / "logtide" / "README.md").read_text()
    snippet = re.search(r"```yaml\n(\s*relabel_configs:.*?)```", readme, re.S).group(1)
    relabel = yaml.safe_load(snippet)["relabel_configs"]
    # Debian's Prometheus is built without kubernetes_sd_configs; the relabelling is checked the same
    # way whatever the discovery (actions, regexes, label names).
    config = {
        "scrape_configs": [
            {
                "job_name": "kubernetes-pods",
                "static_configs": [{"targets": ["127.0.0.1:9464"]}],
                "relabel_configs": relabel,
            }
        ]
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    out = _promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert {r.get("target_label") for r in relabel} >= {"job", "role", "node", "namespace", "pod"}

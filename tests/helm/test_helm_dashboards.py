"""The Grafana dashboards: well-formed, current with their generator, made only of metrics logtide
defines, and every query (and every alert rule) evaluated by a real Prometheus scraping a running
`logtide up`."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helm_support import (
    ROOT,
    Prometheus,
    dashboard_queries,
    dashboards,
    exported_metrics,
    free_port,
    grafana_to_promql,
    metrics_in,
    metrics_report,
    rules_file,
)

REQUIRED = {"overview.json", "agents.json", "collectors.json", "alerting.json", "service-health.json"}
#: Target labels the chart's ServiceMonitor gives every logtide pod (here: the one `logtide up` process).
TARGET_LABELS = {"namespace": "logging", "pod": "logtide-up-0", "role": "agent", "node": "node-1"}


def _all_queries():
    for file, board in dashboards().items():
        for title, expr in dashboard_queries(board):
            yield file, title, expr


def test_dashboards_are_current_with_their_generator():
    out = subprocess.run(
        [sys.executable, "helm/tools/dashboards.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr


def test_the_five_dashboards_exist_with_unique_uids():
    boards = dashboards()
    assert set(boards) == REQUIRED
    uids = [b["uid"] for b in boards.values()]
    assert len(set(uids)) == len(uids) and all(len(u) <= 40 for u in uids)
    assert all(b["title"].startswith("logtide / ") for b in boards.values())


@pytest.mark.parametrize("file", sorted(REQUIRED))
def test_dashboard_layout_and_datasource(file):
    board = dashboards()[file]
    names = [v["name"] for v in board["templating"]["list"]]
    assert names[0] == "datasource" and "namespace" in names
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"{file}: panel {p['title']!r} overlaps another"
        cells |= mine
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(set(refs)) == len(refs)
    assert sum(p["type"] != "row" for p in panels) >= 8


def test_variables_are_only_used_as_regex_matchers():
    """Grafana's "All" is .*: a variable in an = matcher would match nothing."""
    for file, title, expr in _all_queries():
        for m in re.finditer(r'(=~|!~|=|!=)\s*"[^"]*\$(?!__)[A-Za-z_]', expr):
            assert m.group(1) == "=~", f"{file} / {title}: {expr}"


def test_every_dashboard_metric_is_one_logtide_defines():
    exported = exported_metrics()
    missing = {}
    for file, title, expr in _all_queries():
        for metric in metrics_in(expr) - set(exported):
            missing.setdefault(metric, []).append(f"{file} / {title}")
    assert not missing, (
        f"dashboards use metrics no logtide module defines: {missing}; "
        f"modules that failed to import: {metrics_report()['import_errors']}"
    )


def test_functions_match_metric_types():
    """rate/increase only on counters, histogram_quantile only on histogram buckets, no rate on gauges."""
    exported = exported_metrics()
    for file, title, expr in _all_queries():
        for fn, metric in re.findall(r"\b(rate|increase|irate)\((logtide_[a-z0-9_]+)", expr):
            kind = exported.get(metric)
            assert kind == "counter" or (kind == "histogram" and metric.endswith(("_bucket", "_sum", "_count"))), (
                f"{file} / {title}: {fn}({metric}) on a {kind}"
            )
        for metric in re.findall(r"histogram_quantile\([^,]+,.*?(logtide_[a-z0-9_]+)", expr):
            assert metric.endswith("_bucket") and exported.get(metric) == "histogram", f"{file} / {title}"


def test_metric_checker_is_not_fooled_by_label_values():
    expr = 'sum(rate(logtide_events_produced_total{topic=~"logtide_raw_fake"}[1m]))'
    assert metrics_in(expr) == {"logtide_events_produced_total"}
    assert "logtide_no_such_metric_total" not in exported_metrics()


# ---- a real Prometheus scraping a running logtide ------------------------------------------


@pytest.fixture(scope="module")
def live(broker, tmp_path_factory):
    """`logtide up` (all roles, on the session broker) scraped every second by Debian's Prometheus,
    which also evaluates the chart's alert rules."""
    workdir = tmp_path_factory.mktemp("helm-live")
    port = free_port()
    log = open(workdir / "logtide-up.log", "wb")
    up = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from logtide.cli import main; sys.exit(main())",
            "up",
            "--bootstrap",
            broker,
            "--http-port",
            str(port),
            "--rate",
            "100",
            "--log-level",
            "warning",
        ],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    prom = None
    try:
        rules = rules_file(workdir)
        prom = Prometheus(workdir, [f"127.0.0.1:{port}"], TARGET_LABELS, [rules])
        try:
            prom.wait_for('sum(rate(logtide_events_produced_total{job="logtide"}[15s])) > 0', timeout=90)
        except AssertionError:
            raise AssertionError(
                f"no logtide data scraped; logtide up said:\n{Path(log.name).read_text()[-3000:]}"
            ) from None
        yield prom
    finally:
        if prom:
            prom.stop()
        up.send_signal(signal.SIGINT)
        try:
            up.wait(30)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
        log.close()


@pytest.mark.timeout(180)
def test_every_dashboard_query_evaluates_on_prometheus(live):
    failures, count = [], 0
    for file, title, expr in _all_queries():
        result = live.query(grafana_to_promql(expr))
        count += 1
        if result.get("status") != "success":
            failures.append(f"{file} / {title}: {result.get('error')}\n    {expr}")
    assert not failures, "\n".join(failures)
    assert count >= 80


@pytest.mark.timeout(120)
def test_core_panels_show_the_running_pipeline(live):
    overview = {title: expr for title, expr in dashboard_queries(dashboards()["overview.json"])}
    live.wait_for_labels(grafana_to_promql(overview["Ingest rate by source"]), "source", {"demo"})
    up = live.wait_for(grafana_to_promql(overview["logtide pods up"]))
    assert float(up[0]["value"][1]) == 1.0  # one scrape target: the logtide up process
    agents = {title: expr for title, expr in dashboard_queries(dashboards()["agents.json"])}
    assert float(live.wait_for(grafana_to_promql(agents["Agents up"]))[0]["value"][1]) == 1.0
    # The node variable is filled from what the agents export.
    nodes = live.api("series", **{"match[]": grafana_to_promql(agents["variable node"])})
    assert nodes["status"] == "success"


@pytest.mark.timeout(120)
def test_every_alert_rule_evaluates_on_prometheus(live):
    deadline = time.monotonic() + 30
    while True:
        groups = live.api("rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if rules and all(
            r.get("lastEvaluation", "").startswith("0001") is False and r["health"] != "unknown" for r in rules
        ):
            break
        assert time.monotonic() < deadline, f"rules not evaluated: {rules}"
        time.sleep(0.5)
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad, bad
    assert len(rules) == 8


@pytest.mark.timeout(150)
def test_flow_and_service_health_panels_show_the_pipeline_end_to_end(live):
    """End to end: demo logs -> processor -> logtide.route.monitoring -> monitoring sink counters ->
    the service-health queries, with the logs' namespace as exported_namespace (the target's wins)."""
    health = {title: expr for title, expr in dashboard_queries(dashboards()["service-health.json"])}
    live.wait_for(
        grafana_to_promql(health["Errors per service"]),
        timeout=120,
        until=lambda rows: {r["metric"]["service"] for r in rows} & {"checkout", "payments", "catalog"},
    )
    per_ns = live.wait_for(grafana_to_promql(health["Errors per app namespace"]))
    assert all(r["metric"].get("exported_namespace") not in (None, "logging") for r in per_ns), per_ns
    live.wait_for_labels(grafana_to_promql(health["Log events by severity"]), "severity", {"error"})
    services = live.api("series", **{"match[]": grafana_to_promql(health["variable service"])})
    assert services["status"] == "success" and services["data"]
    # By now the processor routes and the sinks write: the overview's flow panels have their series.
    overview = {}
    for title, expr in dashboard_queries(dashboards()["overview.json"]):
        overview.setdefault(title, expr)  # a panel's first query
    live.wait_for_labels(grafana_to_promql(overview["Events routed by sink"]), "sink", {"monitoring"})
    live.wait_for_labels(grafana_to_promql(overview["Events written by sink"]), "sink", {"monitoring"})
    live.wait_for_labels(
        grafana_to_promql(overview["Consumer lag per group"]),
        "group",
        {"logtide-processors", "logtide-sink-monitoring"},
    )
    live.wait_for_labels(grafana_to_promql(overview["Event-time lag by source"]), "source", {"demo"})
    alerting = {}
    for title, expr in dashboard_queries(dashboards()["alerting.json"]):
        alerting.setdefault(title, expr)
    live.wait_for(grafana_to_promql(alerting["Events evaluated/s"]), until=lambda rows: float(rows[0]["value"][1]) > 0)
    live.wait_for(grafana_to_promql(alerting["Alerts firing"]))  # the state label value the panel selects exists

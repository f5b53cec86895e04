"""Write the Grafana dashboards of the chart (helm/logtide/dashboards/*.json).

Dashboards are described here panel by panel (title, PromQL, unit) and laid out automatically, so
every dashboard has the same variables, datasource and look. Run `python helm/tools/dashboards.py`
after a change; tests/helm checks the JSON is current, that every metric exists in logtide and that
every query runs on a real Prometheus.

Label conventions (what the chart's ServiceMonitor gives every target): job="logtide", namespace and
pod of the logtide pod, role (its component), node. Metric labels that collide with those (the
monitoring sink's `namespace`) arrive as exported_<label>, Prometheus' default.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "logtide" / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "[$__rate_interval]"
NS = 'job="logtide", namespace=~"$namespace"'


@dataclass
class Panel:
    title: str
    targets: list[tuple[str, str]]  # (PromQL, legend)
    unit: str = "short"
    description: str = ""
    kind: str = "timeseries"  # timeseries | stat
    width: int = 12
    stack: bool = False


def ts(
    title: str,
    *targets: tuple[str, str],
    unit: str = "short",
    description: str = "",
    width: int = 12,
    stack: bool = False,
) -> Panel:
    return Panel(title, list(targets), unit, description, "timeseries", width, stack)


def stat(title: str, expr: str, unit: str = "short", description: str = "") -> Panel:
    return Panel(title, [(expr, "")], unit, description, "stat", 4)


@dataclass
class Row:
    title: str
    panels: list[Panel] = field(default_factory=list)


@dataclass
class Variable:
    name: str
    label: str
    query: str  # label_values(...) for Prometheus


def _variable_json(v: Variable) -> dict:
    return {
        "type": "query",
        "name": v.name,
        "label": v.label,
        "datasource": DS,
        "query": {"query": v.query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "definition": v.query,
        "refresh": 2,
        "sort": 1,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "hide": 0,
    }


def _panel_json(p: Panel, pid: int, x: int, y: int) -> dict:
    height = 4 if p.kind == "stat" else 8
    out = {
        "id": pid,
        "type": p.kind,
        "title": p.title,
        "datasource": DS,
        "gridPos": {"h": height, "w": p.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DS,
                "expr": expr,
                "legendFormat": legend or "__auto",
                "range": True,
            }
            for i, (expr, legend) in enumerate(p.targets)
        ],
    }
    if p.description:
        out["description"] = p.description
    if p.kind == "stat":
        out["options"] = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
        }
        out["fieldConfig"]["defaults"]["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": "green", "value": None}],
        }
    else:
        out["options"] = {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max", "lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
        custom = {"fillOpacity": 10, "lineWidth": 1, "showPoints": "never"}
        if p.stack:
            custom["stacking"] = {"mode": "normal", "group": "A"}
        out["fieldConfig"]["defaults"]["custom"] = custom
    return out


def dashboard(uid: str, title: str, description: str, variables: list[Variable], rows: list[Row]) -> dict:
    panels, pid, y = [], 1, 0
    for row in rows:
        panels.append(
            {
                "id": pid,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        pid, y, x, line_height = pid + 1, y + 1, 0, 0
        for p in row.panels:
            if x + p.width > 24:
                x, y, line_height = 0, y + line_height, 0
            panel = _panel_json(p, pid, x, y)
            panels.append(panel)
            pid, x = pid + 1, x + p.width
            line_height = max(line_height, panel["gridPos"]["h"])
        y += line_height
    return {
        "uid": uid,
        "title": f"logtide / {title}",
        "description": description,
        "tags": ["logtide"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-3h", "to": "now"},
        "refresh": "30s",
        "timezone": "browser",
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [
            {
                "type": "dashboards",
                "tags": ["logtide"],
                "asDropdown": True,
                "title": "logtide",
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "templating": {
            "list": [
                {
                    "type": "datasource",
                    "name": "datasource",
                    "label": "Prometheus",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "options": [],
                    "refresh": 1,
                },
                *[_variable_json(v) for v in variables],
            ]
        },
        "panels": panels,
    }


NAMESPACE = Variable("namespace", "logtide namespace", 'label_values(up{job="logtide"}, namespace)')


def overview() -> dict:
    raw = f'{NS}, topic=~"logtide[.]raw[.].+"'
    return dashboard(
        "logtide-overview",
        "Pipeline overview",
        "From sources into Kafka, through the processors, to the sinks: rates, DLQ, lag.",
        [NAMESPACE],
        [
            Row(
                "Now",
                [
                    stat(
                        "Ingested events/s",
                        f"sum(rate(logtide_events_produced_total{{{raw}}}{RATE}))",
                        "ops",
                        "Events agents and collectors got acknowledged by Kafka on logtide.raw.*",
                    ),
                    stat("Routed events/s", f"sum(rate(logtide_processor_outputs_total{{{NS}}}{RATE}))", "ops"),
                    stat("Written by sinks/s", f"sum(rate(logtide_sink_events_written_total{{{NS}}}{RATE}))", "ops"),
                    stat("DLQ records/s", f"sum(rate(logtide_dlq_records_total{{{NS}}}{RATE}))", "ops"),
                    stat(
                        "Consumer lag",
                        f"sum(logtide_consumer_lag_records{{{NS}}})",
                        "short",
                        "Records between the committed offsets and the end of the partitions, all groups",
                    ),
                    stat("logtide pods up", f"sum(up{{{NS}}})"),
                ],
            ),
            Row(
                "Flow",
                [
                    ts(
                        "Ingest rate by source",
                        (
                            f"sum by (source) (label_replace(rate(logtide_events_produced_total{{{raw}}}{RATE}), "
                            f'"source", "$1", "topic", "logtide[.]raw[.](.+)"))',
                            "{{source}}",
                        ),
                        unit="ops",
                        stack=True,
                    ),
                    ts(
                        "Events routed by sink",
                        (f"sum by (sink) (rate(logtide_processor_outputs_total{{{NS}}}{RATE}))", "{{sink}}"),
                        (f"sum(rate(logtide_processor_unrouted_total{{{NS}}}{RATE}))", "unrouted"),
                        unit="ops",
                        stack=True,
                    ),
                    ts(
                        "Events written by sink",
                        (f"sum by (sink) (rate(logtide_sink_events_written_total{{{NS}}}{RATE}))", "{{sink}}"),
                        (
                            f"sum by (sink) (rate(logtide_sink_duplicates_dropped_total{{{NS}}}{RATE}))",
                            "{{sink}} duplicates dropped",
                        ),
                        unit="ops",
                    ),
                    ts(
                        "Records consumed by component",
                        (f"sum by (component) (rate(logtide_consumer_records_total{{{NS}}}{RATE}))", "{{component}}"),
                        unit="ops",
                    ),
                ],
            ),
            Row(
                "Errors and lag",
                [
                    ts(
                        "DLQ rate by stage",
                        (
                            f"sum by (component, stage, error) (rate(logtide_dlq_records_total{{{NS}}}{RATE}))",
                            "{{component}} {{stage}}: {{error}}",
                        ),
                        unit="ops",
                    ),
                    ts(
                        "Kafka errors",
                        (
                            f"sum by (component) (rate(logtide_produce_errors_total{{{NS}}}{RATE}))",
                            "produce {{component}}",
                        ),
                        (
                            f"sum by (component) (rate(logtide_consumer_commit_errors_total{{{NS}}}{RATE}))",
                            "commit {{component}}",
                        ),
                        (
                            f"sum by (component) (rate(logtide_consumer_retries_total{{{NS}}}{RATE}))",
                            "retry {{component}}",
                        ),
                        unit="ops",
                    ),
                    ts(
                        "Consumer lag per group",
                        (f"sum by (group) (logtide_consumer_lag_records{{{NS}}})", "{{group}}"),
                        description="Growing lag: the group cannot keep up (see LogtideConsumerLagGrowing).",
                    ),
                    ts(
                        "Event-time lag by source",
                        (
                            f"histogram_quantile(0.5, sum by (source, le) (rate(logtide_processor_event_lag_seconds_bucket{{{NS}}}{RATE})))",
                            "p50 {{source}}",
                        ),
                        (
                            f"histogram_quantile(0.99, sum by (source, le) (rate(logtide_processor_event_lag_seconds_bucket{{{NS}}}{RATE})))",
                            "p99 {{source}}",
                        ),
                        unit="s",
                        description="Ingest time minus event time of the events the processors handle.",
                    ),
                    ts(
                        "Bytes produced by component",
                        (f"sum by (component) (rate(logtide_bytes_produced_total{{{NS}}}{RATE}))", "{{component}}"),
                        unit="Bps",
                    ),
                    ts(
                        "Sink write latency (p99)",
                        (
                            f"histogram_quantile(0.99, sum by (sink, le) (rate(logtide_sink_write_seconds_bucket{{{NS}}}{RATE})))",
                            "{{sink}}",
                        ),
                        unit="s",
                    ),
                ],
            ),
            Row(
                "Processors and sinks",
                [
                    ts(
                        "Dropped on purpose, by step",
                        (f"sum by (step) (rate(logtide_processor_dropped_total{{{NS}}}{RATE}))", "{{step}}"),
                        unit="ops",
                        description="Filter and sample steps: events the pipeline meant to drop.",
                    ),
                    ts(
                        "Redactions by kind",
                        (f"sum by (kind) (rate(logtide_processor_redactions_total{{{NS}}}{RATE}))", "{{kind}}"),
                        unit="ops",
                    ),
                    ts(
                        "Bodies by parser",
                        (f"sum by (format) (rate(logtide_processor_parsed_total{{{NS}}}{RATE}))", "{{format}}"),
                        unit="ops",
                        stack=True,
                    ),
                    ts(
                        "Destinations of the monitoring sink",
                        (f"sum by (result) (rate(logtide_sink_loki_entries_total{{{NS}}}{RATE}))", "Loki {{result}}"),
                        (
                            f"sum by (result) (rate(logtide_sink_elasticsearch_docs_total{{{NS}}}{RATE}))",
                            "Elasticsearch {{result}}",
                        ),
                        unit="ops",
                    ),
                    ts(
                        "Audit archive uploads",
                        (f"sum by (result) (rate(logtide_sink_audit_uploads_total{{{NS}}}{RATE}))", "{{result}}/s"),
                        (f"sum(logtide_sink_audit_pending_uploads{{{NS}}})", "segments waiting"),
                    ),
                    ts(
                        "Records that were not envelopes",
                        (f"sum by (sink) (rate(logtide_sink_decode_errors_total{{{NS}}}{RATE}))", "{{sink}}"),
                        unit="ops",
                        description="Sent to the DLQ by the sinks.",
                    ),
                ],
            ),
        ],
    )


def agents() -> dict:
    sel = f'{NS}, node=~"$node"'
    node = Variable(
        "node", "node", 'label_values(logtide_agent_lines_read_total{job="logtide", namespace=~"$namespace"}, node)'
    )
    return dashboard(
        "logtide-agents",
        "Agents",
        "The node agents (DaemonSet): what each node reads, ships, drops and lags.",
        [NAMESPACE, node],
        [
            Row(
                "Now",
                [
                    stat("Agents up", f'sum(up{{{NS}, role="agent"}})'),
                    stat("Lines read/s", f"sum(rate(logtide_agent_lines_read_total{{{sel}}}{RATE}))", "ops"),
                    stat("Acked by Kafka/s", f"sum(rate(logtide_agent_records_produced_total{{{sel}}}{RATE}))", "ops"),
                    stat("Dropped/s", f"sum(rate(logtide_agent_dropped_records_total{{{sel}}}{RATE}))", "ops"),
                    stat("Files tailed", f"sum(logtide_agent_files_tailed{{{sel}}})"),
                    stat("Unacked records", f"sum(logtide_agent_queue_depth{{{sel}}})"),
                ],
            ),
            Row(
                "Per node",
                [
                    ts(
                        "Lines read per node",
                        (f"sum by (node) (rate(logtide_agent_lines_read_total{{{sel}}}{RATE}))", "{{node}}"),
                        unit="ops",
                    ),
                    ts(
                        "Records acknowledged by Kafka per node",
                        (f"sum by (node) (rate(logtide_agent_records_produced_total{{{sel}}}{RATE}))", "{{node}}"),
                        unit="ops",
                    ),
                    ts(
                        "Bytes read per node",
                        (f"sum by (node) (rate(logtide_agent_bytes_read_total{{{sel}}}{RATE}))", "{{node}}"),
                        unit="Bps",
                    ),
                    ts(
                        "Checkpoint lag per node",
                        (f"sum by (node) (logtide_agent_checkpoint_lag_bytes{{{sel}}})", "{{node}}"),
                        unit="bytes",
                        description="Bytes read but not yet checkpointed (acknowledged by Kafka).",
                    ),
                    ts(
                        "Drops by reason",
                        (
                            f"sum by (node, reason) (rate(logtide_agent_dropped_records_total{{{sel}}}{RATE}))",
                            "{{node}} {{reason}}",
                        ),
                        unit="ops",
                    ),
                    ts(
                        "Time paused by backpressure",
                        (f"sum by (node) (rate(logtide_agent_backpressure_seconds_total{{{sel}}}{RATE}))", "{{node}}"),
                        unit="percentunit",
                        description="Share of time reading was paused because Kafka did not acknowledge fast enough.",
                    ),
                    ts(
                        "Producer queue per node",
                        (f"sum by (node) (logtide_agent_queue_depth{{{sel}}})", "{{node}} unacked records"),
                        (
                            f"sum by (node) (rate(logtide_agent_produce_retries_total{{{sel}}}{RATE}))",
                            "{{node}} retries/s",
                        ),
                    ),
                    ts(
                        "Lines by format",
                        (f"sum by (format) (rate(logtide_agent_lines_read_total{{{sel}}}{RATE}))", "{{format}}"),
                        (f"sum(rate(logtide_agent_partial_merges_total{{{sel}}}{RATE}))", "partial merges"),
                        (f"sum(rate(logtide_agent_multiline_merges_total{{{sel}}}{RATE}))", "multiline merges"),
                        unit="ops",
                    ),
                ],
            ),
            Row(
                "Files and metadata",
                [
                    ts(
                        "Rotations and bad input",
                        (f"sum by (kind) (rate(logtide_agent_rotations_total{{{sel}}}{RATE}))", "rotation {{kind}}"),
                        (f"sum by (kind) (rate(logtide_agent_bad_input_total{{{sel}}}{RATE}))", "bad input {{kind}}"),
                        unit="ops",
                    ),
                    ts(
                        "Checkpoints",
                        (
                            f"sum by (node) (rate(logtide_agent_checkpoint_writes_total{{{sel}}}{RATE}))",
                            "{{node}} writes",
                        ),
                        (
                            f"sum by (node) (rate(logtide_agent_checkpoint_errors_total{{{sel}}}{RATE}))",
                            "{{node}} errors",
                        ),
                        unit="ops",
                        description="Checkpoint transactions; errors mean a full or failing disk under the hostPath.",
                    ),
                    ts(
                        "Kubernetes metadata",
                        (f"min by (node) (logtide_agent_kube_api_connected{{{sel}}})", "{{node}} in sync"),
                        (
                            f"sum by (node) (rate(logtide_agent_kube_api_errors_total{{{sel}}}{RATE}))",
                            "{{node}} API errors/s",
                        ),
                        (f"sum by (node) (logtide_agent_pod_cache_size{{{sel}}})", "{{node}} pods cached"),
                    ),
                ],
            ),
        ],
    )


def collectors() -> dict:
    sel = f'{NS}, collector=~"$collector"'
    collector = Variable(
        "collector",
        "collector",
        'label_values(logtide_collector_api_calls_total{job="logtide", namespace=~"$namespace"}, collector)',
    )
    return dashboard(
        "logtide-collectors",
        "Collectors",
        "Pull collectors (Kubernetes API, CloudWatch Logs, Salesforce): API calls, throttles, checkpoints.",
        [NAMESPACE, collector],
        [
            Row(
                "Now",
                [
                    stat("Events shipped/s", f"sum(rate(logtide_collector_events_total{{{sel}}}{RATE}))", "ops"),
                    stat("API calls/s", f"sum(rate(logtide_collector_api_calls_total{{{sel}}}{RATE}))", "reqps"),
                    stat("Throttles/s", f"sum(rate(logtide_collector_throttles_total{{{sel}}}{RATE}))", "ops"),
                    stat("Errors/s", f"sum(rate(logtide_collector_errors_total{{{sel}}}{RATE}))", "ops"),
                    stat("Oldest checkpoint", f"max(logtide_collector_checkpoint_age_seconds{{{sel}}})", "s"),
                    stat("Work items", f"sum(logtide_collector_work_items{{{sel}}})"),
                ],
            ),
            Row(
                "Source APIs",
                [
                    ts(
                        "Events shipped per collector",
                        (f"sum by (collector) (rate(logtide_collector_events_total{{{sel}}}{RATE}))", "{{collector}}"),
                        unit="ops",
                    ),
                    ts(
                        "API calls",
                        (
                            f"sum by (collector, call) (rate(logtide_collector_api_calls_total{{{sel}}}{RATE}))",
                            "{{collector}} {{call}}",
                        ),
                        unit="reqps",
                    ),
                    ts(
                        "Throttles",
                        (
                            f"sum by (collector) (rate(logtide_collector_throttles_total{{{sel}}}{RATE}))",
                            "{{collector}}",
                        ),
                        unit="ops",
                        description="Times the source API throttled a collector or its own limit made it back off.",
                    ),
                    ts(
                        "Errors by kind",
                        (
                            f"sum by (collector, kind) (rate(logtide_collector_errors_total{{{sel}}}{RATE}))",
                            "{{collector}} {{kind}}",
                        ),
                        unit="ops",
                    ),
                ],
            ),
            Row(
                "Checkpoints and work",
                [
                    ts(
                        "Checkpoint age (10 oldest items)",
                        (
                            f"topk(10, max by (collector, item) (logtide_collector_checkpoint_age_seconds{{{sel}}}))",
                            "{{collector}} {{item}}",
                        ),
                        unit="s",
                        description="Seconds since a work item's checkpoint last moved (see LogtideCollectorCheckpointStale).",
                    ),
                    ts(
                        "Source lag (10 furthest behind)",
                        (
                            f"topk(10, max by (collector, item) (logtide_collector_source_lag_seconds{{{sel}}}))",
                            "{{collector}} {{item}}",
                        ),
                        unit="s",
                    ),
                    ts(
                        "Work items per replica",
                        (f"sum by (collector, pod) (logtide_collector_work_items{{{sel}}})", "{{collector}} {{pod}}"),
                    ),
                    ts(
                        "Duplicates dropped",
                        (
                            f"sum by (collector) (rate(logtide_collector_duplicates_dropped_total{{{sel}}}{RATE}))",
                            "{{collector}}",
                        ),
                        unit="ops",
                    ),
                    ts(
                        "Salesforce daily API usage",
                        (f"max by (pod) (logtide_collector_salesforce_api_usage_ratio{{{NS}}})", "{{pod}}"),
                        unit="percentunit",
                        description="Used/total daily API calls as Salesforce reports them; the collector "
                        "pauses at its api_usage_limit.",
                    ),
                ],
            ),
        ],
    )


def alerting() -> dict:
    return dashboard(
        "logtide-alerting",
        "Alerting",
        "The alerting engine: alerts, notifications, rules.",
        [NAMESPACE],
        [
            Row(
                "Now",
                [
                    stat("Alerts firing", f'sum(logtide_alerting_alerts{{{NS}, state="firing"}})'),
                    stat("Notifications/s", f"sum(rate(logtide_alerting_notifications_total{{{NS}}}{RATE}))", "ops"),
                    stat(
                        "Failed notifications/s",
                        f"sum(rate(logtide_alerting_notification_failures_total{{{NS}}}{RATE}))",
                        "ops",
                    ),
                    stat("Events evaluated/s", f"sum(rate(logtide_alerting_events_total{{{NS}}}{RATE}))", "ops"),
                    stat(
                        "Template errors/s", f"sum(rate(logtide_alerting_template_errors_total{{{NS}}}{RATE}))", "ops"
                    ),
                    stat("Tracked group keys", f"sum(logtide_alerting_tracked_keys{{{NS}}})"),
                ],
            ),
            Row(
                "Alerts",
                [
                    ts("Alerts by state", (f"sum by (state) (logtide_alerting_alerts{{{NS}}})", "{{state}}")),
                    ts(
                        "State transitions",
                        (f"sum by (to) (rate(logtide_alerting_transitions_total{{{NS}}}{RATE}))", "to {{to}}"),
                        unit="ops",
                    ),
                    ts(
                        "Rule matches (top 10 rules)",
                        (
                            f"topk(10, sum by (rule) (rate(logtide_alerting_rule_matches_total{{{NS}}}{RATE})))",
                            "{{rule}}",
                        ),
                        unit="ops",
                    ),
                    ts(
                        "Group keys",
                        (f"topk(10, sum by (rule) (logtide_alerting_tracked_keys{{{NS}}}))", "{{rule}} tracked"),
                        (
                            f"sum by (rule) (rate(logtide_alerting_groups_dropped_total{{{NS}}}{RATE}))",
                            "{{rule}} dropped/s",
                        ),
                    ),
                ],
            ),
            Row(
                "Notifications",
                [
                    ts(
                        "Notifications sent",
                        (
                            f"sum by (receiver, integration) (rate(logtide_alerting_notifications_total{{{NS}}}{RATE}))",
                            "{{receiver}} via {{integration}}",
                        ),
                        unit="ops",
                    ),
                    ts(
                        "Notifications failed",
                        (
                            f"sum by (receiver, integration, reason) (rate(logtide_alerting_notification_failures_total{{{NS}}}{RATE}))",
                            "{{receiver}} via {{integration}}: {{reason}}",
                        ),
                        unit="ops",
                    ),
                    ts(
                        "Delivery time (p95)",
                        (
                            f"histogram_quantile(0.95, sum by (integration, le) (rate(logtide_alerting_notification_seconds_bucket{{{NS}}}{RATE})))",
                            "{{integration}}",
                        ),
                        unit="s",
                    ),
                    ts(
                        "Held back",
                        (f"sum by (reason) (rate(logtide_alerting_muted_total{{{NS}}}{RATE}))", "muted: {{reason}}"),
                        (
                            f"sum by (receiver) (rate(logtide_alerting_rate_limited_total{{{NS}}}{RATE}))",
                            "rate-limited: {{receiver}}",
                        ),
                        unit="ops",
                    ),
                    ts(
                        "Rule reloads",
                        (
                            f"sum by (result) (increase(logtide_alerting_rule_reloads_total{{{NS}}}{RATE}))",
                            "{{result}}",
                        ),
                    ),
                    ts(
                        "Batch evaluation time (p95)",
                        (
                            f"histogram_quantile(0.95, sum by (stage, le) (rate(logtide_alerting_batch_seconds_bucket{{{NS}}}{RATE})))",
                            "{{stage}}",
                        ),
                        unit="s",
                    ),
                ],
            ),
        ],
    )


def service_health() -> dict:
    sel = f'{NS}, service=~"$service", exported_namespace=~"$app_namespace"'
    errors = f'{sel}, severity=~"error|fatal"'
    base = 'logtide_sink_log_events_total{job="logtide", namespace=~"$namespace"}'
    return dashboard(
        "logtide-service-health",
        "Service health (from logs)",
        "Errors and log volume per service, counted by the monitoring sink from the logs themselves.",
        [
            NAMESPACE,
            Variable("app_namespace", "app namespace", f"label_values({base}, exported_namespace)"),
            Variable("service", "service", f"label_values({base}, service)"),
        ],
        [
            Row(
                "Now",
                [
                    stat("Errors/s", f"sum(rate(logtide_sink_log_events_total{{{errors}}}{RATE}))", "ops"),
                    stat(
                        "Error ratio",
                        f"sum(rate(logtide_sink_log_events_total{{{errors}}}{RATE})) / "
                        f"sum(rate(logtide_sink_log_events_total{{{sel}}}{RATE}))",
                        "percentunit",
                    ),
                    stat("Log events/s", f"sum(rate(logtide_sink_log_events_total{{{sel}}}{RATE}))", "ops"),
                    stat("Log bytes/s", f"sum(rate(logtide_sink_log_bytes_total{{{sel}}}{RATE}))", "Bps"),
                    stat(
                        "Services logging",
                        f"count(sum by (service) (rate(logtide_sink_log_events_total{{{sel}}}{RATE})))",
                    ),
                    stat(
                        "Capped label values/s",
                        f"sum(rate(logtide_sink_log_label_overflow_total{{{NS}}}{RATE}))",
                        "ops",
                        "Events counted under __overflow__ because a label reached its cap of distinct values.",
                    ),
                ],
            ),
            Row(
                "Errors",
                [
                    ts(
                        "Errors per service",
                        (f"sum by (service) (rate(logtide_sink_log_events_total{{{errors}}}{RATE}))", "{{service}}"),
                        unit="ops",
                        width=24,
                    ),
                    ts(
                        "Error ratio per service",
                        (
                            f"sum by (service) (rate(logtide_sink_log_events_total{{{errors}}}{RATE})) / "
                            f"sum by (service) (rate(logtide_sink_log_events_total{{{sel}}}{RATE}))",
                            "{{service}}",
                        ),
                        unit="percentunit",
                    ),
                    ts(
                        "Errors per app namespace",
                        (
                            f"sum by (exported_namespace) (rate(logtide_sink_log_events_total{{{errors}}}{RATE}))",
                            "{{exported_namespace}}",
                        ),
                        unit="ops",
                    ),
                ],
            ),
            Row(
                "Volume",
                [
                    ts(
                        "Log events by severity",
                        (f"sum by (severity) (rate(logtide_sink_log_events_total{{{sel}}}{RATE}))", "{{severity}}"),
                        unit="ops",
                        stack=True,
                    ),
                    ts(
                        "Noisiest services (top 10)",
                        (
                            f"topk(10, sum by (service) (rate(logtide_sink_log_events_total{{{sel}}}{RATE})))",
                            "{{service}}",
                        ),
                        unit="ops",
                    ),
                    ts(
                        "Log bytes per service",
                        (f"sum by (service) (rate(logtide_sink_log_bytes_total{{{sel}}}{RATE}))", "{{service}}"),
                        unit="Bps",
                    ),
                    ts(
                        "Log events by source",
                        (f"sum by (source) (rate(logtide_sink_log_events_total{{{sel}}}{RATE}))", "{{source}}"),
                        unit="ops",
                    ),
                ],
            ),
        ],
    )


DASHBOARDS = {
    "overview": overview,
    "agents": agents,
    "collectors": collectors,
    "alerting": alerting,
    "service-health": service_health,
}


def render() -> dict[str, str]:
    return {f"{name}.json": json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


if __name__ == "__main__":
    files = render()
    if "--check" in sys.argv:
        stale = [n for n, text in files.items() if not (OUT / n).exists() or (OUT / n).read_text() != text]
        extra = sorted({p.name for p in OUT.glob("*.json")} - set(files))
        sys.exit(f"dashboards stale: {stale + extra}; run python helm/tools/dashboards.py" if stale or extra else 0)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (OUT / name).write_text(text)
    print(f"wrote {len(files)} dashboards to {OUT}")

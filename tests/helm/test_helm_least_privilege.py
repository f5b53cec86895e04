"""Least privilege that holds: the chart's RBAC is what the code calls on the Kubernetes API (read from
the source, and recorded from a real client against an API server double); each role's NetworkPolicy
lets it reach exactly the ports its wiring names (Kafka bootstrap, S3, CloudWatch, Loki, webhooks...)."""

from __future__ import annotations

import ast
import re
import time

import pytest
from helm_support import CHART, ROOT, full_values, helm, render

#: Top-level code packages (they install as logtide.<name>).
PACKAGES = ("logtide", "agents", "collectors", "processors", "alerting", "tools")

#: Which chart role runs the code under a source folder (the longest prefix wins).
ROLE_OF_CODE = {"agents": "agent", "collectors/k8s": "collector-k8s"}

_GENERATED = re.compile(
    r"^(list|read|watch|create|patch|replace|delete|connect_get)_(namespaced_)?([a-z_]+?)"
    r"(_for_all_namespaces)?$"
)
_PATH = re.compile(r"^/api/v1/(?:namespaces/\{namespace\}/)?([a-z]+)(?:/\{name\}(?:/([a-z]+))?)?$")


def _plural(kind: str) -> str:
    return kind if kind.endswith("s") else kind + "s"


def _calls_in(node: ast.Call, source: str) -> set[tuple[str, str]]:
    """(resource, verb) of one Kubernetes API call site, or an empty set when it is none."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    args = [a for a in node.args]
    # CoreV1Api's generated methods: list_namespaced_pod, read_namespaced_pod_log, ...
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Attribute) and func.value.attr == "core":
        m = _GENERATED.match(name)
        assert m, f"unknown CoreV1Api call {name}"
        verb, kind = {"read": "get", "connect_get": "get"}.get(m.group(1), m.group(1)), m.group(3)
        resource = "pods/log" if kind == "pod_log" else _plural(kind)
        return {(resource, verb)}
    # watch.Watch().stream(<generated list method>, ...): a watch of that list.
    if name == "stream" and args and isinstance(args[0], ast.Attribute):
        m = _GENERATED.match(args[0].attr)
        if m and m.group(1) == "list":
            return {(_plural(m.group(3)), "watch")}
    # Raw paths: the agent's list+watch threads and GETs through ApiClient.param_serialize.
    paths = [
        a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value.startswith("/api")
    ]
    if not paths:
        return set()
    m = _PATH.match(paths[0])
    assert m, f"unknown Kubernetes API path {paths[0]}"
    resource = m.group(1) + (f"/{m.group(2)}" if m.group(2) else "")
    if name == "_ListWatch":
        return {(resource, "list"), (resource, "watch")}
    methods = [
        a.value for a in args if isinstance(a, ast.Constant) and a.value in ("GET", "POST", "PUT", "PATCH", "DELETE")
    ]
    if methods == ["GET"]:
        return {(resource, "get" if "{name}" in paths[0] else "list")}
    raise AssertionError(f"a Kubernetes API call this test cannot read: {ast.get_source_segment(source, node)}")


def _imports_kubernetes(tree: ast.AST) -> bool:
    """Code that talks to the Kubernetes API does so through the `kubernetes` client package."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "kubernetes" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "kubernetes":
            return True
    return False


def api_calls_in_code() -> dict[str, set[tuple[str, str]]]:
    """chart role -> every (resource, verb) its code calls; "" for code no role with RBAC runs."""
    found: dict[str, set[tuple[str, str]]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            source = path.read_text()
            tree = ast.parse(source)
            if not _imports_kubernetes(tree):
                continue
            role = next(
                (
                    r
                    for prefix, r in sorted(ROLE_OF_CODE.items(), key=lambda kv: -len(kv[0]))
                    if rel.startswith(prefix + "/")
                ),
                "",
            )
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    try:
                        calls = _calls_in(node, source)
                    except AssertionError as exc:
                        raise AssertionError(f"{rel}:{node.lineno}: {exc}") from None
                    if calls:
                        found.setdefault(role, set()).update(calls)
    return found


def granted(rules: list[dict]) -> set[tuple[str, str]]:
    out = set()
    for rule in rules:
        assert rule["apiGroups"] == [""], rule
        out |= {(r, v) for r in rule["resources"] for v in rule["verbs"]}
    return out


def test_the_code_scan_sees_the_calls_we_know_of():
    calls = api_calls_in_code()
    assert ("pods", "watch") in calls["agent"] and ("namespaces", "list") in calls["agent"]
    assert ("pods/log", "get") in calls["collector-k8s"] and ("pods", "watch") in calls["collector-k8s"]


def test_rbac_is_exactly_what_the_code_calls():
    calls = api_calls_in_code()
    assert set(calls) == {"agent", "collector-k8s"}, f"Kubernetes API calls outside the roles with RBAC: {calls}"
    r = render(full_values())
    [agent] = r.kind("ClusterRole")
    assert agent["metadata"]["name"] == "logging-lt-logtide-agent"
    assert granted(agent["rules"]) == calls["agent"]
    # The collector reads only the namespaces it collects: a Role in each, never a ClusterRole.
    roles = {role["metadata"]["namespace"]: role for role in r.kind("Role")}
    assert set(roles) == {"shop", "payments"}
    for role in roles.values():
        assert role["metadata"]["name"] == "logging-lt-logtide-collector-k8s"
        assert granted(role["rules"]) == calls["collector-k8s"]
    everything = str([d for d in r.docs if d["kind"] in ("Role", "ClusterRole")])
    assert "secrets" not in everything and "nodes" not in everything and "'*'" not in everything


def test_bindings_give_each_role_to_its_own_service_account():
    r = render(full_values())
    workloads = {w["metadata"]["name"]: w["spec"]["template"]["spec"] for w in r.workloads()}
    bindings = r.kind("ClusterRoleBinding") + r.kind("RoleBinding")
    assert len(bindings) == 3
    for b in bindings:
        kind = "ClusterRole" if b["kind"] == "ClusterRoleBinding" else "Role"
        assert b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": b["metadata"]["name"]}
        [subject] = b["subjects"]
        assert subject["kind"] == "ServiceAccount" and subject["namespace"] == "logging"
        user = [n for n, s in workloads.items() if s["serviceAccountName"] == subject["name"]]
        assert user == (["lt-logtide-agent"] if kind == "ClusterRole" else ["lt-logtide-collector-k8s"])


def test_agent_without_pod_metadata_gets_no_rbac_and_no_token():
    r = render({"agent": {"config": {"kubernetes": {"enabled": False}}}})
    assert not r.kind("ClusterRole") and not r.kind("ClusterRoleBinding")
    spec = r.get("DaemonSet", "lt-logtide-agent")["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False


@pytest.mark.timeout(60)
def test_the_agent_calls_only_what_its_cluster_role_grants():
    """The real client of the agent against an API server double: every request it makes is granted."""
    from logtide.agents.config import KubernetesSettings
    from logtide.agents.pod_metadata import PodMetadata

    from tests.agents.kube_api_double import KubeApiDouble, namespace, pod

    api = KubeApiDouble()
    api.put("namespaces", namespace("shop"))
    api.put("pods", pod("shop", "web-1", "uid-web"))
    meta = PodMetadata(KubernetesSettings(api_server=api.url, node_name="node-1", watch_timeout_seconds=30)).start()
    try:
        deadline = time.monotonic() + 30
        while sum("watch=" in r for r in api.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        meta.stop()
        api.close()
    made = set()
    for request in api.requests:
        path, _, query = request.partition("?")
        made.add((path.removeprefix("/api/v1/"), "watch" if "watch=true" in query else "list"))
    [role] = render({}).kind("ClusterRole")
    assert made == {("pods", "list"), ("pods", "watch"), ("namespaces", "list"), ("namespaces", "watch")}
    assert made <= granted(role["rules"])


# ---- egress derived from the wiring -----------------------------------------------------------

MSK = "b-1.logs.abc123.c2.kafka.eu-west-1.amazonaws.com:9096,b-2.logs.abc123.c2.kafka.eu-west-1.amazonaws.com:9096"

#: An AWS-style production install: MSK over SASL/SCRAM (9096), S3-compatible audit store, CloudWatch,
#: Salesforce, Loki, PostgreSQL behind pgbouncer, Slack (a Secret reference), a webhook and PagerDuty.
REALISTIC = {
    "kafka": {
        "bootstrap": MSK,
        "securityProtocol": "SASL_SSL",
        "sasl": {"mechanism": "SCRAM-SHA-512", "existingSecret": "msk-scram", "usernameKey": "username"},
    },
    "networkPolicy": {"enabled": True, "endpointPorts": {"${SLACK_WEBHOOK_URL}": 443}},
    "collectors": {
        "cloudwatch": {
            "enabled": True,
            "config": {
                "cloudwatch": {
                    "regions": ["eu-west-1"],
                    "log_groups": [{"prefix": "/ecs/"}],
                    "endpoint_url": "https://logs.eu-west-1.amazonaws.com",
                }
            },
        },
        "salesforce": {
            "enabled": True,
            "config": {
                "salesforce": {
                    "auth": {
                        "kind": "jwt",
                        "username": "int@example.com",
                        "client_id": "file:/etc/sf/id",
                        "private_key": "file:/etc/sf/key",
                    }
                }
            },
            "extraSecretMounts": [{"name": "sf", "secretName": "salesforce-jwt", "mountPath": "/etc/sf"}],
        },
    },
    "sinks": {
        "monitoring": {"config": {"monitoring": {"loki": {"url": "http://loki-gateway.monitoring:3100"}}}},
        "audit": {
            "enabled": True,
            "config": {
                "audit": {
                    "storage": {"s3": {"bucket": "audit", "endpoint_url": "http://minio.storage.svc:9000"}},
                    "hmac_key": "file:/etc/audit/key",
                }
            },
            "extraSecretMounts": [{"name": "audit", "secretName": "audit-hmac", "mountPath": "/etc/audit"}],
        },
        "analytics": {
            "enabled": True,
            "config": {"analytics": {"postgres": {"dsn": "postgresql://logtide@pgbouncer.db:6432/logs"}}},
        },
    },
    "alerting": {
        "config": {
            "receivers": [
                {"name": "slack", "slack": [{"url": "${SLACK_WEBHOOK_URL}"}]},
                {"name": "hook", "webhook": [{"url": "https://hooks.example.com:8443/logtide"}]},
                {"name": "pager", "pagerduty": [{"routing_key": "${PD_KEY}"}]},
            ],
            "route": {"receiver": "slack"},
        }
    },
}

#: What each role must reach besides DNS and Kafka (9096).
MUST_REACH = {
    "agent": {443, 6443},  # the Kubernetes API (kubernetesApiPorts)
    "collector-cloudwatch": {443},
    "collector-salesforce": {443},
    "processor": set(),
    "sink-monitoring": {3100},
    "sink-audit": {9000},
    "sink-analytics": {6432},
    "alerting": {443, 8443},  # Slack (declared), PagerDuty's default URL, the webhook
}


def _egress(policy: dict) -> tuple[set[int], set[int]]:
    """(Kafka ports, every other TCP port) a NetworkPolicy lets its pods reach; DNS checked on the way."""
    rules = policy["spec"]["egress"]
    assert rules[0]["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert all(rule.get("ports") for rule in rules), "an egress rule without ports allows every port"
    kafka = {p["port"] for p in rules[1]["ports"]}
    other = {p["port"] for rule in rules[2:] for p in rule["ports"]}
    return kafka, other


def test_each_role_reaches_exactly_what_its_wiring_names():
    r = render(REALISTIC)
    policies = {p["metadata"]["name"].removeprefix("lt-logtide-"): p for p in r.kind("NetworkPolicy")}
    assert set(policies) == set(MUST_REACH)
    for role, policy in policies.items():
        assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == role
        kafka, other = _egress(policy)
        assert kafka == {9096}, role
        assert other == MUST_REACH[role], role
        ingress = [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]]
        assert ingress == ([9464, 9093] if role == "alerting" else [9464]), role


def test_kafka_ports_come_from_every_bootstrap_entry_plus_the_extra_list():
    r = render(
        {
            "networkPolicy": {"enabled": True, "kafkaPorts": [9094], "extraEgressPorts": [8080]},
            "kafka": {"bootstrap": "k-0.kafka:9092,k-1.kafka:19092"},
        }
    )
    for policy in r.kind("NetworkPolicy"):
        kafka, other = _egress(policy)
        assert kafka == {9092, 19092, 9094}
        assert 8080 in other


@pytest.mark.parametrize(
    "values, named",
    [
        (
            {"sinks": {"monitoring": {"config": {"monitoring": {"loki": {"url": "${LOKI_URL}"}}}}}},
            "sinks.monitoring.config.monitoring.loki.url",
        ),
        (
            {
                "alerting": {
                    "config": {
                        "receivers": [{"name": "hook", "webhook": [{"url": "${HOOK_URL}"}]}],
                        "route": {"receiver": "hook"},
                    }
                }
            },
            "alerting.config.receivers[0].webhook[0].url",
        ),
        (
            {"sinks": {"monitoring": {"config": {"monitoring": {"loki": {"url": "loki:3100"}}}}}},
            "sinks.monitoring.config.monitoring.loki.url",
        ),
    ],
)
def test_a_port_that_cannot_be_derived_fails_the_render(values, named):
    with pytest.raises(helm().HelmError) as err:
        render({**values, "networkPolicy": {"enabled": True}})
    message = str(err.value)
    assert "networkPolicy: cannot derive the port" in message and named in message, message
    # Without a NetworkPolicy nothing is blocked, so nothing to derive.
    render(values)


def test_a_declared_reference_port_is_allowed():
    r = render(
        {
            "networkPolicy": {"enabled": True, "endpointPorts": {"${LOKI_URL}": 3100}},
            "sinks": {"monitoring": {"config": {"monitoring": {"loki": {"url": "${LOKI_URL}"}}}}},
        }
    )
    assert _egress(r.get("NetworkPolicy", "lt-logtide-sink-monitoring"))[1] == {3100}


def test_realistic_values_render_valid_kubernetes_objects():
    import kubernetes_validate

    r = render(REALISTIC)
    for doc in r.manifests():
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    report = helm().lint(str(CHART), REALISTIC, strict=True, kube_version="v1.30.0")
    assert not [m for m in report["messages"] if m["severity"] >= 2] + report.get("errors", [])

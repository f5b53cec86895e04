"""Least privilege that holds: the chart's RBAC is what the code calls on the Kubernetes API (read from
the source, and recorded from a real client against an API server double); each role's NetworkPolicy
lets it reach exactly the ports its wiring names (Kafka bootstrap, S3, CloudWatch, Loki, webhooks...)."""

from __future__ import annotations

import ast
import re
import time

import pytest

from helm_support import ROOT, full_values, helm, render

#: Top-level code packages (they install as logtide.<name>).
PACKAGES = ("logtide", "agents", "collectors", "processors", "alerting", "tools")

#: Which chart role runs the code under a source folder (the longest prefix wins).
ROLE_OF_CODE = {"agents": "agent", "collectors/k8s": "collector-k8s"}

_GENERATED = re.compile(r"^(list|read|watch|create|patch|replace|delete|connect_get)_(namespaced_)?([a-z_]+?)"
                        r"(_for_all_namespaces)?$")
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
    paths = [a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value.startswith("/api")]
    if not paths:
        return set()
    m = _PATH.match(paths[0])
    assert m, f"unknown Kubernetes API path {paths[0]}"
    resource = m.group(1) + (f"/{m.group(2)}" if m.group(2) else "")
    if name == "_ListWatch":
        return {(resource, "list"), (resource, "watch")}
    methods = [a.value for a in args if isinstance(a, ast.Constant) and a.value in ("GET", "POST", "PUT", "PATCH", "DELETE")]
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
            role = next((r for prefix, r in sorted(ROLE_OF_CODE.items(), key=lambda kv: -len(kv[0]))
                         if rel.startswith(prefix + "/")), "")
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

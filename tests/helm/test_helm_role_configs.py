"""The config files the chart renders are the ones the roles accept: each ConfigMap validates with its
role's own pydantic model, and every path in it lands on a volume the pod mounts."""

from __future__ import annotations

import importlib

import pytest

from helm_support import full_values, pod_specs, render

#: `logtide <command>` -> its config model (module:Class).
ROLE_MODELS = {
    "agent": "logtide.agents.config:AgentConfig",
    "collect": "logtide.collectors.config:CollectConfig",
    "process": "logtide.processors.app:ProcessorConfig",
    "sink": "logtide.processors.sinks.config:SinkConfig",
    "alert": "logtide.alerting.config:AlertConfig",
}


def _model(command: str):
    module, cls = ROLE_MODELS[command].split(":")
    return getattr(importlib.import_module(module), cls)


@pytest.fixture(scope="module", params=["default", "full"])
def rendered(request):
    return render(full_values() if request.param == "full" else {})


def _roles(rendered):
    for w, spec in pod_specs(rendered):
        container = spec["containers"][0]
        yield w["metadata"]["name"].removeprefix("lt-logtide-"), container["args"][0], spec, container


def test_each_role_config_validates_with_its_model(rendered):
    checked = set()
    for role, command, _, container in _roles(rendered):
        assert container["args"] == [command, "--config", "/etc/logtide/config/config.yaml"]
        _model(command).model_validate(rendered.role_config(role))
        checked.add(command)
    assert checked >= {"agent", "process", "sink", "alert"}


def test_collectors_run_the_section_named_after_them():
    r = render(full_values())
    for name in ("k8s", "cloudwatch", "salesforce"):
        config = _model("collect").model_validate(r.role_config(f"collector-{name}"))
        assert config.named() == [name]


def test_agent_config_points_at_the_mounts(rendered):
    config = _model("agent").model_validate(rendered.role_config("agent"))
    spec = rendered.get("DaemonSet", "lt-logtide-agent")["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert config.mode == "kubernetes" and config.metadata_enabled()
    assert config.pods_root == mounts["varlogpods"] and config.containers_root == mounts["varlogcontainers"]
    assert config.checkpoint_dir == mounts["checkpoints"]
    assert all(g.startswith((config.pods_root, config.containers_root)) for g in config.include_globs())
    env = {e["name"] for e in spec["containers"][0]["env"]}
    assert "NODE_NAME" in env, "the agent watches only its own node's pods ($NODE_NAME)"


def test_sinks_run_the_section_named_after_them(rendered):
    for role, command, _, _ in _roles(rendered):
        if command == "sink":
            config = _model("sink").model_validate(rendered.role_config(role))
            assert list(config.enabled()) == [role.removeprefix("sink-")]


def test_alerting_loads_its_rules_from_the_config_map(tmp_path):
    """Write the ConfigMap as the pod sees it, then load it the way `logtide alert` does."""
    from logtide.alerting.config import load_alert_config
    from logtide.alerting.rules import load_rules

    cm = render({}).get("ConfigMap", "lt-logtide-alerting")
    for name, text in cm["data"].items():
        (tmp_path / name).write_text(text)
    config = load_alert_config(tmp_path / "config.yaml")
    rules = load_rules(config.rule_paths())
    assert [r.name for r in rules] == ["FatalLogged", "HighErrorRatio"]
    assert config.api.host == "0.0.0.0" and config.state_path.startswith("/var/lib/logtide/data/")


def test_alerting_api_is_served_on_its_service(rendered):
    svc = rendered.get("Service", "lt-logtide-alerting")
    assert {"name": "http-api", "port": 9093, "targetPort": "http-api", "protocol": "TCP"} in svc["spec"]["ports"]
    container = rendered.get("Deployment", "lt-logtide-alerting")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "http-api", "containerPort": 9093, "protocol": "TCP"} in container["ports"]


def _strings(node, key=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, str(k))
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v, key)
    elif isinstance(node, str):
        yield key, node


#: Config keys that name a file or directory in the pod (log group names also start with "/").
LOCAL_PATH_KEYS = ("_dir", "_root", "_path", "file", "kubeconfig")


def test_every_path_in_a_config_is_on_a_mounted_volume(rendered):
    for role, command, spec, container in _roles(rendered):
        mounts = container["volumeMounts"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        for key, value in _strings(rendered.role_config(role)):
            if value.startswith("file:/"):
                path, want = value[5:], "secret"
            elif value.startswith("/") and (key == "path" or key.endswith(LOCAL_PATH_KEYS)):
                path, want = value, None
            else:
                continue
            owner = [m for m in mounts if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")]
            assert owner, f"{role}: {key}={value} is on no mounted volume (read-only root filesystem)"
            if want == "secret":
                assert "secret" in volumes[owner[-1]["name"]] and owner[-1].get("readOnly"), f"{role}: {value}"


def test_writable_state_on_a_claim_when_persistence_is_on():
    r = render(full_values())
    audit = r.get("Deployment", "lt-logtide-sink-audit")
    spec = audit["spec"]["template"]["spec"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "lt-logtide-sink-audit"}} in spec["volumes"]
    assert audit["spec"]["strategy"] == {"type": "Recreate"}
    pvc = r.get("PersistentVolumeClaim", "lt-logtide-sink-audit")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "50Gi" and pvc["spec"]["storageClassName"] == "gp3"
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    analytics = r.get("Deployment", "lt-logtide-sink-analytics")["spec"]["template"]["spec"]
    assert {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}} in analytics["volumes"]
    assert not [p for p in render({}).kind("PersistentVolumeClaim")]


def test_keys_the_chart_sets_exist_in_the_models():
    """The chart writes these keys itself; a rename in a model must break this test, not a cluster."""
    from logtide.alerting.config import AlertConfig
    from logtide.agents.config import AgentConfig
    from logtide.processors.sinks.config import SinkConfig

    assert {"mode", "pods_root", "containers_root", "checkpoint_dir"} <= set(AgentConfig.model_fields)
    assert {"state_path", "api", "rules_files"} <= set(AlertConfig.model_fields)
    assert {"monitoring", "audit", "analytics"} <= set(SinkConfig.model_fields)

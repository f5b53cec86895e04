"""The config files the chart renders are the ones the roles accept: each ConfigMap validates with its
role's own pydantic model, and every path in it lands on a volume the pod mounts."""

from __future__ import annotations

import sys

import pytest

from helm_support import ROOT, full_values, helm, pod_specs, render

sys.path.insert(0, str(ROOT / "helm" / "tools"))
from values_schema import ROLE_MODELS  # `logtide <command>` -> its config model
from values_schema import role_model as _model


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
    for role, _command, spec, container in _roles(rendered):
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


# ---- role config checked at install ---------------------------------------------------------------

#: (values, where the schema error points, model command or None when only the chart requires it)
BAD_ROLE_CONFIGS = [
    ({"agent": {"config": {"bogus_key": 1}}}, "/agent/config", "agent"),
    ({"processor": {"config": {"max_batch": "lots"}}}, "/processor/config/max_batch", "process"),
    (
        {"alerting": {"config": {"receivers": [{"name": "x", "slack": [{"channel": "#ops"}]}]}}},
        "/alerting/config/receivers/0/slack/0",
        "alert",
    ),
    (
        {"collectors": {"cloudwatch": {"enabled": True, "config": {"cloudwatch": {"log_groups": [{"name": "/x"}]}}}}},
        "/collectors/cloudwatch/config/cloudwatch",
        "collect",
    ),
    (
        {
            "sinks": {
                "monitoring": {"config": {"monitoring": {"loki": {"url": "http://loki:3100", "batch_bytes": "1MB"}}}}
            }
        },
        "/sinks/monitoring/config/monitoring/loki/batch_bytes",
        "sink",
    ),
    # The model takes a sink config without any section; the role then has nothing to run. The chart refuses it.
    ({"sinks": {"eu": {"enabled": True, "config": {}}}}, "/sinks/eu/config", None),
    ({"sinks": {"eu": {"enabled": True}}}, "/sinks/eu", None),
]


@pytest.mark.parametrize("values, where, command", BAD_ROLE_CONFIGS)
def test_bad_role_config_is_refused_at_install_as_the_role_would(values, where, command):
    with pytest.raises(helm().HelmError) as err:
        render(values)
    assert where in str(err.value), str(err.value)
    if command:
        [spec] = values.values()
        own = spec["config"] if "config" in spec else next(iter(spec.values()))["config"]
        with pytest.raises(Exception) as refused:
            _model(command).model_validate(own)
        assert type(refused.value).__name__ == "ValidationError"


@pytest.mark.parametrize(
    "example, where",
    [
        ("agent", "agent"),
        ("process", "processor"),
        ("alert", "alerting"),
        ("sink", "sinks.example"),
        ("collect", "collectors.k8s"),
    ],
)
def test_the_documented_example_configs_are_accepted(example, where):
    """The schema is no stricter than the role: each examples/<role>.yaml (minus what the chart wires) renders."""
    import yaml

    config = yaml.safe_load((ROOT / "examples" / f"{example}.yaml").read_text())
    wired = {
        "kafka",
        "http",
        "mode",
        "pods_root",
        "containers_root",
        "checkpoint_dir",
        "state_path",
        "api",
        "rules_files",
        "base_dir",
    }
    config = {k: v for k, v in config.items() if k not in wired}
    values: dict = {"enabled": True, "config": config}
    for part in reversed(where.split(".")):
        values = {part: values}
    r = render(values)
    name = {
        "agent": "agent",
        "process": "processor",
        "alert": "alerting",
        "sink": "sink-example",
        "collect": "collector-k8s",
    }[example]
    _model(example).model_validate(r.role_config(name))


def test_the_schema_of_role_configs_is_the_models():
    """values.schema.json holds each role model's own JSON schema (values_schema.py --check proves it current)."""
    import json

    schema = json.loads((ROOT / "helm" / "logtide" / "values.schema.json").read_text())
    for command in ROLE_MODELS:
        generated = schema["definitions"][f"{command}Config"]
        assert set(generated["properties"]) == set(_model(command).model_fields), command
        assert generated["additionalProperties"] is False, command
    assert schema["properties"]["agent"]["properties"]["config"] == {"$ref": "#/definitions/agentConfig"}


# ---- wired keys are the chart's -------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, key, instead",
    [
        ({"agent": {"config": {"http": {"port": 9999}}}}, "agent.config.http.port", "http.port"),
        ({"agent": {"config": {"checkpoint_dir": "/data/ck"}}}, "agent.config.checkpoint_dir", "agent.checkpoints"),
        ({"agent": {"config": {"pods_root": "/logs"}}}, "agent.config.pods_root", "agent.hostPaths.pods"),
        (
            {"processor": {"config": {"kafka": {"bootstrap": "other:9092"}}}},
            "processor.config.kafka.bootstrap",
            "kafka.bootstrap",
        ),
        (
            {"sinks": {"monitoring": {"config": {"kafka": {"ssl_cafile": "/ca.pem"}}}}},
            "sinks.monitoring.config.kafka.ssl_cafile",
            "kafka.tls",
        ),
        ({"alerting": {"config": {"api": {"port": 9095}}}}, "alerting.config.api.port", "alerting.api.port"),
        ({"alerting": {"config": {"state_path": "/tmp/a.db"}}}, "alerting.config.state_path", "alerting.persistence"),
        ({"alerting": {"config": {"rules_files": ["x.yaml"]}}}, "alerting.config.rules_files", "alerting.rules"),
    ],
)
def test_a_wired_key_in_a_role_config_is_refused_naming_it(values, key, instead):
    with pytest.raises(helm().HelmError) as err:
        render(values)
    message = str(err.value)
    assert f"{key}: the chart sets this key" in message and instead in message, message


def test_role_tuning_beside_wired_keys_still_merges():
    r = render({"processor": {"config": {"kafka": {"producer": {"linger.ms": 50}}, "log_level": "debug"}}})
    config = r.role_config("processor")
    assert config["kafka"]["producer"] == {"linger.ms": 50} and config["kafka"]["bootstrap"] == "kafka:9092"


# ---- helm test: logtide check on every ConfigMap ----------------------------------------------------


def test_helm_test_checks_every_role_config_map_where_the_role_reads_it(rendered):
    checks = {
        p["metadata"]["labels"]["logtide.io/checks"]: p
        for p in rendered.kind("Pod")
        if "logtide.io/checks" in p["metadata"]["labels"]
    }
    roles = {
        w["metadata"]["name"].removeprefix("lt-logtide-"): w["spec"]["template"]["spec"] for w in rendered.workloads()
    }
    assert set(checks) == set(roles)
    from pod_security import restricted_violations

    for role, pod in checks.items():
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        assert "app.kubernetes.io/name" not in pod["metadata"]["labels"], "no NetworkPolicy selects it"
        spec = pod["spec"]
        [check] = spec["containers"]
        assert check["args"] == ["check", "/etc/logtide/config/config.yaml"]
        assert {"name": "config", "configMap": {"name": f"lt-logtide-{role}"}} in spec["volumes"]
        mounts = {m["mountPath"]: m for m in check["volumeMounts"]}
        assert mounts["/etc/logtide/config"]["name"] == "config"
        # what references in the config resolve to: the role's env and its secret files
        role_container = roles[role]["containers"][0]
        assert check["env"] == role_container["env"] and check.get("envFrom") == role_container.get("envFrom")
        role_mounts = {m["mountPath"]: m["name"] for m in role_container["volumeMounts"]}
        secret_volumes = {v["name"] for v in roles[role]["volumes"] if "secret" in v}
        assert {p for p, n in role_mounts.items() if n in secret_volumes} <= set(mounts)
        assert restricted_violations(spec) == [], role


# ---- paths the pods and NOTES name -----------------------------------------------------------------


def test_agent_checkpoints_are_per_release_on_the_node():
    def host_path(r):
        spec = r.get("DaemonSet", f"{r.docs[0]['metadata']['labels']['app.kubernetes.io/instance']}-logtide-agent")
        return {v["name"]: v for v in spec["spec"]["template"]["spec"]["volumes"]}["checkpoints"]["hostPath"]["path"]

    a, b = render({}, name="lt"), render({}, name="lt2")
    other_ns = render({}, name="lt", namespace="logs-eu")
    assert host_path(a) == "/var/lib/logtide/logging/lt/agent"
    assert len({host_path(a), host_path(b), host_path(other_ns)}) == 3
    assert host_path(render({"agent": {"checkpoints": {"hostPath": "/srv/ck"}}})) == "/srv/ck"


def test_notes_name_the_real_paths(rendered):
    ds = rendered.get("DaemonSet", "lt-logtide-agent")["spec"]["template"]["spec"]
    container = ds["containers"][0]
    config_path = container["args"][2]
    assert f"reads {config_path}," in rendered.notes and "/etc/logtide/config.yaml" not in rendered.notes
    host = {v["name"]: v for v in ds["volumes"]}["checkpoints"]["hostPath"]["path"]
    mount = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}["checkpoints"]
    assert f"checkpoints on each node in {host} (mounted at {mount})" in rendered.notes
    state = {e["name"]: e.get("value") for e in container["env"]}["LOGTIDE_STATE_DIR"]
    assert f"$LOGTIDE_STATE_DIR={state}" in rendered.notes


def test_day2_tools_have_kafka_and_a_writable_state_dir_in_every_pod(rendered, monkeypatch):
    """`kubectl exec <pod> -- logtide replay ...` in a read-only container: its state lands on a writable mount."""
    from logtide.tools.common import state_dir

    for role, _, spec, container in _roles(rendered):
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["LOGTIDE_BOOTSTRAP"] == rendered.role_config(role)["kafka"]["bootstrap"], role
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        state = mounts[env["LOGTIDE_STATE_DIR"]]
        assert "emptyDir" in volumes[state["name"]] and not state.get("readOnly"), role
        monkeypatch.setenv("XDG_STATE_HOME", env["XDG_STATE_HOME"])
        assert state_dir().startswith(env["LOGTIDE_STATE_DIR"] + "/"), role


@pytest.mark.parametrize(
    "values, named",
    [
        (
            {
                "sinks": {
                    "audit": {
                        "enabled": True,
                        "config": {
                            "audit": {
                                "storage": {"path": "/data/audit"},
                                "hmac_key": "file:/etc/logtide/secrets/audit/k",
                            }
                        },
                        "extraSecretMounts": [
                            {"name": "audit", "secretName": "audit-hmac", "mountPath": "/etc/logtide/secrets/audit"}
                        ],
                    }
                }
            },
            "sinks.audit.config.audit.storage.path: /data/audit",
        ),
        (
            {
                "collectors": {
                    "salesforce": {
                        "enabled": True,
                        "config": {
                            "salesforce": {
                                "auth": {
                                    "kind": "jwt",
                                    "username": "u",
                                    "client_id": "c",
                                    "private_key": "file:/etc/sf/key.pem",
                                }
                            }
                        },
                    }
                }
            },
            "collectors.salesforce.config.salesforce.auth.private_key: file:/etc/sf/key.pem",
        ),
    ],
)
def test_a_config_path_on_no_mounted_volume_is_refused(values, named):
    with pytest.raises(helm().HelmError) as err:
        render(values)
    assert named in str(err.value) and "is on no volume the pod mounts" in str(err.value), str(err.value)


def test_a_config_path_on_a_volume_of_the_values_is_accepted():
    r = render(
        {
            "sinks": {
                "audit": {
                    "enabled": True,
                    "config": {
                        "audit": {
                            "storage": {"path": "/archive/audit"},
                            "hmac_key": "file:/etc/logtide/secrets/audit/k",
                        }
                    },
                    "extraSecretMounts": [
                        {"name": "audit", "secretName": "audit-hmac", "mountPath": "/etc/logtide/secrets/audit"}
                    ],
                    "extraVolumes": [{"name": "archive", "persistentVolumeClaim": {"claimName": "audit-archive"}}],
                    "extraVolumeMounts": [{"name": "archive", "mountPath": "/archive"}],
                }
            }
        }
    )
    assert r.role_config("sink-audit")["audit"]["storage"]["path"] == "/archive/audit"


def _wired_keys_by_command() -> dict[str, set[str]]:
    """The dotted keys of the chart's logtide.wiredKeys, per `logtide <command>` they apply to."""
    import re

    text = (ROOT / "helm" / "logtide" / "templates" / "_helpers.tpl").read_text()
    define = text[text.index('{{- define "logtide.wiredKeys" -}}') :]
    define = define[: define.index("{{- toJson $keys -}}")]
    shared, _, specific = define.partition('{{- if eq .command "agent" -}}')
    agent, _, alert = specific.partition('{{- else if eq .command "alert" -}}')
    keys = lambda block: set(re.findall(r'^\s*(?:\{\{- \$_ := set \$keys )?"([a-z_.]+)" "', block, re.M))  # noqa: E731
    common = keys(shared)
    return {
        command: common | {"agent": keys(agent), "alert": keys(alert)}.get(command, set()) for command in ROLE_MODELS
    }


def test_every_wired_key_exists_in_its_roles_model():
    """A renamed model field must fail here, not leave the chart refusing (or wiring) a key no role reads."""
    wired = _wired_keys_by_command()
    assert {"http.port", "kafka.bootstrap"} <= wired["process"]
    assert {"checkpoint_dir", "pods_root"} <= wired["agent"] and {"state_path", "api.port"} <= wired["alert"]
    for command, keys in wired.items():
        for key in keys:
            model = _model(command)
            for part in key.split("."):
                assert part in model.model_fields, f"{command}: {key} is not a field of {model.__name__}"
                model = model.model_fields[part].annotation

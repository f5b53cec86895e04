"""The chart rendered by real Helm (Go SDK via helm-python-sdk): schema-valid manifests, security
defaults, least RBAC, secrets only as references, configs the kernel accepts."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import kubernetes_validate
import pytest
import yaml

from helm_support import CHART, ROOT, full_values, helm, pod_specs, render
from logtide.health import HttpSettings
from logtide.transport import KafkaSettings

#: The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas we have.
K8S_VERSIONS = ["1.25.0", kubernetes_validate.latest_version()]
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
VALUE_SETS = {"default": {}, "full": None}


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def rendered(request):
    values = full_values() if request.param == "full" else VALUE_SETS[request.param]
    return render(values)


@pytest.fixture(scope="module")
def default():
    return render({})


@pytest.fixture(scope="module")
def full():
    return render(full_values())


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]


# ---- real Helm and Kubernetes schemas -------------------------------------------------------


@pytest.mark.parametrize("k8s", K8S_VERSIONS)
def test_every_manifest_is_valid_for_kubernetes(rendered, k8s):
    checked = 0
    for doc in rendered.manifests():
        if doc["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, k8s, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} invalid for Kubernetes {k8s}: {_first_line(exc)}")
        checked += 1
    assert checked >= 12


def test_service_monitor_scrapes_every_role_as_job_logtide(full):
    """The fields the Prometheus Operator reads (its CRD is not in kubernetes-validate's schemas)."""
    [sm] = full.kind("ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    spec = sm["spec"]
    assert spec["jobLabel"] == "app.kubernetes.io/part-of"
    assert spec["namespaceSelector"] == {"matchNames": ["logging"]}
    selected = [
        s for s in full.kind("Service") if spec["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
    ]
    assert len(selected) == len(full.workloads())
    assert all(s["metadata"]["labels"]["app.kubernetes.io/part-of"] == "logtide" for s in selected)
    [endpoint] = spec["endpoints"]
    assert endpoint["port"] == "http-metrics" and endpoint["path"] == "/metrics"
    assert {r["targetLabel"] for r in endpoint["relabelings"]} == {"role", "node"}
    assert all(set(r) <= {"sourceLabels", "targetLabel", "action"} for r in endpoint["relabelings"])


def test_prometheus_rule_has_the_operator_shape(full):
    [rule] = full.kind("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and set(rule["spec"]) == {"groups"}
    names = [g["name"] for g in rule["spec"]["groups"]]
    assert names == ["logtide.health", "logtide.custom"]
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            assert set(r) <= {"alert", "record", "expr", "for", "labels", "annotations", "keep_firing_for"}


def test_defaults_create_no_operator_resources(default):
    kinds = {d["kind"] for d in default.docs}
    assert not kinds & CRD_KINDS, "ServiceMonitor/PrometheusRule need the operator's CRDs: opt-in only"
    assert "NetworkPolicy" not in kinds and "HorizontalPodAutoscaler" not in kinds


@pytest.mark.parametrize("values", [{}, "full"])
def test_helm_lint_is_clean(values):
    report = helm().lint(str(CHART), full_values() if values == "full" else values, strict=True, kube_version="v1.30.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report.get("errors", [])
    assert not problems, problems


@pytest.mark.parametrize(
    "bad, where",
    [
        ({"kafka": {"sasl": {"password": "hunter2"}}}, "/kafka/sasl"),
        ({"kafka": {"sasl": {"mechanism": "SCRAM-SHA-512"}}}, "/kafka/sasl/existingSecret"),
        ({"kafka": {"tls": {"enabled": True}}}, "/kafka/tls/existingSecret"),
        ({"kafka": {"bootstrap": "kafka"}}, "/kafka/bootstrap"),
        ({"kafka": {"securityProtocol": "TLS"}}, "/kafka/securityProtocol"),
        ({"agent": {"enabeld": True}}, "/agent"),
        ({"agent": {"checkpoints": {"type": "pvc"}}}, "/agent/checkpoints/type"),
        ({"http": {"port": "9464"}}, "/http/port"),
        ({"processor": {"replicas": -1}}, "/processor/replicas"),
        ({"sinks": {"Audit_Sink": {"enabled": True}}}, "Audit_Sink"),
        ({"logLevel": "verbose"}, "/logLevel"),
        ({"collectors": {"k8s": {"enabled": True}}}, "/collectors/k8s"),
        (
            {"collectors": {"cloudwatch": {"enabled": True, "config": {"cloudwatch": {"regions": ["eu-west-1"]}}}}},
            "log_groups",
        ),
        ({"sinks": {"audit": {"enabled": True, "config": {"audit": {"storage": {"path": "/x"}}}}}}, "hmac_key"),
    ],
)
def test_schema_rejects_wrong_values_at_install(bad, where):
    with pytest.raises(helm().HelmError) as err:
        render(bad)
    assert where in str(err.value), str(err.value)


def test_values_schema_is_current():
    out = subprocess.run(
        [sys.executable, "helm/tools/values_schema.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr


# ---- what runs where -------------------------------------------------------------------------


def test_default_roles_and_kinds(default):
    kinds = {(d["kind"], d["metadata"]["name"]) for d in default.workloads()}
    assert kinds == {
        ("DaemonSet", "lt-logtide-agent"),
        ("Deployment", "lt-logtide-processor"),
        ("Deployment", "lt-logtide-sink-monitoring"),
        ("Deployment", "lt-logtide-alerting"),
    }


def test_full_values_run_every_collector_and_sink(full):
    names = {d["metadata"]["name"] for d in full.kind("Deployment")}
    assert {
        "lt-logtide-collector-k8s",
        "lt-logtide-collector-cloudwatch",
        "lt-logtide-collector-salesforce",
        "lt-logtide-sink-audit",
        "lt-logtide-sink-analytics",
        "lt-logtide-sink-monitoring",
    } <= names
    commands = {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["args"] for d in full.workloads()}
    assert commands["lt-logtide-agent"] == ["agent", "--config", "/etc/logtide/config/config.yaml"]
    assert commands["lt-logtide-collector-k8s"][0] == "collect"
    assert commands["lt-logtide-processor"][0] == "process"
    assert commands["lt-logtide-sink-audit"][0] == "sink"
    assert commands["lt-logtide-alerting"][0] == "alert"


def test_agent_daemonset_reads_node_logs_read_only(rendered):
    ds = rendered.get("DaemonSet", "lt-logtide-agent")
    spec = ds["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
    assert volumes["varlogpods"]["hostPath"]["path"] == "/var/log/pods"
    assert volumes["varlogcontainers"]["hostPath"]["path"] == "/var/log/containers"
    for name in ("varlogpods", "varlogcontainers"):
        assert mounts[name]["readOnly"] is True
    assert volumes["checkpoints"]["hostPath"]["type"] == "DirectoryOrCreate"
    assert "readOnly" not in mounts["checkpoints"], "the agent writes its checkpoints"
    assert {"operator": "Exists"} in spec["tolerations"], "the agent must run on tainted nodes too"


def test_agent_priority_class_and_extra_host_paths(full):
    spec = full.get("DaemonSet", "lt-logtide-agent")["spec"]["template"]["spec"]
    assert spec["priorityClassName"] == "system-node-critical"
    extra = [v for v in spec["volumes"] if v.get("hostPath", {}).get("path") == "/var/lib/docker/containers"]
    assert extra and all(m["readOnly"] for m in spec["containers"][0]["volumeMounts"] if m["name"] == extra[0]["name"])


def test_agent_checkpoints_on_empty_dir_need_no_root_init():
    r = render({"agent": {"checkpoints": {"type": "emptyDir"}}})
    spec = r.get("DaemonSet", "lt-logtide-agent")["spec"]["template"]["spec"]
    assert "initContainers" not in spec
    assert {"name": "checkpoints", "emptyDir": {}} in spec["volumes"]


def test_hpa_takes_over_replicas(full, default):
    dep = full.get("Deployment", "lt-logtide-processor")
    assert "replicas" not in dep["spec"], "with an HPA the Deployment must not fight it over replicas"
    hpa = full.get("HorizontalPodAutoscaler", "lt-logtide-processor")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "lt-logtide-processor",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    assert default.get("Deployment", "lt-logtide-processor")["spec"]["replicas"] == 2


def test_services_select_their_pods_and_pods_are_scrapeable(rendered):
    pods = {w["metadata"]["name"]: w["spec"]["template"] for w in rendered.workloads()}
    services = {s["metadata"]["name"]: s for s in rendered.kind("Service")}
    assert set(services) == set(pods)
    for name, tpl in pods.items():
        selector = services[name]["spec"]["selector"]
        labels = tpl["metadata"]["labels"]
        assert selector.items() <= labels.items(), f"Service {name} does not select its pods"
        # ... and only them: the component label tells roles apart.
        others = [n for n, t in pods.items() if n != name and selector.items() <= t["metadata"]["labels"].items()]
        assert not others, f"Service {name} also selects {others}"
        ann = tpl["metadata"]["annotations"]
        assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == "9464"
        port = tpl["spec"]["containers"][0]["ports"][0]
        assert port == {"name": "http-metrics", "containerPort": 9464, "protocol": "TCP"}
    assert services["lt-logtide-agent"]["spec"]["clusterIP"] == "None"


def test_probes_hit_healthz_and_readyz(rendered):
    for w, spec in pod_specs(rendered):
        c = spec["containers"][0]
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}, w["metadata"]["name"]
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}, w["metadata"]["name"]


def test_config_change_rolls_the_pods():
    before = render({}).get("Deployment", "lt-logtide-processor")
    after = render({"processor": {"config": {"log_level": "debug"}}}).get("Deployment", "lt-logtide-processor")
    key = "checksum/config"
    assert (
        before["spec"]["template"]["metadata"]["annotations"][key]
        != after["spec"]["template"]["metadata"]["annotations"][key]
    )


# ---- security defaults -----------------------------------------------------------------------


def _effective(pod_sc: dict, c_sc: dict, key: str):
    return c_sc.get(key, pod_sc.get(key))


@pytest.mark.parametrize("values", ["default", "full"])
def test_every_container_is_locked_down(values):
    r = render(full_values() if values == "full" else {})
    for w, spec in pod_specs(r):
        name = w["metadata"]["name"]
        pod_sc = spec["securityContext"]
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"), name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert _effective(pod_sc, sc, "runAsNonRoot") is True, name
            assert _effective(pod_sc, sc, "runAsUser") not in (0, None), name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc.get("privileged") is not True, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert _effective(pod_sc, sc, "seccompProfile") == {"type": "RuntimeDefault"}, name
            assert "limits" in c["resources"] and "requests" in c["resources"], name
        for init in spec.get("initContainers", []):
            # The one exception: chown of the agent's hostPath checkpoint dir, CAP_CHOWN only.
            assert (w["kind"], init["name"]) == ("DaemonSet", "checkpoints-owner"), name
            sc = init["securityContext"]
            assert sc["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
            assert init["command"][:2] == ["chown", "-R"] and init["command"][-1] == "/var/lib/logtide/checkpoints"
        # A read-only root filesystem needs a writable /tmp.
        assert "/tmp" in {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}, name


def test_host_paths_only_on_the_agent_and_only_logs_writable_checkpoints(full):
    for w, spec in pod_specs(full):
        host = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
        if w["kind"] != "DaemonSet":
            assert not host, f"{w['metadata']['name']} mounts host paths"
            continue
        writable = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] in host and not m.get("readOnly")]
        assert [m["name"] for m in writable] == ["checkpoints"]


def test_security_overrides_per_role():
    r = render({"processor": {"securityContext": {"runAsUser": 20000}}})
    c = r.get("Deployment", "lt-logtide-processor")["spec"]["template"]["spec"]["containers"][0]
    assert c["securityContext"]["runAsUser"] == 20000
    assert c["securityContext"]["readOnlyRootFilesystem"] is True, "an override merges, it does not replace"


# ---- RBAC ------------------------------------------------------------------------------------

# Rules and bindings: test_helm_least_privilege.py (compared with the API calls the code makes).


def test_only_kubernetes_readers_get_an_api_token(full):
    for w, spec in pod_specs(full):
        reads_api = w["metadata"]["name"] in ("lt-logtide-agent", "lt-logtide-collector-k8s")
        assert spec["automountServiceAccountToken"] is reads_api, w["metadata"]["name"]
    for sa in full.kind("ServiceAccount"):
        assert sa["automountServiceAccountToken"] is (
            sa["metadata"]["name"] in ("lt-logtide-agent", "lt-logtide-collector-k8s")
        )
    cw = full.get("ServiceAccount", "lt-logtide-collector-cloudwatch")
    assert cw["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith("role/logtide-cloudwatch")


# ---- secrets stay references ----------------------------------------------------------------


def test_chart_never_renders_a_secret(full):
    assert not full.kind("Secret")


def test_kafka_secrets_are_file_references_to_mounted_secrets(full):
    for w, spec in pod_specs(full):
        role = w["metadata"]["name"].removeprefix("lt-logtide-")
        kafka = full.role_config(role)["kafka"]
        mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        sasl = volumes[mounts["/etc/logtide/kafka-sasl"]]["secret"]
        assert sasl["secretName"] == "logtide-kafka-user"
        assert {i["key"] for i in sasl["items"]} == {"password", "username"}
        for field in ("sasl_password", "sasl_username"):
            path = kafka[field].removeprefix("file:")
            assert kafka[field].startswith("file:/etc/logtide/kafka-sasl/"), field
            assert path.rsplit("/", 1)[1] in {i["path"] for i in sasl["items"]}
        tls = volumes[mounts["/etc/logtide/kafka-tls"]]["secret"]
        assert tls["secretName"] == "logtide-kafka-tls"
        assert kafka["ssl_cafile"] == "/etc/logtide/kafka-tls/ca.crt"
        assert all(
            m.get("readOnly") for m in spec["containers"][0]["volumeMounts"] if m["name"] in ("kafka-sasl", "kafka-tls")
        )


def test_role_secrets_come_from_secret_refs(full):
    alerting = full.get("Deployment", "lt-logtide-alerting")["spec"]["template"]["spec"]["containers"][0]
    slack = [e for e in alerting["env"] if e["name"] == "SLACK_WEBHOOK_URL"][0]
    assert slack == {
        "name": "SLACK_WEBHOOK_URL",
        "valueFrom": {"secretKeyRef": {"name": "logtide-slack", "key": "url"}},
    }
    sf = full.get("Deployment", "lt-logtide-collector-salesforce")["spec"]["template"]["spec"]
    assert {
        "name": "secret-salesforce",
        "secret": {"secretName": "logtide-salesforce-oauth", "defaultMode": 0o440},
    } in sf["volumes"]


# ---- the configs the roles read --------------------------------------------------------------


def test_role_configs_are_accepted_by_the_kernel_models(rendered):
    for cm in rendered.kind("ConfigMap"):
        if "config.yaml" not in cm["data"]:
            continue
        config = yaml.safe_load(cm["data"]["config.yaml"])
        kafka = KafkaSettings.model_validate(config["kafka"])
        assert kafka.bootstrap and kafka.client_id == "logtide-" + cm["metadata"]["name"].removeprefix("lt-logtide-")
        assert HttpSettings.model_validate(config["http"]).port == 9464
        assert config["log_level"] in ("debug", "info", "warning", "error")


def test_role_config_merges_over_shared_block():
    r = render(
        {
            "processor": {"config": {"log_level": "debug", "pipeline": [{"type": "parse"}]}},
            "kafka": {"bootstrap": "k1:9092,k2:9092"},
        }
    )
    config = r.role_config("processor")
    assert config["log_level"] == "debug" and config["pipeline"] == [{"type": "parse"}]
    assert config["kafka"]["bootstrap"] == "k1:9092,k2:9092"
    assert r.role_config("alerting")["log_level"] == "info"


def test_one_config_map_per_role_mounted_where_the_command_reads_it(rendered):
    for w, spec in pod_specs(rendered):
        name = w["metadata"]["name"]
        assert {"name": "config", "configMap": {"name": name}} in spec["volumes"]
        mount = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "config"][0]
        assert mount["mountPath"] == "/etc/logtide/config" and mount["readOnly"] is True
        assert "subPath" not in mount, "a subPath mount never sees ConfigMap updates"
        assert spec["containers"][0]["args"][1:] == ["--config", "/etc/logtide/config/config.yaml"]
        assert rendered.get("ConfigMap", name)


# ---- the rest --------------------------------------------------------------------------------


def test_network_policy_allows_scrapes_dns_and_kafka(full):
    """One policy per role (egress derived per role: test_helm_least_privilege.py); Kafka ports are the bootstrap's."""
    policies = {np["metadata"]["name"]: np for np in full.kind("NetworkPolicy")}
    assert set(policies) == {w["metadata"]["name"] for w in full.workloads()}
    for np in policies.values():
        assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
        ingress = np["spec"]["ingress"][0]
        assert ingress["ports"] == [{"port": 9464, "protocol": "TCP"}]
        assert ingress["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
        dns, kafka = np["spec"]["egress"][:2]
        assert {p["port"] for p in dns["ports"]} == {53}
        assert kafka["ports"] == [{"port": 9093, "protocol": "TCP"}]
        assert kafka["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kafka"}
    api = policies["lt-logtide-alerting"]["spec"]["ingress"][1]
    assert api["ports"] == [{"port": 9093, "protocol": "TCP"}]
    egress_ports = {p["port"] for np in policies.values() for rule in np["spec"]["egress"] for p in rule["ports"]}
    assert {53, 9093, 443} <= egress_ports


def test_dashboards_are_labelled_for_the_grafana_sidecar(full):
    boards = [cm for cm in full.kind("ConfigMap") if cm["metadata"]["labels"].get("grafana_dashboard") == "1"]
    files = sorted(p.name for p in (CHART / "dashboards").glob("*.json"))
    assert sorted(k for cm in boards for k in cm["data"]) == files and len(files) >= 5
    assert all(cm["metadata"]["namespace"] == "monitoring" for cm in boards)
    assert all(cm["metadata"]["annotations"]["grafana_folder"] == "logtide" for cm in boards)


def test_image_reference(default, full):
    image = default.get("Deployment", "lt-logtide-processor")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "ghcr.io/logtide/logtide:0.1.0"
    pinned = full.get("Deployment", "lt-logtide-processor")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert re.fullmatch(r"ghcr\.io/logtide/logtide@sha256:[0-9a-f]{64}", pinned)


def test_notes_list_roles_and_checks(full):
    assert "lt-logtide-collector-salesforce" in full.notes
    assert "kubectl -n logging get pods" in full.notes
    assert "logtide-kafka-user" in full.notes and "PrometheusRule lt-logtide" in full.notes


def test_readme_values_table_is_current():
    out = subprocess.run(
        [sys.executable, "helm/tools/values_readme.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr or out.stdout
    readme = (CHART / "README.md").read_text()
    for key in (
        "kafka.sasl.existingSecret",
        "agent.checkpoints.type",
        "metrics.prometheusRule.enabled",
        "collectors.salesforce.extraSecretMounts",
        "sinks.monitoring.replicas",
    ):
        assert f"| `{key}` |" in readme


# ---- Pod Security Standards --------------------------------------------------------------------


@pytest.mark.parametrize("values", ["default", "full"])
def test_every_role_but_the_agent_passes_pod_security_restricted(values):
    from pod_security import restricted_violations

    r = render(full_values() if values == "full" else {})
    for w, spec in pod_specs(r):
        if w["kind"] == "DaemonSet":
            continue
        assert restricted_violations(spec) == [], w["metadata"]["name"]


def test_the_agent_breaks_pod_security_only_by_reading_the_node():
    """hostPath volumes are why the agent's namespace needs the privileged PSA level; nothing else."""
    from pod_security import baseline_violations, restricted_violations

    spec = render({}).get("DaemonSet", "lt-logtide-agent")["spec"]["template"]["spec"]
    assert baseline_violations(spec) == [
        "hostPath volume varlogpods",
        "hostPath volume varlogcontainers",
        "hostPath volume checkpoints",
    ]
    # restricted adds: the chown init container runs as root with CAP_CHOWN
    extra = [v for v in restricted_violations(spec) if not v.startswith(("hostPath", "volume "))]
    assert extra == [
        "checkpoints-owner: adds capabilities",
        "checkpoints-owner: runAsNonRoot not true",
        "checkpoints-owner: runAsUser 0",
    ]
    no_init = render({"agent": {"checkpoints": {"type": "emptyDir"}}}).get("DaemonSet", "lt-logtide-agent")
    extra = [
        v
        for v in restricted_violations(no_init["spec"]["template"]["spec"])
        if not v.startswith(("hostPath", "volume "))
    ]
    assert extra == []


def test_pod_security_checker_catches_a_privileged_override():
    from pod_security import baseline_violations

    r = render({"processor": {"securityContext": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}}}})
    spec = r.get("Deployment", "lt-logtide-processor")["spec"]["template"]["spec"]
    assert baseline_violations(spec) == ["process: privileged", "process: adds capabilities ['SYS_ADMIN']"]


# ---- helm test ---------------------------------------------------------------------------------


def _readiness_pod(values=None):
    return render(values or {}).get("Pod", "lt-logtide-test-readiness")


def test_helm_test_pod_checks_every_role():
    pod = _readiness_pod(full_values())
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    urls = pod["spec"]["containers"][0]["args"][1:]
    services = {s["metadata"]["name"] for s in render(full_values()).kind("Service")}
    assert {u.split("//")[1].split(".")[0] for u in urls} == services
    assert all(u.endswith(":9464/readyz") for u in urls)
    assert "app.kubernetes.io/name" not in pod["metadata"]["labels"], "the NetworkPolicy must not cage the test pod"
    from pod_security import restricted_violations

    assert restricted_violations(pod["spec"]) == []


@pytest.mark.timeout(60)
def test_helm_test_script_passes_on_ready_roles_and_fails_on_unready_ones():
    """Run the test pod's script for real against the kernel's HealthServer."""
    from logtide.health import HealthServer

    container = _readiness_pod()["spec"]["containers"][0]
    script = container["args"][0]
    ready = HealthServer().start()
    stuck = HealthServer().start()
    stuck.add_readiness("kafka", lambda: False)
    env = {**os.environ, "READINESS_TIMEOUT_SECONDS": "3"}
    try:
        ok = subprocess.run(
            [sys.executable, "-c", script, f"{ready.url}/readyz"], env=env, capture_output=True, text=True, timeout=30
        )
        assert ok.returncode == 0 and "ready" in ok.stdout
        bad = subprocess.run(
            [sys.executable, "-c", script, f"{ready.url}/readyz", f"{stuck.url}/readyz"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert bad.returncode == 1
        assert (
            f"not ready {stuck.url}/readyz HTTP Error 503" in bad.stdout and f"ready {ready.url}/readyz" in bad.stdout
        )
    finally:
        ready.stop()
        stuck.stop()


def test_render_tool_is_helm_template_without_a_binary(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "helm/tools/render.py",
            "-f",
            "helm/logtide/ci/full-values.yaml",
            "--name",
            "lt",
            "--namespace",
            "logging",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in docs) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in render(full_values()).docs
    )
    assert "helm test lt" in out.stderr  # NOTES.txt
    bad = subprocess.run(
        [sys.executable, "helm/tools/render.py", "--set-json", '{"kafka": {"bootstrap": "nope"}}'],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "/kafka/bootstrap" in bad.stderr


EDGE_VALUES = {
    "agent only": {
        "processor": {"enabled": False},
        "sinks": {"monitoring": {"enabled": False}},
        "alerting": {"enabled": False},
        "dashboards": {"enabled": False},
    },
    "nothing enabled": {
        "agent": {"enabled": False},
        "processor": {"enabled": False},
        "sinks": {"monitoring": {"enabled": False}},
        "alerting": {"enabled": False},
    },
    "own names and accounts": {
        "fullnameOverride": "logs",
        "agent": {"serviceAccount": {"create": False, "name": "node-reader"}},
        "processor": {"serviceAccount": {"create": False}},
    },
    "bare sink entry": {
        "sinks": {"monitoring-eu": {"enabled": True, "config": {"monitoring": {"topic": "logtide.route.eu"}}}}
    },
    "plain tls": {
        "kafka": {"securityProtocol": "SSL", "tls": {"enabled": True, "existingSecret": "ca"}},
        "networkPolicy": {"enabled": True},
        "alerting": {"enabled": False},
    },
}


@pytest.mark.parametrize("case", sorted(EDGE_VALUES))
def test_edge_values_render_valid_manifests(case):
    r = render(EDGE_VALUES[case])
    for doc in r.manifests():
        if doc["kind"] not in CRD_KINDS:
            kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)
    names = {d["metadata"]["name"] for d in r.workloads()}
    if case == "agent only":
        assert names == {"lt-logtide-agent"} and not [
            c for c in r.kind("ConfigMap") if "grafana_dashboard" in c["metadata"]["labels"]
        ]
    elif case == "nothing enabled":
        assert names == set() and not r.kind("ClusterRole") and not r.kind("Pod")
    elif case == "own names and accounts":
        assert names == {"logs-agent", "logs-processor", "logs-sink-monitoring", "logs-alerting"}
        assert r.get("ClusterRoleBinding", "logging-logs-agent")["subjects"][0]["name"] == "node-reader"
        accounts = {sa["metadata"]["name"] for sa in r.kind("ServiceAccount")}
        assert "node-reader" not in accounts and "logs-processor" not in accounts
        spec = r.get("Deployment", "logs-processor")["spec"]["template"]["spec"]
        assert spec["serviceAccountName"] == "default" and spec["automountServiceAccountToken"] is False
    elif case == "bare sink entry":
        # a sink not named after a kind gets no section from the chart: its config says what it runs
        assert set(r.role_config("sink-monitoring-eu")) >= {"monitoring", "kafka"}
        assert r.get("Deployment", "lt-logtide-sink-monitoring-eu")["spec"]["template"]["spec"]["containers"][0][
            "resources"
        ]
    elif case == "plain tls":
        kafka = r.role_config("processor")["kafka"]
        assert kafka["ssl_cafile"] == "/etc/logtide/kafka-tls/ca.crt" and "sasl_password" not in kafka
        assert "ssl_certfile" not in kafka

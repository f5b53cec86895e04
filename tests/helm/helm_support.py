"""Shared pieces of the chart tests: render the chart with real Helm, walk the manifests, find what
logtide exports, run promtool and a real Prometheus.

Helm: `helm-python-sdk` (PyPI) bundles libhelm_c, a C ABI over Helm's own Go SDK (v4), so these
renders are Helm's engine, schema validation and lint, not an imitation.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "logtide"
FULL_VALUES = CHART / "ci" / "full-values.yaml"
EXPORTED_METRICS_SCRIPT = Path(__file__).resolve().parent / "exported_metrics.py"


def helm():
    import helm_python

    return helm_python


class Rendered:
    """The documents of one `helm template`, with lookups the tests need."""

    def __init__(self, files: dict[str, str]):
        self.files = files
        self.notes = files.get("logtide/templates/NOTES.txt", "")
        self.docs: list[dict] = []
        for name, text in sorted(files.items()):
            if name.endswith("NOTES.txt"):
                continue
            for doc in yaml.safe_load_all(text):
                if doc:
                    doc.setdefault("__source__", name)
                    self.docs.append(doc)

    def manifests(self) -> list[dict]:
        return [{k: v for k, v in d.items() if k != "__source__"} for d in self.docs]

    def kind(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> dict:
        found = [d for d in self.kind(kind) if d["metadata"]["name"] == name]
        assert found, f"no {kind} named {name}; have {[d['metadata']['name'] for d in self.kind(kind)]}"
        return found[0]

    def workloads(self) -> list[dict]:
        return self.kind("DaemonSet") + self.kind("Deployment")

    def role_config(self, role: str, release: str = "lt") -> dict:
        cm = self.get("ConfigMap", f"{release}-logtide-{role}")
        return yaml.safe_load(cm["data"]["config.yaml"])


def render(values: dict | None = None, name: str = "lt", namespace: str = "logging") -> Rendered:
    """Render the chart (Helm's engine, schema validation included); the same values render once."""
    return copy.deepcopy(_render(json.dumps(values or {}, sort_keys=True), name, namespace))


@functools.lru_cache(maxsize=64)
def _render(values_json: str, name: str, namespace: str) -> Rendered:
    h = helm()
    with h.Chart.load(str(CHART)) as chart:
        return Rendered(chart.render(json.loads(values_json), name=name, namespace=namespace))


def full_values() -> dict:
    return yaml.safe_load(FULL_VALUES.read_text())


def pod_specs(rendered: Rendered) -> Iterator[tuple[dict, dict]]:
    for w in rendered.workloads():
        yield w, w["spec"]["template"]["spec"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- metric names -----------------------------------------------------------------------------

#: Suffixes a sample of each metric type can carry, as Prometheus sees it.
_SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "unknown": ("",),
}


@functools.lru_cache(maxsize=1)
def metrics_report() -> dict:
    """What exported_metrics.py finds: {"families": {name: type}, "import_errors": [...]}.

    It imports every module of the project's packages in a fresh interpreter (so a metric defined
    anywhere counts, whether or not it has samples yet) and reads prometheus_client's registry.
    """
    out = subprocess.run(
        [sys.executable, str(EXPORTED_METRICS_SCRIPT), "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, f"exported_metrics.py failed:\n{out.stderr[-3000:]}"
    return json.loads(out.stdout)


def exported_metrics() -> dict[str, str]:
    """Every logtide_* series name logtide can export -> its family's type."""
    names: dict[str, str] = {}
    for family, kind in metrics_report()["families"].items():
        for suffix in _SAMPLE_SUFFIXES.get(kind, ("",)):
            names[family + suffix] = kind
    return names


_METRIC = re.compile(r"\b(logtide_[A-Za-z0-9_]+)\b")


def metrics_in(expr: str) -> set[str]:
    """logtide_* metric names used in a PromQL expression (label values and strings excluded)."""
    no_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    return set(_METRIC.findall(no_strings))


# ---- Grafana ------------------------------------------------------------------------------------

#: What Grafana substitutes before a query reaches Prometheus ("All" of a variable is .*).
GRAFANA_SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$__interval": "30s",
    "$__range": "1h",
}


def grafana_to_promql(expr: str) -> str:
    for var, value in GRAFANA_SUBSTITUTIONS.items():
        expr = expr.replace(var, value)
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", ".*", expr)


def dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((CHART / "dashboards").glob("*.json"))}


def dashboard_queries(dashboard: dict) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL as Grafana sends it) for every target and query variable."""

    def panels(items):
        for p in items:
            yield p
            yield from panels(p.get("panels", []))

    for panel in panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield panel.get("title", "?"), target["expr"]
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        if var.get("type") == "query" and isinstance(query, dict):
            query = query.get("query")
        if var.get("type") == "query" and isinstance(query, str):
            m = re.match(r"label_values\((.*),\s*[A-Za-z_]+\)\s*$", query)
            if m:
                yield f"variable {var['name']}", m.group(1)


# ---- Prometheus ---------------------------------------------------------------------------------


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool not found: apt-get install prometheus (.ci/run installs it)"
    return path


def rules_file(tmp: Path, values: dict | None = None) -> Path:
    """The PrometheusRule's spec, rendered with the chart, as a Prometheus rule file."""
    v = {"metrics": {"prometheusRule": {"enabled": True}}}
    if values:
        v = _merge(v, values)
    rule = render(v).get("PrometheusRule", "lt-logtide")
    path = tmp / "logtide-rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
    return path


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class Prometheus:
    """Debian's /usr/bin/prometheus on a free loopback port, with a temp config and data dir."""

    def __init__(self, workdir: Path, scrape_targets: list[str], labels: dict[str, str], rule_files: list[Path] = ()):
        binary = shutil.which("prometheus")
        assert binary, "prometheus not found: apt-get install prometheus (.ci/run installs it)"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [
                {
                    "job_name": "logtide",
                    "static_configs": [{"targets": scrape_targets, "labels": labels}],
                }
            ],
        }
        cfg = workdir / "prometheus.yml"
        cfg.write_text(yaml.safe_dump(config))
        self.log = open(workdir / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={cfg}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
                "--web.enable-lifecycle",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited: {Path(self.log.name).read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("prometheus did not become ready")

    def api(self, path: str, **params: Any) -> dict:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:  # 400/422 carry the PromQL error in JSON
            return json.loads(exc.read())

    def query(self, expr: str) -> dict:
        return self.api("query", query=expr)

    def wait_for(self, expr: str, timeout: float = 40, until=bool) -> list:
        """The query's result once it is non-empty and `until(result)` holds (series appear one by one)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result.get("status") == "success" and result["data"]["result"] and until(result["data"]["result"]):
                return result["data"]["result"]
            time.sleep(0.5)
        raise AssertionError(f"no (expected) data for {expr} after {timeout}s: {self.query(expr)}")

    def wait_for_labels(self, expr: str, label: str, values: set[str], timeout: float = 60) -> list:
        return self.wait_for(expr, timeout, until=lambda rows: values <= {r["metric"].get(label) for r in rows})

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def temp_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def env_without_bootstrap() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("LOGTIDE_BOOTSTRAP", None)
    return env

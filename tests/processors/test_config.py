"""Config errors are refused before anything starts, naming file:line and the field."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from logtide.config import ConfigError
from logtide.processors.app import ProcessorConfig, build_pipeline, load, topic_subscription
from logtide.processors.steps import StepContext
from tests.conftest import ROOT
from tests.processors.conftest import make_event

CTX = dict(sinks=("monitoring", "audit", "analytics"))


def _pipeline(path):
    config = load(str(path))
    return build_pipeline(config, str(path), StepContext(**CTX))


def test_example_config_loads_and_routes_demo_events(monkeypatch):
    path = os.path.join(ROOT, "examples", "process.yaml")
    monkeypatch.setenv("LOGTIDE_BOOTSTRAP", "127.0.0.1:9092")
    pipeline = _pipeline(path)
    assert [s.type_name for s in pipeline.steps] == [
        "parse",
        "normalize",
        "redact",
        "filter",
        "sample",
        "route",
        "redact",
        "aggregate",
    ]
    out = pipeline.run(make_event(1, service="payments", level="ERROR"))
    assert {sink for _, sinks in out for sink in sinks} == {"monitoring", "audit", "analytics"}
    ev = out[0][0]
    assert ev["body"] == "request 1" and ev["severity_number"] == 17
    assert ev["attributes"]["user"] == "<email>"
    # a plain line with an IP: analytics' copy has it masked, monitoring's keeps it
    line = make_event(2, service="catalog", body="ERROR [catalog] upstream 10.1.2.3 timed out")
    by_sink = {s: ev for ev, sinks in pipeline.run(line) for s in sinks}
    assert by_sink["analytics"]["body"] == "upstream <ipv4> timed out" or "<ipv4>" in by_sink["analytics"]["body"]
    assert "10.1.2.3" in by_sink["monitoring"]["body"]


def test_default_pipeline_loads():
    pipeline = build_pipeline(ProcessorConfig(), "<defaults>", StepContext(**CTX))
    assert pipeline.steps[0].type_name == "parse"


def write(tmp_path, text: str):
    p = tmp_path / "process.yaml"
    p.write_text(text)
    return p


def test_broken_regex_refused_with_file_and_line(tmp_path):
    p = write(
        tmp_path,
        "group_id: g\npipeline:\n  - type: parse\n    formats: [regex]\n    patterns:\n"
        "      - name: bad\n        regex: '(?P<x>[0-9'\n",
    )
    with pytest.raises(ConfigError) as exc:
        _pipeline(p)
    assert f"{p}:7" in str(exc.value) and "invalid regex" in str(exc.value)


def test_broken_custom_redaction_regex_refused(tmp_path):
    p = write(tmp_path, "pipeline:\n  - type: redact\n    custom:\n      - name: ref\n        pattern: 'a(b'\n")
    with pytest.raises(ConfigError, match=rf"{p}:5: field 'pipeline.0.custom.0.pattern'.*invalid regex"):
        _pipeline(p)


def test_route_to_unknown_sink_refused(tmp_path):
    p = write(
        tmp_path,
        "pipeline:\n  - type: parse\n  - type: route\n    rules:\n      - when: 'true'\n"
        "        sinks: [analytics, nowhere]\n",
    )
    with pytest.raises(ConfigError, match=rf"{p}:6: field 'pipeline.1.rules.0.sinks'.*unknown sink 'nowhere'"):
        _pipeline(p)
    p = write(tmp_path, "pipeline:\n  - type: route\n    default: [bin]\n")
    with pytest.raises(ConfigError, match="unknown sink 'bin'"):
        _pipeline(p)
    p = write(tmp_path, "pipeline:\n  - type: redact\n    routes: [archive]\n")
    with pytest.raises(ConfigError, match=rf"{p}:2: .*unknown sink 'archive'"):
        _pipeline(p)


def test_unknown_step_bad_condition_and_unknown_field_refused(tmp_path):
    p = write(tmp_path, "pipeline:\n  - type: parse\n  - type: frobnicate\n")
    with pytest.raises(ConfigError, match=rf"{p}:3: .*unknown step type 'frobnicate'"):
        _pipeline(p)
    p = write(tmp_path, "pipeline:\n  - type: filter\n    drop: 'severity_number >>= 3'\n")
    with pytest.raises(ConfigError, match=rf"{p}:3: field 'pipeline.0.drop'"):
        _pipeline(p)
    p = write(tmp_path, "pipeline:\n  - type: sample\n    rate: 0.5\n    colour: red\n")
    with pytest.raises(ConfigError, match=rf"{p}:4: unknown field 'pipeline.0.colour'"):
        _pipeline(p)
    p = write(tmp_path, "pipeline:\n  - type: redact\n    mode: hash\n")
    with pytest.raises(ConfigError, match="needs a secret"):
        _pipeline(p)


def test_cli_refuses_bad_config_before_connecting(tmp_path):
    # the bootstrap points nowhere: a config error must come first, as one line, exit code 2
    p = write(
        tmp_path,
        "kafka: {bootstrap: '127.0.0.1:1'}\npipeline:\n  - type: route\n    rules:\n"
        "      - {when: 'true', sinks: [nowhere]}\n",
    )
    res = subprocess.run(
        [sys.executable, "-m", "logtide.cli", "process", "--config", str(p)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert res.returncode == 2
    assert f"{p}:5" in res.stderr and "unknown sink 'nowhere'" in res.stderr
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "logtide.cli",
            "process",
            "--config",
            os.path.join(ROOT, "examples", "process.yaml"),
            "--check",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "LOGTIDE_BOOTSTRAP": "127.0.0.1:1"},
    )
    assert res.returncode == 0 and "ok (8 steps" in res.stdout


def test_topic_patterns():
    assert topic_subscription(["logtide.raw.k8s"]) == (["logtide.raw.k8s"], False)
    subs, pattern = topic_subscription(["logtide.raw.*", "other"])
    assert pattern and subs == [r"^logtide\.raw\..*", "^other$"]


def test_hash_secret_from_environment_and_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_REDACT_KEY", "k" * 24)
    key_file = tmp_path / "key"
    key_file.write_text("f" * 24 + "\n")
    p = write(
        tmp_path,
        "pipeline:\n  - type: redact\n    kinds: [email]\n    mode: hash\n"
        "    secret: ${TEST_REDACT_KEY}\n"
        f"  - type: redact\n    kinds: [ipv4]\n    mode: hash\n    secret: file:{key_file}\n"
        "  - type: route\n    default: [analytics]\n",
    )
    pipeline = _pipeline(p)
    ((ev, _),) = pipeline.run(make_event(1, body="bob@example.com from 10.0.0.1"))
    env_token = pipeline.steps[0].redactor.token("email", "bob@example.com")
    assert ev["body"] == f"{env_token} from {pipeline.steps[1].redactor.token('ipv4', '10.0.0.1')}"
    assert pipeline.steps[0].redactor._key == b"k" * 24 and pipeline.steps[1].redactor._key == b"f" * 24
    monkeypatch.delenv("TEST_REDACT_KEY")
    with pytest.raises(ConfigError, match="TEST_REDACT_KEY is not set"):
        _pipeline(p)

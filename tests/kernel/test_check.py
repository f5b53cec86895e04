"""Offline checks: `logtide <role> --check --config FILE` and `logtide check FILE...` validate without
connecting (bootstrap points nowhere here) and print every problem as `file:line: field: reason`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples")
LOGTIDE = [sys.executable, "-m", "logtide"]
ROLE_FILES = {
    "agent": "agent.yaml",
    "collect": "collect.yaml",
    "process": "process.yaml",
    "sink": "sink.yaml",
    "alert": "alert.yaml",
}

pytestmark = pytest.mark.timeout(120)


def run(*args: str, cwd: str = ROOT) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "LOGTIDE_BOOTSTRAP": "127.0.0.1:1",  # nothing to connect to: --check must not try
        "LOGTIDE_AUDIT_KEY": "k" * 32,
        "SF_PRIVATE_KEY": "not-a-real-key",
    }
    return subprocess.run(LOGTIDE + list(args), capture_output=True, text=True, timeout=90, cwd=cwd, env=env)


@pytest.mark.parametrize("role", sorted(ROLE_FILES))
def test_every_role_checks_its_example(role):
    path = os.path.join(EXAMPLES, ROLE_FILES[role])
    r = run(role, "--check", "--config", path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{path}: ok (") and r.stderr == ""


def test_check_recognizes_the_role_of_every_example():
    files = sorted(os.path.join(EXAMPLES, f) for f in os.listdir(EXAMPLES) if f.endswith(".yaml"))
    r = run("check", *files)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == len(files)
    summary = dict(line.split(": ok (", 1) for line in lines)
    assert summary[os.path.join(EXAMPLES, "process.yaml")].startswith("8 steps")
    assert summary[os.path.join(EXAMPLES, "alert.yaml")].startswith("alert: 6 rules")
    assert summary[os.path.join(EXAMPLES, "alert-rules.yaml")].startswith("alert rules: 6 rules")
    assert summary[os.path.join(EXAMPLES, "sink.yaml")].startswith("sink: reads logtide.route.monitoring")
    assert summary[os.path.join(EXAMPLES, "collect.yaml")].startswith("collect: cloudwatch, salesforce, k8s")
    assert summary[os.path.join(EXAMPLES, "agent.yaml")].startswith("agent: kubernetes mode")
    assert summary[os.path.join(EXAMPLES, "up.yaml")].startswith("up:")


def broken(tmp_path, name: str, old: str, new: str) -> str:
    """A copy of an example with one mistake; its line number is where ``new`` lands."""
    text = open(os.path.join(EXAMPLES, name)).read()
    assert old in text, old
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1))
    if name == "alert.yaml":
        shutil.copy(os.path.join(EXAMPLES, "alert-rules.yaml"), tmp_path / "alert-rules.yaml")
    line = text[: text.index(old)].count("\n") + 1 + old[: old.index(old.lstrip())].count("\n")
    return f"{path}:{line}"


def assert_refused(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


@pytest.mark.parametrize(
    "role, name, old, new, words",
    [
        (
            "agent",
            "agent.yaml",
            "multiline:                     # stack traces as one event (agents/multiline.py: the exact rules)\n  enabled: true",
            "multiline:\n  start_pattern: '([a-z'",
            ["multiline", "start_pattern is not a valid regular expression"],
        ),
        (
            "collect",
            "collect.yaml",
            'match: "-(prod|staging)$"',
            'match: "-(prod|staging$"',
            ["cloudwatch.log_groups.1.match", "not a valid regular expression"],
        ),
        ("collect", "collect.yaml", "cloudwatch:", "cloudwach:", ["unknown field 'cloudwach'"]),
        (
            "process",
            "process.yaml",
            'drop: \'resource["service.name"] == ',
            'drop: \'resource["service.name"] === ',
            ["pipeline.3.drop", "unexpected character"],
        ),
        ("sink", "sink.yaml", "roll_bytes:", "roll_byte:", ["unknown field 'audit.roll_byte'"]),
        ("sink", "sink.yaml", "monitoring:", "monitorin:", ["unknown field 'monitorin'"]),
        (
            "alert",
            "alert.yaml",
            "state_path: /var/lib/logtide/alerting.db",
            "state_path: /etc/hostname/alerting.db",
            ["field 'state_path'", "/etc/hostname is not a directory"],
        ),
        (
            "agent",
            "agent.yaml",
            "checkpoint_dir: /var/lib/logtide-agent",
            "checkpoint_dir: /etc/hostname/agent",
            ["field 'checkpoint_dir'", "/etc/hostname/agent", "not a directory"],
        ),
    ],
)
def test_a_broken_copy_is_refused_naming_file_and_line(tmp_path, role, name, old, new, words):
    where = broken(tmp_path, name, old, new)
    for r in (run(role, "--check", "--config", where.rsplit(":", 1)[0]), run("check", where.rsplit(":", 1)[0])):
        assert_refused(r, where + ":", *words)
        assert r.stdout == ""


def test_a_template_that_does_not_compile_in_a_rules_file_is_refused_through_the_alert_config(tmp_path):
    shutil.copy(os.path.join(EXAMPLES, "alert.yaml"), tmp_path / "alert.yaml")
    rules = open(os.path.join(EXAMPLES, "alert-rules.yaml")).read()
    old = "{{ labels.service_name }} logged a FATAL"
    (tmp_path / "alert-rules.yaml").write_text(rules.replace(old, "{{ labels.service_name } logged a FATAL"))
    line = rules[: rules.index(old)].count("\n") + 1
    where = f"{tmp_path / 'alert-rules.yaml'}:{line}"
    assert_refused(
        run("alert", "--check", "--config", str(tmp_path / "alert.yaml")), where, "template does not compile"
    )
    assert_refused(run("check", str(tmp_path / "alert-rules.yaml")), where, "annotations.summary")


def test_every_problem_is_reported_not_just_the_first(tmp_path):
    text = open(os.path.join(EXAMPLES, "sink.yaml")).read()
    path = tmp_path / "sink.yaml"
    path.write_text(
        text.replace("roll_bytes:", "roll_byte:")
        .replace("compression: zstd", "compression: lz5")
        .replace("max_batch: 2000", "max_batch: many", 1)
    )
    r = run("check", str(path))
    assert_refused(r, "audit.roll_byte", "analytics.parquet.compression", "monitoring.max_batch")
    assert len([line for line in r.stderr.splitlines() if line.startswith(f"{path}:")]) == 3


def test_an_unrecognizable_file_asks_for_role(tmp_path):
    path = tmp_path / "what.yaml"
    path.write_text("kafka: {bootstrap: k:9092}\nsomething: 1\n")
    r = run("check", str(path))
    assert_refused(r, f"{path}:1", "cannot tell which role", "--role")
    path.write_text("kafka: {bootstrap: k:9092}\nmonitoring: {}\n")
    r = run("check", "--role", "sink", str(path))
    assert r.returncode == 0, r.stderr
    r = run("check", "--role", "nope", str(path))
    assert r.returncode == 2 and "not a role" in r.stderr


def test_check_help_says_how_roles_are_recognized():
    r = run("check", "--help")
    assert r.returncode == 0 and "top-level keys" in r.stdout and "--role" in r.stdout


def test_every_unresolvable_secret_is_reported(tmp_path):
    path = tmp_path / "collect.yaml"
    text = open(os.path.join(EXAMPLES, "collect.yaml")).read()
    path.write_text(
        text.replace("${SF_PRIVATE_KEY}", "${LOGTIDE_TEST_UNSET_A}").replace(
            "${SF_CLIENT_ID:-3MVG9-example-consumer-key}", "file:/nonexistent/client-id"
        )
    )
    r = run("check", str(path))
    assert_refused(r, "LOGTIDE_TEST_UNSET_A is not set", "cannot read secret file /nonexistent/client-id")
    assert len(r.stderr.splitlines()) == 2

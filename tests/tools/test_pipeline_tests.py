"""logtide test: offline unit tests of pipelines and alert rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from logtide.tools.testing.expect import MISSING, SpecError, check_value

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples", "tests")
PROCESS = os.path.join(ROOT, "examples", "process.yaml")


def logtide_test(*args: str) -> subprocess.CompletedProcess:
    """As CI runs it: a subprocess, no broker (LOGTIDE_BOOTSTRAP unset)."""
    env = {k: v for k, v in os.environ.items() if k != "LOGTIDE_BOOTSTRAP"}
    return subprocess.run(
        [sys.executable, "-m", "logtide.cli", "test", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )


def write(tmp_path, text: str) -> str:
    path = tmp_path / "tests.yaml"
    path.write_text(textwrap.dedent(text).replace("PROCESS", PROCESS))
    return str(path)


def test_the_repository_examples_pass():
    r = logtide_test(EXAMPLES)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAIL" not in r.stdout and " 0 failed" in r.stdout
    files = {f for f in os.listdir(EXAMPLES) if f.endswith(".yaml")}
    assert {"pipeline.yaml", "alerts.yaml", "rules.yaml", "enrich.yaml"} <= files


def test_a_failing_expectation_exits_1_with_a_diff(tmp_path, cli):
    path = write(
        tmp_path,
        """\
        pipeline: PROCESS
        defaults: {source: k8s, resource: {service.name: checkout}}
        tests:
          - name: right
            input: [{body: "disk full", severity_text: ERROR}]
            expect:
              monitoring: [{severity_number: 17}]
          - name: wrong
            input: [{body: "disk full", severity_text: ERROR}, {body: "fine", severity_text: INFO}]
            expect:
              monitoring: [{severity_number: 21, body: {matches: "^disk"}}]
              analytics: [{body: fine}]
        """,
    )
    r = cli("test", path)
    assert r.returncode == 1
    assert "PASS" in r.stdout and "FAIL" in r.stdout and "1 passed, 1 failed" in r.stdout
    lines = [line.strip() for line in r.stdout.splitlines()]
    assert "severity_number: expected 21, got 17" in lines
    assert "-severity_number: 21" in lines and "+severity_number: 17" in lines  # the diff
    assert "body: matches '^disk'" in lines  # unchanged line of the diff: held
    assert "route analytics: expected 1 items, got 2" in lines
    report = json.loads(cli("test", path, "--json").stdout)
    assert report["passed"] == 1 and report["failed"] == 1
    [wrong] = [t for t in report["files"][0]["tests"] if t["name"] == "wrong"]
    assert wrong["status"] == "failed" and any("expected 21" in f for f in wrong["failures"])


def test_alert_expectations_can_fail(tmp_path, cli):
    path = write(
        tmp_path,
        """\
        rules:
          - {name: AnyError, kind: match, condition: severity_number >= 17, group_by: [service.name], window: 1m}
        defaults: {source: k8s, resource: {service.name: shop}}
        tests:
          - name: expects an alert that does not come
            input: [{body: "just info", severity_text: INFO}, {advance: 1m}]
            alerts: [{rule: AnyError, state: firing}]
          - name: expects silence but an error fires
            input: [{body: "boom", severity_text: ERROR}, {advance: 31s}]
            alerts: []
            notifications: []
        """,
    )
    r = cli("test", path)
    assert r.returncode == 1 and "0 passed, 2 failed" in r.stdout
    assert "alerts: expected 1 items, got 0" in r.stdout
    assert "alerts: unexpected item(s):" in r.stdout and "AnyError" in r.stdout
    assert "notifications: expected 0 items, got 1" in r.stdout


def test_dlq_and_unrouted_expectations(tmp_path, cli):
    path = write(
        tmp_path,
        """\
        pipeline:
          - {type: filter, drop: 'body contains "noise"'}
        sinks: [monitoring]
        tests:
          - name: routes kept, no routes is unrouted, noise dropped, a broken envelope to the DLQ
            input:
              - {body: bad, severity_text: ERROR, routes: [monitoring]}
              - {body: meh, severity_text: INFO}
              - {body: noise, routes: [monitoring]}
              - {body: broken, severity_number: 99}
            expect:
              monitoring: [{body: bad}]
              unrouted: [{body: meh, routes: []}]
              dlq: [{stage: decode, body: broken, error: {contains: severity_number}}]
        """,
    )
    r = cli("test", path)
    assert r.returncode == 0, r.stdout + r.stderr


def test_file_errors_name_file_and_line(tmp_path, cli):
    path = write(
        tmp_path,
        """\
        pipeline: PROCESS
        tests:
          - name: typo
            inputs: [{body: x}]
        """,
    )
    r = cli("test", path)
    assert r.returncode == 2 and f"{path}:4: unknown field 'inputs'" in r.stderr
    path = write(
        tmp_path,
        """\
        pipeline:
          - type: no-such-step
        tests:
          - {name: t, input: [x], expect: {monitoring: []}}
        """,
    )
    r = cli("test", path)
    assert r.returncode == 2 and "unknown step type 'no-such-step'" in r.stderr
    path = write(
        tmp_path,
        """\
        tests:
          - {name: t, input: [x], alerts: []}
        """,
    )
    r = cli("test", path)
    assert r.returncode == 2 and "names no 'alerting:' config and no 'rules:'" in r.stderr
    # Issue 17 (7): a case without expectations passed (it checks nothing).
    path = write(
        tmp_path,
        """\
        pipeline: default
        tests:
          - name: checks nothing
            input: [x]
        """,
    )
    r = cli("test", path)
    assert r.returncode == 2 and f"{path}:3: test 'checks nothing' has no expectations" in r.stderr, r.stderr


def test_enrich_lookups_are_given_offline(tmp_path, cli):
    """`lookups:` gives an enrich step its table; without it the file says what is missing."""
    steps = textwrap.dedent("""\
        pipeline:
          - type: enrich
            lookup: {topic: logtide.lookup.services, key: resource.service.name}
          - type: route
            rules: [{when: "true", sinks: [analytics]}]
        """)
    case = textwrap.dedent("""\
        tests:
          - name: joined
            input: [{body: x, resource: {service.name: checkout}}]
            expect: {analytics: [{resource: {service.team: payments}}]}
        """)
    r = cli(
        "test", write(tmp_path, steps + "lookups: {logtide.lookup.services: {checkout: {team: payments}}}\n" + case)
    )
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli("test", write(tmp_path, steps + "lookups: {logtide.lookup.services: {checkout: {team: search}}}\n" + case))
    assert r.returncode == 1 and "service.team" in r.stdout  # the join happened, with the given row
    r = cli("test", write(tmp_path, steps + case))
    assert r.returncode == 2 and "lookups:" in r.stderr and "logtide.lookup.services" in r.stderr
    path = write(tmp_path, steps + "lookups: {logtide.lookup.services: [checkout]}\n" + case)
    r = cli("test", path)
    assert r.returncode == 2 and f"{path}:6: 'lookups' maps a lookup topic to its rows" in r.stderr


@pytest.mark.parametrize(
    "expected, actual, ok",
    [
        (17, 17, True),
        (17, 18, False),
        (True, 1, False),
        ({"absent": True}, MISSING, True),
        ({"absent": True}, "x", False),
        ({"present": True}, "x", True),
        ({"present": True}, MISSING, False),
        ({"matches": r"^a\d+$"}, "a12", True),
        ({"matches": "^b"}, "a", False),
        ({"contains": "mid"}, "amidb", True),
        ({"contains": "x"}, ["x", "y"], True),
        ({"contains": "z"}, ["x"], False),
        ({"gte": 13, "lt": 17}, 13, True),
        ({"gte": 13, "lt": 17}, 17, False),
        ({"gt": 1}, "2", False),
        ({"one_of": [1, 2]}, 2, True),
        ({"equals": {"a": 1}}, {"a": 1}, True),
        ({"a": 1}, {"a": 1, "b": 2}, True),
        ({"a": {"matches": "x"}}, {"a": "y"}, False),
        ({"a": 1}, MISSING, False),
    ],
)
def test_field_matchers(expected, actual, ok):
    assert (check_value(expected, actual) is None) is ok


def test_bad_regex_is_a_spec_error():
    with pytest.raises(SpecError):
        check_value({"matches": "("}, "x")

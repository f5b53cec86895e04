"""Rule files: the examples load; mistakes are refused with file:line; fingerprints match Alertmanager."""

from pathlib import Path

import pytest

from logtide.config import ConfigError

from logtide.alerting.config import load_alert_config
from logtide.alerting.rules import load_rules
from logtide.alerting.state import fingerprint, labels_signature

ROOT = Path(__file__).resolve().parents[2]


def test_examples_load():
    cfg = load_alert_config(ROOT / "examples" / "alert.yaml")
    rules = load_rules(cfg.rule_paths())
    assert {r.kind for r in rules} == {"match", "threshold", "ratio", "spike", "absence", "new_term"}
    assert cfg.route.routes[0].continue_ is True
    assert [r.name for r in cfg.receivers] == ["team-webhook", "shop-slack", "oncall-pagerduty"]


def test_the_example_with_the_old_duration_keys_is_refused_naming_each_new_key(tmp_path):
    """Durations in role config are <name>_seconds numbers; a config written before the rename gets
    one line per old key, with its file:line and its new name (the rule language keeps "5m")."""
    text = (ROOT / "examples" / "alert.yaml").read_text()
    old = (
        text.replace("reload_interval_seconds: 5", "reload_interval: 5s")
        .replace("lateness_seconds: 30", "lateness: 30s")
        .replace("retry: {initial_seconds: 0.5, max_seconds: 60}", "retry: {initial: 500ms, max: 1m}")
    )
    (tmp_path / "alert.yaml").write_text(old)
    (tmp_path / "alert-rules.yaml").write_text((ROOT / "examples" / "alert-rules.yaml").read_text())
    with pytest.raises(ConfigError) as exc:
        load_alert_config(tmp_path / "alert.yaml")
    lines = str(exc.value).splitlines()
    line_of = {
        k: n
        for n, line in enumerate(old.splitlines(), 1)
        for k in ("reload_interval:", "lateness:", "retry:")
        if line.lstrip().startswith(k)
    }
    assert sorted(lines) == sorted(
        [
            f"{tmp_path / 'alert.yaml'}:{line_of['reload_interval:']}: unknown field 'reload_interval': "
            "renamed 'reload_interval_seconds', a number of seconds",
            f"{tmp_path / 'alert.yaml'}:{line_of['lateness:']}: unknown field 'clock.lateness': "
            "renamed 'lateness_seconds', a number of seconds",
            f"{tmp_path / 'alert.yaml'}:{line_of['retry:']}: unknown field 'receivers.0.retry.initial': "
            "renamed 'initial_seconds', a number of seconds",
            f"{tmp_path / 'alert.yaml'}:{line_of['retry:']}: unknown field 'receivers.0.retry.max': "
            "renamed 'max_seconds', a number of seconds",
        ]
    )


def write(tmp_path, text: str) -> Path:
    p = tmp_path / "rules.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("rules:\n  - name: a\n    kind: threshold\n    count: 3\n    windw: 5m\n", 5, "unknown field 'windw'"),
        ("rules:\n  - name: a\n    kind: match\n    condition: body contains\n", 4, "broken condition"),
        ("rules:\n  - name: a\n    kind: ratio\n    errors: 'x =='\n    above: 0.5\n", 4, "broken condition"),
        ("rules:\n  - name: a\n    kind: burst\n", 3, "must be one of"),
        ("rules:\n  - name: a\n    kind: match\n  - name: a\n    kind: match\n", 4, "already used"),
        ("rules:\n  - name: a\n    kind: threshold\n", 2, "count"),
        ("rules:\n  - name: a\n    kind: match\n    window: 5 minutes\n", 4, "invalid duration"),
        ("rules:\n  - name: a\n    kind: new_term\n    field: 'a..b'\n", 4, "bad field path"),
        ("rules:\n  - name: a\n    kind: match\n    count: 3\n", 4, "unknown field 'count'"),
        (
            "rules:\n  - name: a\n    kind: absence\n    group_by: [a, b]\n    expected: [x]\n",
            2,
            "exactly one group_by",
        ),
    ],
)
def test_bad_rules_are_refused_with_file_and_line(tmp_path, text, line, words):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_rules([p])
    assert f"{p}:{line}:" in str(err.value)
    assert words in str(err.value)


def test_fingerprint_is_alertmanagers():
    # prometheus/common model: TestLabelsToSignature / TestMetricToFingerprint
    assert labels_signature({}) == 14695981039346656037
    assert labels_signature({"name": "garland, briggs", "fear": "love is not enough"}) == 5799056148416392346
    assert fingerprint({"name": "garland, briggs", "fear": "love is not enough"}) == f"{5799056148416392346:016x}"
    assert fingerprint({"a": "b"}) != fingerprint({"a": "c"})

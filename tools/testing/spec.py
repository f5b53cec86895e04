"""The TESTS.yaml format of `logtide test`, read into plain objects with ``file:line`` errors.

pipeline: ../process.yaml        # a processor config (its `pipeline:` and `sinks:`), relative to
                                 # this file; `default` = the built-in pipeline; or a list of steps
sinks: [monitoring, audit, analytics]   # with an inline list of steps (default: these three)
alerting: ../alert.yaml          # an alerting config (rules_files, route, receivers) — optional
rules: [...]                     # inline alert rules (instead of / added to the config's)
start: 2024-05-01T12:00:00Z      # time of events without `time` (default 2024-01-01T00:00:00Z)
defaults: {source: k8s}          # merged into every input event (resource/attributes key by key)
lookups:                         # enrich lookup tables (topic → key → row) instead of Kafka's
  logtide.lookup.services: {checkout: {team: payments, tier: 1}}
tests:
  - name: errors go to monitoring
    input:
      - {body: "db timeout", severity_text: ERROR, resource: {service.name: checkout}}
      - "a plain line"             # just a body
      - {time: +90s, body: later}  # `+DURATION`: after `start`
      - advance: 5m                # move event time on (alert windows, group_wait)
    expect:                        # per route: the events that came out (see expect.py)
      monitoring: [{body: "db timeout", severity_number: 17}]
      audit: []
      analytics: {count: 2}
      dlq: [{stage: parse}]        # events a step failed on: stage, error, event
      unrouted: []                 # events that left the pipeline with no sink
    alerts: [{rule: CheckoutErrors, state: firing, labels: {service: checkout}}]
    notifications: [{receiver: oncall, status: firing, alerts: 1,
                     payload: {commonAnnotations: {summary: {matches: checkout}}}}]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logtide import timeutil
from logtide.config import ConfigError, load_yaml

TOP_KEYS = {"pipeline", "sinks", "alerting", "rules", "start", "defaults", "lookups", "tests"}
TEST_KEYS = {"name", "input", "expect", "alerts", "notifications", "skip"}
DEFAULT_START = "2024-01-01T00:00:00Z"


@dataclass
class Advance:
    seconds: float


@dataclass
class TestCase:
    name: str
    line: int | None
    inputs: list[Any]  # event dicts and Advance markers, in order
    expect: dict[str, Any] = field(default_factory=dict)
    alerts: Any = None  # None: not checked
    notifications: Any = None
    skip: str | None = None


@dataclass
class TestFile:
    path: Path
    pipeline: str | list | None = None  # a path, "default", or inline steps
    sinks: list[str] | None = None
    alerting: Path | None = None
    rules: list | None = None
    start_ns: int = 0
    defaults: dict = field(default_factory=dict)
    lookups: dict[str, dict[str, dict]] = field(default_factory=dict)
    tests: list[TestCase] = field(default_factory=list)


def _line(node: Any, key: str | None = None) -> int | None:
    lines = getattr(node, "lines", {})
    return lines.get(key) if key and key in lines else lines.get("__self__")


def _where(path: Path, node: Any, key: str | None = None) -> str:
    line = _line(node, key)
    return f"{path}:{line}" if line else str(path)


def _refuse_unknown(path: Path, node: dict, known: set[str], what: str) -> None:
    unknown = sorted(set(node) - known)
    if unknown:
        raise ConfigError(
            f"{_where(path, node, unknown[0])}: unknown field '{unknown[0]}'{what} (known: {', '.join(sorted(known))})"
        )


def parse_duration(text: Any, where: str) -> float:
    try:
        return timeutil.parse_duration("".join(text.split()) if isinstance(text, str) else text)
    except ValueError:
        raise ConfigError(f"{where}: cannot read duration {text!r} (e.g. 30s, 5m, 1h30m)") from None


def _time_ns(value: Any, start_ns: int, where: str) -> int:
    s = str(value).strip()
    if s.startswith("+"):
        return start_ns + round(parse_duration(s[1:], where) * timeutil.NS)
    try:
        return timeutil.parse_time_expr(s)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load(path: str | Path) -> TestFile:
    path = Path(path)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: a tests file is a mapping with a 'tests:' list")
    _refuse_unknown(path, data, TOP_KEYS, "")
    base = path.resolve().parent
    tf = TestFile(path=path)
    pipeline = data.get("pipeline")
    if isinstance(pipeline, str) and pipeline != "default":
        tf.pipeline = str(base / pipeline)
    elif pipeline is not None and not isinstance(pipeline, (str, list)):
        raise ConfigError(
            f"{_where(path, data, 'pipeline')}: 'pipeline' is a config file path, 'default', or a list of steps"
        )
    else:
        tf.pipeline = pipeline
    tf.sinks = data.get("sinks")
    if data.get("alerting") is not None:
        tf.alerting = base / str(data["alerting"])
    rules = data.get("rules")
    if rules is not None and not isinstance(rules, list):
        raise ConfigError(f"{_where(path, data, 'rules')}: 'rules' is a list of alert rules")
    tf.rules = rules
    tf.start_ns = _time_ns(data.get("start", DEFAULT_START), 0, _where(path, data, "start"))
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{_where(path, data, 'defaults')}: 'defaults' is a mapping of envelope fields")
    tf.defaults = defaults
    lookups = data.get("lookups") or {}
    if not isinstance(lookups, dict) or not all(
        isinstance(rows, dict) and all(isinstance(row, dict) for row in rows.values()) for rows in lookups.values()
    ):
        raise ConfigError(
            f"{_where(path, data, 'lookups')}: 'lookups' maps a lookup topic to its rows "
            "(key → mapping of fields), e.g. {logtide.lookup.services: {checkout: {team: payments}}}"
        )
    tf.lookups = {str(topic): {str(k): dict(row) for k, row in rows.items()} for topic, rows in lookups.items()}
    tests = data.get("tests")
    if not isinstance(tests, list) or not tests:
        raise ConfigError(f"{_where(path, data, 'tests')}: 'tests' must be a non-empty list")
    names = set()
    for i, t in enumerate(tests):
        case = _test(path, t, i, tf)
        if case.name in names:
            raise ConfigError(f"{_where(path, t)}: test name {case.name!r} is used twice")
        names.add(case.name)
        tf.tests.append(case)
    return tf


def _test(path: Path, t: Any, i: int, tf: TestFile) -> TestCase:
    if not isinstance(t, dict):
        raise ConfigError(f"{path}: tests[{i}] must be a mapping with name, input and expectations")
    _refuse_unknown(path, t, TEST_KEYS, " in a test")
    name = str(t.get("name") or f"test {i + 1}")
    raw = t.get("input")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{_where(path, t, 'input')}: test {name!r}: 'input' must be a non-empty list")
    inputs: list[Any] = []
    last_ns = tf.start_ns
    for j, item in enumerate(raw):
        where = _where(path, item) if isinstance(item, dict) else _where(path, t, "input")
        if isinstance(item, dict) and set(item) == {"advance"}:
            inputs.append(Advance(parse_duration(item["advance"], where)))
            continue
        if isinstance(item, str):
            item = {"body": item}
        if not isinstance(item, dict):
            raise ConfigError(
                f"{where}: test {name!r}: input[{j}] must be an event mapping, a string or {{advance: DURATION}}"
            )
        event = _merge(_plain(tf.defaults), _plain(item))
        for key in ("time", "observed_time"):
            if event.get(key) is not None:
                event[key] = _time_ns(event[key], tf.start_ns, where)
        if event.get("time") is None:
            event["time"] = last_ns
        last_ns = event["time"]
        inputs.append(event)
    expect = t.get("expect") or {}
    if not isinstance(expect, dict):
        raise ConfigError(
            f"{_where(path, t, 'expect')}: test {name!r}: 'expect' maps a route (or dlq, unrouted) "
            "to its expected events"
        )
    if not expect and t.get("alerts") is None and t.get("notifications") is None and not t.get("skip"):
        # A case that checks nothing always passes: it would hide the very regression it was written for.
        raise ConfigError(
            f"{_where(path, t)}: test {name!r} has no expectations: give 'expect' (route → events; "
            "[] for none), 'alerts' or 'notifications'"
        )
    if (t.get("alerts") is not None or t.get("notifications") is not None) and tf.alerting is None and not tf.rules:
        raise ConfigError(
            f"{_where(path, t, 'alerts')}: test {name!r} expects alerts but the file names no "
            "'alerting:' config and no 'rules:'"
        )
    if expect and tf.pipeline is None:
        raise ConfigError(
            f"{_where(path, t, 'expect')}: test {name!r} expects route outputs but the file names "
            "no 'pipeline:' (use `pipeline: default` for the built-in one)"
        )
    return TestCase(
        name=name,
        line=_line(t),
        inputs=inputs,
        expect=_plain(expect),
        alerts=_plain(t.get("alerts")),
        notifications=_plain(t.get("notifications")),
        skip=t.get("skip"),
    )


def _merge(defaults: dict, event: dict) -> dict:
    """Defaults under the event's own fields; mappings (resource, attributes) merge key by key."""
    out = dict(defaults)
    for k, v in event.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _plain(v: Any) -> Any:
    """YAML nodes (with line info) to plain dicts and lists."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v

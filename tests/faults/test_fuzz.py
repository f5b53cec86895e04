"""Fuzzing (hypothesis) of everything that reads untrusted input: the agent's line parsers, the
processor's parse formats, the condition language, envelope decoding and config loading. Each either
returns a result or raises its one documented error — never anything else.

Example counts: the "faults-ci" profile (modest, the CI default) or "faults-full" (FAULT_FULL=1, or
FAULT_HYPOTHESIS_PROFILE=faults-full). The processor's own whole-pipeline fuzz is
tests/processors/test_fuzz.py; the running processor's DLQ is tests/faults/test_dlq_fuzz.py."""

from __future__ import annotations

import json
import os

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logtide.agents.config import AgentConfig
from logtide.agents.parser.cri import CriParser, looks_like_cri
from logtide.agents.parser.docker import DockerParser, looks_like_docker
from logtide.agents.parser.picker import detect, parser_for
from logtide.agents.parser.plain import PlainParser
from logtide.agents.parser.timestamps import TimestampParser
from logtide.alerting.config import AlertConfig
from logtide.alerting.rules import parse_rules
from logtide.collectors.config import CollectConfig
from logtide import envelope
from logtide.condition import ConditionError, compile_condition
from logtide.config import ConfigError, load_config, load_yaml
from logtide.processors.app import ProcessorConfig, build_pipeline
from logtide.processors.sinks.config import SinkConfig
from logtide.processors.steps import StepContext
from logtide.processors.steps.parse import parse_json, parse_kv, parse_logfmt, parse_plain, parse_syslog, parse_time
from tests.conftest import ROOT
from tests.faults.conftest import FULL

settings.register_profile(
    "faults-ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "faults-full",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PROFILE = settings.get_profile(os.environ.get("FAULT_HYPOTHESIS_PROFILE") or ("faults-full" if FULL else "faults-ci"))


def fuzz(**extra):
    """The suite's profile, without touching the global one (other test folders keep theirs)."""
    return settings(PROFILE, **extra)


# --- input strategies ----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=15,
)
stamps = st.one_of(
    st.sampled_from(
        [
            "2024-05-01T12:00:00.123456789Z",
            "2024-02-30T25:61:61Z",
            "2024-05-01T12:00:00+14:00",
            "9999-12-31T23:59:59.999999999Z",
            "0000-00-00T00:00:00Z",
            "2024-05-01T12:00:00.Z",
            "",
        ]
    ),
    st.text(alphabet="0123456789-:TZ.+", max_size=40),
)
cri_lines = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda ts, stream, tag, msg: f"{ts} {stream} {tag} ".encode() + msg,
        stamps,
        st.sampled_from(["stdout", "stderr", "stdin", ""]),
        st.sampled_from(["P", "F", "F:x", "X", ""]),
        st.binary(max_size=200),
    ),
)
docker_lines = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda d: json.dumps(d).encode(),
        st.fixed_dictionaries(
            {},
            optional={"log": json_values | st.text(max_size=50), "stream": json_values, "time": json_values | stamps},
        ),
    ),
    json_values.map(lambda v: json.dumps(v).encode()),
)  # json: big ints and NaN are allowed, as on the wire
texts = st.one_of(
    st.text(max_size=300),
    json_values.map(json.dumps),
    st.builds(lambda pri, rest: f"<{pri}>{rest}", st.integers(-5, 300), st.text(max_size=120)),
    st.builds(lambda pri, rest: f"<{pri}>1 {rest}", st.integers(0, 200), st.text(max_size=120)),
    st.lists(st.builds(lambda k, v: f"{k}={v}", st.text(max_size=8), st.text(max_size=12)), max_size=6).map(" ".join),
    st.sampled_from(
        [
            '{"a":' * 200,
            '"\\ud800"',
            "Dec 10 06:55:46 LabSZ sshd[24200]: x",
            'level=error msg="boom',
            "2015-10-18 18:01:47,978 INFO [main] x",
            "\x00\x01\x02",
            "<34>Oct 11 22:14:15 host su: x",
        ]
    ),
)


# --- the agent's parsers -----------------------------------------------------------------------


@fuzz()
@given(line=cri_lines)
def test_cri_parser_never_raises(line):
    frag = CriParser().parse(line)
    assert frag.stream in ("stdout", "stderr")
    assert frag.problem in (None, "bad_format", "bad_timestamp")
    if frag.problem == "bad_format":
        assert frag.message == line, "a line that is not CRI is kept whole, not lost"
    looks_like_cri(line)


@fuzz()
@given(line=docker_lines)
def test_docker_parser_never_raises(line):
    frag = DockerParser().parse(line)
    assert frag.stream in ("stdout", "stderr")
    assert frag.problem in (None, "bad_format", "bad_timestamp")
    looks_like_docker(line)


@fuzz()
@given(line=st.one_of(cri_lines, docker_lines), configured=st.sampled_from(["auto", "cri", "docker", "plain"]))
def test_format_picker_and_every_parser_take_any_line(line, configured):
    assert detect(line) in ("cri", "docker", "plain")
    parser_for(configured, line).parse(line)
    PlainParser().parse(line)


@fuzz()
@given(ts=st.one_of(stamps.map(str.encode), st.binary(max_size=40)))
def test_timestamp_parser_returns_ns_or_none(ts):
    value = TimestampParser().parse(ts)
    assert value is None or isinstance(value, int)


# --- the processor's parse formats -------------------------------------------------------------


@fuzz()
@given(text=texts)
def test_processor_parse_formats_return_parsed_or_none(text):
    for parse in (parse_json, parse_syslog, parse_logfmt, parse_kv, parse_plain):
        parsed = parse(text)
        if parsed is not None:
            assert isinstance(parsed.fields, dict)
            assert parsed.time_ns is None or isinstance(parsed.time_ns, int)


@fuzz()
@given(value=st.one_of(json_values, stamps))
def test_parse_time_returns_ns_or_none(value):
    ns = parse_time(value)
    assert ns is None or isinstance(ns, int)


# --- the condition language --------------------------------------------------------------------

fields = st.sampled_from(
    [
        "body",
        "severity_number",
        "severity_text",
        "source",
        'resource["service.name"]',
        "attributes.user",
        "attributes.n",
        "attributes",
        "time",
        "nope.deeper",
        'attributes["a b"]',
    ]
)
literals = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=False).map(repr),
    st.text(max_size=10).map(lambda s: orjson.dumps(s).decode()),
    st.sampled_from(["true", "false", "null", '["a", 1, null]', "[]"]),
)
comparisons = st.builds(
    lambda f, op, v: f"{f} {op} {v}",
    fields,
    st.sampled_from(
        ["==", "!=", "<", "<=", ">", ">=", "contains", "matches", "in", "startswith", "not in", "=~", "exists"]
    ),
    literals,
)
conditions = st.recursive(
    comparisons | fields | st.just("true"),
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a}) and ({b})", inner, inner),
        st.builds(lambda a, b: f"{a} or {b}", inner, inner),
        inner.map(lambda a: f"not ({a})"),
    ),
    max_leaves=6,
)
events = st.builds(
    lambda body, attrs, sev, res: envelope.new_event(
        id="fuzz", body=body, source="fuzz", attributes=attrs, severity_number=sev, resource=res
    ),
    json_values,
    st.dictionaries(st.sampled_from(["user", "n", "a b", "x"]), json_values, max_size=4),
    st.integers(0, 24),
    st.dictionaries(st.sampled_from(["service.name", "k8s.pod.name"]), st.text(max_size=8)),
)


@fuzz()
@given(text=st.one_of(st.text(max_size=120), conditions), event=events)
def test_conditions_compile_or_say_why_and_evaluate_without_raising(text, event):
    try:
        predicate = compile_condition(text)
    except ConditionError as exc:
        assert str(exc)
        return
    assert predicate(event) in (True, False)


# --- envelopes ---------------------------------------------------------------------------------


def _mutations(valid: bytes):
    return st.one_of(
        st.builds(
            lambda i, b: valid[:i] + bytes([b]) + valid[i + 1 :], st.integers(0, len(valid) - 1), st.integers(0, 255)
        ),
        st.integers(0, len(valid)).map(lambda i: valid[:i]),
        st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "time",
                    "body",
                    "attributes",
                    "resource",
                    "schema",
                    "severity_number",
                    "source",
                    "routes",
                    "observed_time",
                ]
            ),
            json_values,
        ).map(lambda patch: json.dumps({**orjson.loads(valid), **patch}).encode()),
    )


VALID = envelope.encode(envelope.new_event(id="x", body="hello", source="k8s", resource={"service.name": "a"}))


@fuzz()
@given(data=st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode()), _mutations(VALID)))
def test_envelope_decode_returns_an_envelope_or_a_reason(data):
    peeked = envelope.peek_id(data)  # what the DLQ writer does with any record: never raises
    assert peeked is None or (type(peeked) is str and 0 < len(peeked) <= envelope.MAX_PEEK_ID)
    try:
        event = envelope.decode(data)
    except envelope.EnvelopeError as exc:
        assert exc.reason
        return
    assert peeked == (event["id"] if len(event["id"]) <= envelope.MAX_PEEK_ID else None)
    assert envelope.decode(envelope.encode(event))["id"] == event["id"]


# --- config loading ----------------------------------------------------------------------------

MODELS = {
    "agent.yaml": AgentConfig,
    "process.yaml": ProcessorConfig,
    "sink.yaml": SinkConfig,
    "alert.yaml": AlertConfig,
    "collect.yaml": CollectConfig,
}
EXAMPLES = {name: open(os.path.join(ROOT, "examples", name)).read() for name in MODELS}
yaml_docs = st.one_of(
    json_values.map(lambda v: yaml.safe_dump(v)),
    st.text(max_size=200),
    st.sampled_from(
        [
            "a: [",
            "a: {b",
            "- - -",
            "&a [*a]",
            "!!python/object:os.system x",
            "a: *nope",
            "\t: x",
            "kafka: {bootstrap: 1}",
            "http: {port: -1}",
            "x: ${NOPE}",
            "x: file:/nonexistent",
        ]
    ),
)


def _edit(text: str, line: int, replacement: str) -> str:
    lines = text.splitlines()
    if lines:
        lines[line % len(lines)] = replacement
    return "\n".join(lines) + "\n"


@fuzz()
@given(
    name=st.sampled_from(sorted(MODELS)),
    doc=st.one_of(
        yaml_docs,
        st.builds(
            _edit,
            st.sampled_from(list(EXAMPLES.values())),
            st.integers(0, 200),
            st.one_of(st.text(max_size=40), yaml_docs),
        ),
    ),
)
def test_config_loading_gives_a_model_or_a_config_error(tmp_path_factory, name, doc):
    path = tmp_path_factory.mktemp("cfg") / name
    path.write_bytes(doc.encode("utf-8", "surrogatepass"))  # lone surrogates: bytes that are not UTF-8
    try:
        config = load_config(path, MODELS[name])
        if name == "process.yaml":
            build_pipeline(config, str(path), StepContext(sinks=tuple(config.sinks)))
    except ConfigError as exc:
        assert str(path) in str(exc) or path.name in str(exc), f"the error names the file: {exc}"


@fuzz()
@given(doc=yaml_docs)
def test_alert_rules_loading_gives_rules_or_a_config_error(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_bytes(doc.encode("utf-8", "surrogatepass"))
    try:
        parse_rules(load_yaml(path), str(path))
    except ConfigError:
        pass


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_example_configs_still_load(name, monkeypatch):
    """The fuzzing above edits these: make sure the unedited ones are valid (so edits test something)."""
    for var in ("LOGTIDE_BOOTSTRAP", "LOGTIDE_AUDIT_KEY", "SF_PRIVATE_KEY"):
        monkeypatch.setenv(var, "127.0.0.1:9092")
    load_config(os.path.join(ROOT, "examples", name), MODELS[name])

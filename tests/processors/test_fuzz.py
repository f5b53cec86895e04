"""Whatever arrives, the processor's per-record path ends in outputs or a DLQ reason — never an
exception that would stop it."""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logtide import envelope
from logtide.envelope import EnvelopeError
from logtide.processors.app import ProcessorConfig, build_pipeline
from logtide.processors.pipeline import StepError
from logtide.processors.steps import StepContext

PIPELINE = build_pipeline(ProcessorConfig(), "<defaults>", StepContext(sinks=("monitoring", "audit", "analytics")))

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
bodies = st.one_of(
    st.text(max_size=300),
    json_values.map(lambda v: orjson.dumps(v).decode()),
    st.sampled_from(
        [
            "<34>Oct 11 22:14:15 host su: x",
            "level=error msg=boom",
            "password=x 4111111111111111",
            "2024-01-01T00:00:00Z stdout F hi",
            '{"log":"x","stream":"stderr"}',
            '{"a":' * 70,
        ]
    ),
    json_values,
)


def outcome(value: bytes) -> str:
    try:
        event = envelope.decode(value)
    except EnvelopeError:
        return "dlq"
    try:
        outputs = PIPELINE.run(event)
    except StepError:
        return "dlq"
    for ev, _ in outputs:
        value = envelope.encode(ev)
        envelope.decode(value)  # what we produce is a valid envelope again: the whole record
        assert envelope.peek_id(value) == (ev["id"] if len(ev["id"]) <= envelope.MAX_PEEK_ID else None)
    return "ok"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=bodies,
    attributes=st.dictionaries(st.text(max_size=10), json_values, max_size=4),
    severity=st.integers(0, 24),
    source=st.sampled_from(["k8s", "cloudwatch", "salesforce", "demo"]),
)
def test_random_events_end_in_outputs_or_dlq(body, attributes, severity, source):
    ev = envelope.new_event(id="f", body=body, source=source, attributes=attributes, severity_number=severity)
    assert outcome(orjson.dumps(ev)) in ("ok", "dlq")


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_end_in_dlq_or_outputs(data):
    assert outcome(data) in ("ok", "dlq")

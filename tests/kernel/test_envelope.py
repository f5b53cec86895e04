"""The envelope: deterministic ids, severity mapping, wire format, schema upgrades, clear errors."""

from __future__ import annotations

import orjson
import pytest

from logtide import envelope
from logtide.envelope import EnvelopeError, decode, encode, header_value, make_id, new_event
from tests.legacy_records import old_headers


def event(**over):
    e = new_event(
        id=make_id("node-1:inode-42", 1024),
        body="GET /api 200",
        source="k8s",
        time=1_700_000_000_123_456_789,
        severity_text="WARN",
        attributes={"status": 200, "user": {"id": 7}},
        resource={"k8s.pod.name": "web-1", "service.name": "web"},
        routes=["monitoring", "audit"],
    )
    e.update(over)
    return e


# --- ids ------------------------------------------------------------------------------------


def test_ids_are_deterministic_and_distinct():
    assert make_id("file-1", 100) == make_id("file-1", 100)
    assert make_id("file-1", 100) != make_id("file-1", 101)
    assert make_id("file-1", 100) != make_id("file-2", 100)
    assert len(make_id("x")) == 32 and int(make_id("x"), 16) >= 0


def test_id_parts_are_separated_not_concatenated():
    assert make_id("ab", "c") != make_id("a", "bc")


def test_id_of_non_ascii_and_lone_surrogate_parts():
    assert make_id("pöd", "ünïcode") == make_id("pöd", "ünïcode")
    assert make_id("\ud800")  # a lone surrogate from a bad file name must not crash


# --- severity -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,number",
    [
        ("TRACE", 1),
        ("debug", 5),
        ("DBG", 5),
        ("Info", 9),
        ("information", 9),
        ("notice", 10),
        ("WARN", 13),
        ("warning", 13),
        ("W", 13),
        ("ERROR", 17),
        ("err", 17),
        ("E", 17),
        ("severe", 17),
        ("CRITICAL", 18),
        ("alert", 19),
        ("FATAL", 21),
        ("emerg", 21),
        ("panic", 21),
        (" warn ", 13),
    ],
)
def test_severity_text_maps_to_otel_number(text, number):
    assert envelope.severity_number(text) == number


@pytest.mark.parametrize(
    "syslog,number", [(0, 21), (1, 19), (2, 18), (3, 17), (4, 13), (5, 10), (6, 9), (7, 5), (9, 0)]
)
def test_syslog_numeric_severity(syslog, number):
    assert envelope.severity_number(syslog) == number


def test_unknown_severity_is_unspecified_not_an_error():
    assert envelope.severity_number("loud") == 0
    assert envelope.severity_number(None) == 0
    assert envelope.severity_number("") == 0


def test_severity_text_of_number():
    assert [envelope.severity_text(n) for n in (0, 1, 5, 9, 12, 13, 17, 20, 21, 24)] == [
        "",
        "TRACE",
        "DEBUG",
        "INFO",
        "INFO",
        "WARN",
        "ERROR",
        "ERROR",
        "FATAL",
        "FATAL",
    ]


def test_new_event_derives_severity_number():
    assert event()["severity_number"] == 13
    assert new_event(id="x", body="b", source="s", severity_text="ERROR", severity_number=20)["severity_number"] == 20
    e = new_event(id="x", body="b", source="s")
    assert e["severity_number"] == 0 and e["schema"] == envelope.SCHEMA_VERSION
    assert isinstance(e["observed_time"], int) and e["ingest_time"] is None


# --- wire format ----------------------------------------------------------------------------


def test_encode_decode_round_trip():
    e = event(body={"msg": "structured", "n": [1, 2.5, None, True]}, ingest_time=1_700_000_001_000_000_000)
    data = encode(e)
    assert isinstance(data, bytes)
    assert decode(data) == e
    assert decode(data.decode()) == e  # str input too


def test_round_trip_keeps_unicode_and_big_ints():
    e = event(body="naïve ✓ 日本語 \u2028", time=2**62)
    assert decode(encode(e)) == e


def test_encode_refuses_what_json_cannot_hold():
    with pytest.raises(EnvelopeError, match="not JSON-serializable"):
        encode(event(body=object()))


def test_older_schema_is_upgraded():
    v0 = {
        "id": "abc",
        "source": "legacy",
        "timestamp": 1_700_000_000.5,
        "level": "error",
        "message": "disk full",
        "schema": 0,
    }
    e = decode(orjson.dumps(v0))
    assert e["schema"] == envelope.SCHEMA_VERSION
    assert e["time"] == 1_700_000_000_500_000_000
    assert e["observed_time"] == e["time"]
    assert e["severity_text"] == "error" and e["severity_number"] == 17
    assert e["body"] == "disk full"
    assert e["attributes"] == {} and e["resource"] == {} and e["routes"] == []
    assert "timestamp" not in e and "level" not in e and "message" not in e


def test_missing_schema_means_version_zero():
    e = decode(b'{"id": "a", "source": "legacy", "message": "hi"}')
    assert e["body"] == "hi" and e["schema"] == envelope.SCHEMA_VERSION


def test_unknown_newer_schema_is_refused():
    with pytest.raises(EnvelopeError, match="unknown envelope schema 99") as exc:
        decode(encode(event(schema=99)))
    assert "99" in exc.value.reason


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"{not json", "invalid JSON"),
        (b"", "invalid JSON"),
        (b'{"id": "\xff\xfe"}', "invalid JSON"),  # invalid UTF-8
        (b"[1, 2]", "must be a JSON object"),
        (b'"a string"', "must be a JSON object"),
        (b'{"schema": "1"}', "'schema' must be an integer"),
        (b'{"schema": true}', "'schema' must be an integer"),
    ],
)
def test_invalid_input_raises_envelope_error_with_reason(data, reason):
    with pytest.raises(EnvelopeError) as exc:
        decode(data)
    assert reason in exc.value.reason
    assert isinstance(exc.value, ValueError)


@pytest.mark.parametrize(
    "field,value,reason",
    [
        ("id", "", "'id'"),
        ("id", 5, "'id'"),
        ("source", None, "'source'"),
        ("time", "yesterday", "'time'"),
        ("time", 1.5, "'time'"),
        ("time", True, "'time'"),
        ("attributes", [], "'attributes'"),
        ("resource", "x", "'resource'"),
        ("routes", "audit", "'routes'"),
        ("severity_number", 25, "'severity_number'"),
        ("severity_number", -1, "'severity_number'"),
        ("severity_text", 3, "'severity_text'"),
    ],
)
def test_wrong_field_types_name_the_field(field, value, reason):
    with pytest.raises(EnvelopeError) as exc:
        decode(encode(event(**{field: value})))
    assert reason in exc.value.reason


def test_deep_nesting_is_refused_not_a_crash():
    deep = (
        b'{"id":"a","source":"s","schema":1,"attributes":{},"resource":{},"routes":[],'
        b'"severity_text":"","severity_number":0,"body":' + b"[" * 200 + b"]" * 200 + b"}"
    )
    with pytest.raises(EnvelopeError, match="nesting deeper"):
        decode(deep)
    bomb = b"[" * 100_000 + b"]" * 100_000  # past orjson's own limit
    with pytest.raises(EnvelopeError, match="invalid JSON"):
        decode(bomb)


def test_nesting_within_limit_is_accepted():
    body = nested = {}
    for _ in range(envelope.MAX_DEPTH - 2):
        nested["x"] = {}
        nested = nested["x"]
    assert decode(encode(event(body=body)))["body"] == body


# --- headers and ids ------------------------------------------------------------------------


def test_header_value_reads_one_header_of_an_older_record():
    e = event()
    hdrs = old_headers(e)
    assert header_value(hdrs, envelope.HEADER_ID) == e["id"]
    assert header_value(hdrs, "logtide.routes") == "monitoring,audit"
    assert header_value(hdrs, "absent") is None
    assert header_value(None, envelope.HEADER_ID) is None
    assert decode(encode(e)) == e  # the value alone says everything the headers said


def test_id_comes_first_so_peek_id_reads_it_from_a_cut_or_broken_value():
    e = event(id='a"\\b \u00e9')
    value = encode(e)
    assert value.startswith(b'{"id":')
    assert envelope.EventTemplate(source="k8s").record("x", None, 1, 2, "b").startswith(b'{"id":"x"')
    for head in (value, value[: len(value) // 2], value[:30] + b"\xff\x00 garbage"):
        assert envelope.peek_id(head) == e["id"]
    assert envelope.peek_id(b'  {  "id" : "abc" , "body": ') == "abc"
    assert envelope.peek_id(b'{"body": "x", "id": "late"}') == "late"  # whole JSON: any key order


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"not json",
        b"[1, 2]",
        b'{"id": 7}',
        b'{"id": ""}',
        b'{"body": "x", "id": "cut',
        b'{"id":"\xff\xfe", ',
        b'{"id":"cut here',
        b'{"id":"' + b"a" * (envelope.MAX_PEEK_ID + 1) + b'"}',
        b'{"id":"' + b"a" * (envelope.MAX_PEEK_ID + 1) + b'", broken',
    ],
)
def test_peek_id_gives_none_when_there_is_no_id_to_read(value):
    assert envelope.peek_id(value) is None


def test_header_value_tolerates_bad_bytes_and_str():
    assert header_value([("h", b"\xff")], "h") == "\ufffd"
    assert header_value([("h", "text")], "h") == "text"


@pytest.mark.parametrize("body", ["plain", 'quo"te \\ back', "tab\tnew\nline\x00\x1f", "\u2028 é 日本 🎉", ""])
@pytest.mark.parametrize("time_ns", [None, 0, 1_700_000_000_123_456_789])
def test_event_template_encodes_what_encode_does(body, time_ns):
    attributes = {"log.iostream": "stderr", "log.file.path": "/var/log/pods/a_b_c/d/0.log", "n": {"x": [1, 2]}}
    resource = {"k8s.pod.name": "web-0", "k8s.pod.labels": {"app": 'w"eb'}, "service.name": "web"}
    template = envelope.EventTemplate(source="k8s", attributes=attributes, resource=resource, routes=["audit"])
    event = envelope.new_event(
        id="id-1",
        body=body,
        source="k8s",
        time=time_ns,
        observed_time=5,
        severity_text="WARN",
        attributes=attributes,
        resource=resource,
        routes=["audit"],
    )
    event["ingest_time"] = 7
    value = template.encode("id-1", time_ns, 5, 7, body, "WARN", 13)
    assert envelope.decode(value) == envelope.decode(envelope.encode(event))
    plain = dict(event, severity_text="", severity_number=0)
    value = template.record("id-1", time_ns, 5, 7, body)
    assert envelope.decode(value) == envelope.decode(envelope.encode(plain))

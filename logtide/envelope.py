"""The envelope: one event shape from source to sink (the OpenTelemetry logs data model plus routing).

An event is a plain ``dict`` (fast to build, to encode with orjson and to read in processors):

    id              deterministic id from the source's own identity (see ``make_id``)
    time            when it happened, Unix nanoseconds (int) or None when unknown
    observed_time   when the agent/collector saw it, Unix nanoseconds
    ingest_time     when it entered Kafka, Unix nanoseconds (set at produce time)
    severity_text   e.g. "ERROR"
    severity_number OTel 1..24 (0 = unspecified)
    body            str or parsed object
    attributes      dict of parsed fields
    resource        dict of OTel resource attributes (k8s.pod.name, cloud.region, service.name, ...)
    source          "k8s", "cloudwatch", "salesforce", "file", "demo", ...
    routes          list of sink names chosen for it
    schema          envelope version

Readers accept older schema versions (``decode`` upgrades them); an unknown newer version or a
malformed record raises ``EnvelopeError`` with the reason.

A Kafka record of an event is the encoded envelope as its value and no headers: everything that
routes it (``routes``, ``source``, ``severity_number``, ``schema``) is in the value, and headers cost
a producer about as much CPU per record as the value itself. ``id`` comes first in every envelope
written here, so ``peek_id`` finds it even in a cut or broken value (the dead letter queue puts it in
a header). Records written before carried ``logtide.id``, ``logtide.source``, ``logtide.routes``,
``logtide.schema`` and ``logtide.severity`` headers repeating those fields; readers ignore them.
"""

from __future__ import annotations

import hashlib
import re
import time as _time
from typing import Any

import orjson

SCHEMA_VERSION = 1

#: The Kafka header with an event's id: on dead letters (see ``logtide.dlq``), and on records written
#: before events went without headers.
HEADER_ID = "logtide.id"

#: Upper bound for a nested body/attributes depth on decode: a JSON bomb must not blow the stack.
MAX_DEPTH = 64

#: The envelope's top-level fields, in the order an event is written.
FIELDS = (
    "id",
    "time",
    "observed_time",
    "ingest_time",
    "severity_text",
    "severity_number",
    "body",
    "attributes",
    "resource",
    "source",
    "routes",
    "schema",
)


class EnvelopeError(ValueError):
    """A record that is not a valid envelope; ``reason`` says why in a few words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --- severity -------------------------------------------------------------------------------

# OTel severity numbers: TRACE 1-4, DEBUG 5-8, INFO 9-12, WARN 13-16, ERROR 17-20, FATAL 21-24.
_SEVERITY_BY_TEXT = {
    "trace": 1,
    "finest": 1,
    "finer": 2,
    "verbose": 2,
    "v": 2,
    "debug": 5,
    "fine": 5,
    "dbg": 5,
    "d": 5,
    "config": 7,
    "info": 9,
    "information": 9,
    "informational": 9,
    "notice": 10,
    "i": 9,
    "inf": 9,
    "warn": 13,
    "warning": 13,
    "w": 13,
    "wrn": 13,
    "error": 17,
    "err": 17,
    "e": 17,
    "severe": 17,
    "fail": 17,
    "failure": 17,
    "crit": 18,
    "critical": 18,
    "alert": 19,
    "fatal": 21,
    "emerg": 21,
    "emergency": 21,
    "panic": 21,
    "f": 21,
}

# syslog numeric severities (RFC 5424) → OTel.
_SEVERITY_BY_SYSLOG = {0: 21, 1: 19, 2: 18, 3: 17, 4: 13, 5: 10, 6: 9, 7: 5}

_CANONICAL_TEXT = ((21, "FATAL"), (17, "ERROR"), (13, "WARN"), (9, "INFO"), (5, "DEBUG"), (1, "TRACE"))


def severity_number(text: str | int | None) -> int:
    """Map a level as logs write it ("WARN", "warning", "E", "err", 3 for syslog) to OTel 1..24.

    Unknown text gives 0 (SEVERITY_NUMBER_UNSPECIFIED), never an error: logs are messy.
    """
    if text is None:
        return 0
    if isinstance(text, int):
        return _SEVERITY_BY_SYSLOG.get(text, 0)
    return _SEVERITY_BY_TEXT.get(text.strip().lower(), 0)


def severity_text(number: int) -> str:
    """The canonical short name of an OTel severity number ("" when unspecified)."""
    for floor, name in _CANONICAL_TEXT:
        if number >= floor:
            return name
    return ""


# --- ids and time ---------------------------------------------------------------------------


def make_id(*identity: Any) -> str:
    """A deterministic id from the source's own identity, e.g. (file identity, byte offset).

    Same parts → same id across retries and restarts, so sinks and alerting can drop duplicates.
    32 hex characters (128 bits of BLAKE2b): collisions are not a practical concern.
    """
    joined = "\x1f".join(str(p) for p in identity).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(joined, digest_size=16).hexdigest()


def now_ns() -> int:
    return _time.time_ns()


# --- building and checking ------------------------------------------------------------------


def new_event(
    *,
    id: str,
    body: Any,
    source: str,
    time: int | None = None,
    observed_time: int | None = None,
    severity_text: str = "",
    severity_number: int | None = None,
    attributes: dict | None = None,
    resource: dict | None = None,
    routes: list | None = None,
) -> dict:
    """Build a valid event; severity_number is derived from severity_text when not given."""
    if severity_number is None:
        severity_number = _SEVERITY_BY_TEXT.get(severity_text.strip().lower(), 0) if severity_text else 0
    return {
        "id": id,
        "time": time,
        "observed_time": observed_time if observed_time is not None else now_ns(),
        "ingest_time": None,
        "severity_text": severity_text,
        "severity_number": severity_number,
        "body": body,
        "attributes": attributes if attributes is not None else {},
        "resource": resource if resource is not None else {},
        "source": source,
        "routes": routes if routes is not None else [],
        "schema": SCHEMA_VERSION,
    }


def _check_depth(value: Any, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise EnvelopeError(f"nesting deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for v in value.values():
            if isinstance(v, (dict, list)):
                _check_depth(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, (dict, list)):
                _check_depth(v, depth + 1)


def validate(event: Any) -> dict:
    """Check types of an event dict (after upgrade); return it or raise EnvelopeError."""
    # Fast path for the hot loop of processors and sinks: one expression over exact types (bool is
    # not an int here); anything it does not accept goes through the checks below, which say why.
    if type(event) is dict:
        get = event.get
        eid, src, sn = get("id"), get("source"), get("severity_number")
        t, o, i = get("time"), get("observed_time"), get("ingest_time")
        routes = get("routes")
        if (
            type(eid) is str
            and eid
            and type(src) is str
            and src
            and (t is None or type(t) is int)
            and (o is None or type(o) is int)
            and (i is None or type(i) is int)
            and type(get("attributes")) is dict
            and type(get("resource")) is dict
            and type(sn) is int
            and 0 <= sn <= 24
            and type(get("severity_text")) is str
            and type(routes) is list
            and all(type(r) is str for r in routes)
        ):
            return event
    return _validate_slow(event)


def _validate_slow(event: Any) -> dict:
    if not isinstance(event, dict):
        raise EnvelopeError(f"envelope must be a JSON object, got {type(event).__name__}")
    eid = event.get("id")
    if not isinstance(eid, str) or not eid:
        raise EnvelopeError("missing or empty 'id'")
    src = event.get("source")
    if not isinstance(src, str) or not src:
        raise EnvelopeError("missing or empty 'source'")
    for key in ("time", "observed_time", "ingest_time"):
        v = event.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
            raise EnvelopeError(f"'{key}' must be integer Unix nanoseconds or null")
    for key in ("attributes", "resource"):
        v = event.get(key)
        if not isinstance(v, dict):
            raise EnvelopeError(f"'{key}' must be an object")
    routes = event.get("routes")
    if not isinstance(routes, list) or not all(isinstance(r, str) for r in routes):
        raise EnvelopeError("'routes' must be a list of sink names")
    sn = event.get("severity_number")
    if not isinstance(sn, int) or isinstance(sn, bool) or not 0 <= sn <= 24:
        raise EnvelopeError("'severity_number' must be an integer 0..24")
    if not isinstance(event.get("severity_text"), str):
        raise EnvelopeError("'severity_text' must be a string")
    return event


# --- schema versions ------------------------------------------------------------------------


def _upgrade_v0(event: dict) -> dict:
    """Schema 0 (pre-release) used `timestamp` in seconds (float), `level` and `message`."""
    ts = event.pop("timestamp", None)
    level = event.pop("level", "") or ""
    msg = event.pop("message", event.get("body"))
    event.setdefault("time", int(ts * 1e9) if isinstance(ts, (int, float)) else None)
    event.setdefault("observed_time", event["time"])
    event.setdefault("ingest_time", None)
    event.setdefault("severity_text", level)
    event.setdefault("severity_number", severity_number(level))
    event["body"] = msg
    event.setdefault("attributes", {})
    event.setdefault("resource", {})
    event.setdefault("routes", [])
    event["schema"] = 1
    return event


_UPGRADES = {0: _upgrade_v0}


def upgrade(event: dict) -> dict:
    """Bring an older envelope to SCHEMA_VERSION; refuse newer ones (we cannot know their meaning)."""
    version = event.get("schema", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise EnvelopeError(f"'schema' must be an integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise EnvelopeError(f"unknown envelope schema {version} (this reader knows up to {SCHEMA_VERSION})")
    while version < SCHEMA_VERSION:
        step = _UPGRADES.get(version)
        if step is None:
            raise EnvelopeError(f"no upgrade path from envelope schema {version}")
        event = step(event)
        version = event["schema"]
    return event


# --- wire format ----------------------------------------------------------------------------


def encode(event: dict) -> bytes:
    """JSON bytes of an event (orjson: fast; non-str keys and numpy-ish values are coerced)."""
    try:
        return orjson.dumps(event, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        raise EnvelopeError(f"not JSON-serializable: {exc}") from None


def decode(data: bytes | str, *, check_depth: bool = True) -> dict:
    """Parse, upgrade and validate one envelope from the wire; raise EnvelopeError with a reason."""
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        # orjson refuses invalid UTF-8 and nesting over 1024 as JSONDecodeError: one error type.
        raise EnvelopeError(f"invalid JSON: {exc}") from None
    if not isinstance(event, dict):
        raise EnvelopeError(f"envelope must be a JSON object, got {type(event).__name__}")
    version = event.get("schema")
    if version != SCHEMA_VERSION or type(version) is not int:  # `true == 1`: a bool is not a version
        event = upgrade(event)
    if check_depth:
        _check_depth(event)
    return validate(event)


#: ``peek_id`` gives up on longer ids: a header is no place for a hostile value's megabyte "id"
MAX_PEEK_ID = 512
#: ``{"id":"…"`` at the start of a value
_ID_HEAD = re.compile(rb'\A\s*\{\s*"id"\s*:\s*("(?:[^"\\]|\\.){1,%d}")' % (MAX_PEEK_ID * 6))


def peek_id(value: bytes | None) -> str | None:
    """The id of an envelope from its value, even a value cut short or broken after the id (the
    encoders write ``id`` first); None when there is none to be read."""
    if not value:
        return None
    try:
        event = orjson.loads(value)
        eid = event.get("id") if isinstance(event, dict) else None
    except orjson.JSONDecodeError:
        m = _ID_HEAD.match(value)
        try:
            eid = orjson.loads(m.group(1)) if m else None
        except orjson.JSONDecodeError:  # e.g. invalid UTF-8 or a bad escape inside the id
            eid = None
    return eid if isinstance(eid, str) and 0 < len(eid) <= MAX_PEEK_ID else None


class EventTemplate:
    """Encode many events that share source, attributes, resource and routes (e.g. one file's lines).

    The shared part is serialized once; each event adds only its id, times, severity and body.
    ``decode(t.encode(...))`` equals ``decode(encode(new_event(...)))``
    with the same fields (tests/kernel/test_envelope.py checks it): an encoding for hot loops, not a
    second format.
    """

    __slots__ = ("_tail",)

    def __init__(
        self, *, source: str, attributes: dict | None = None, resource: dict | None = None, routes: list | None = None
    ):
        routes = list(routes or ())
        shared = orjson.dumps(
            {
                "attributes": attributes or {},
                "resource": resource or {},
                "source": source,
                "routes": routes,
                "schema": SCHEMA_VERSION,
            },
            option=orjson.OPT_NON_STR_KEYS,
        )
        self._tail = b"," + shared[1:]  # the object without its "{": appended after the body

    @property
    def tail(self) -> bytes:
        """The shared part as JSON: ``,"attributes":...,"schema":1}``, what follows an event's body."""
        return self._tail

    #: the fields of one event, then the shared tail
    _FORMAT = (
        b'{"id":%s,"time":%s,"observed_time":%d,"ingest_time":%s,"severity_text":%s,"severity_number":%d,"body":%s%s'
    )

    def encode(
        self,
        id: str,
        time: int | None,
        observed_time: int,
        ingest_time: int | None,
        body: str,
        severity_text: str = "",
        severity_number: int = 0,
    ) -> bytes:
        return self._FORMAT % (
            orjson.dumps(id),
            b"null" if time is None else b"%d" % time,
            observed_time,
            b"null" if ingest_time is None else b"%d" % ingest_time,
            orjson.dumps(severity_text),
            severity_number,
            orjson.dumps(body),
            self._tail,
        )

    def record(self, id: str, time: int | None, observed_time: int, ingest_time: int | None, body: str) -> bytes:
        """``encode(...)`` of an event without severity, with fewer arguments (hot loops)."""
        return self._FORMAT % (
            orjson.dumps(id),
            b"null" if time is None else b"%d" % time,
            observed_time,
            b"null" if ingest_time is None else b"%d" % ingest_time,
            b'""',
            0,
            orjson.dumps(body),
            self._tail,
        )


def header_value(hdrs: list[tuple[str, bytes]] | None, name: str) -> str | None:
    """One header's value as text, or None (a record's headers may be bytes, str or None)."""
    for k, v in hdrs or ():
        if k == name:
            return v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else v
    return None

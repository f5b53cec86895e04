"""The native line path (agents/_lines.c) gives the same records, byte for byte, as the pure-Python one:
property tests on random and hostile input (invalid UTF-8, broken timestamps, long lines, partial
lines, every control character), piece by piece and through the whole agent."""

from __future__ import annotations

import os
import time

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from logtide.agents import agent as agent_module
from logtide.agents import line_path
from logtide.agents.agent import Agent
from logtide.agents.config import AgentConfig
from logtide.agents.parser.cri import CriParser
from logtide.agents.parser.docker import DockerParser
from logtide.agents.parser.plain import PlainParser
from logtide.agents.parser.timestamps import TimestampParser

from logtide import envelope
from logtide.checkpoint import SqliteCheckpoints

try:
    from logtide.agents import _lines as native
except ImportError:  # not built: what LOGTIDE_AGENT_NATIVE=1 (scripts/test.sh) refuses
    native = None

pytestmark = pytest.mark.skipif(
    native is None and os.environ.get(line_path.ENV) != "1", reason="the C extension is not built (pure-Python install)"
)


def test_native_path_is_there_when_asked():
    """LOGTIDE_AGENT_NATIVE=1 (the CI's first run) means the extension was built and is in use."""
    if os.environ.get(line_path.ENV) == "1":
        assert native is not None and line_path.NATIVE is native


# --- input strategies ----------------------------------------------------------------------------

_CONTROL = "".join(chr(c) for c in range(0x20)) + '\x7f"\\\u2028\u2029\ufffd\U0001f600é'
texts = st.text(
    alphabet=st.one_of(st.sampled_from(_CONTROL), st.characters(blacklist_categories=("Cs",))), max_size=300
)
garbage = st.binary(max_size=300)
#: bytes that are not UTF-8: lone continuation bytes, cut sequences, overlongs, surrogates, > U+10FFFF
_BAD_UTF8 = [
    b"\x80",
    b"\xc3",
    b"\xe2\x82",
    b"\xf0\x9f\x98",
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xff",
    b"\xfe",
]
messages = st.one_of(
    texts.map(str.encode),
    garbage,
    st.lists(st.one_of(texts.map(str.encode), st.sampled_from(_BAD_UTF8)), max_size=6).map(b"".join),
)


@st.composite
def timestamps(draw) -> bytes:
    """Valid RFC 3339 timestamps of every shape, and broken ones (one byte changed, cut, extended)."""
    y = draw(st.integers(0, 10000))
    mo, d = draw(st.integers(0, 13)), draw(st.integers(0, 32))
    h, mi, s = draw(st.integers(0, 25)), draw(st.integers(0, 61)), draw(st.integers(0, 61))
    sep = draw(st.sampled_from("Tt "))
    frac = draw(st.one_of(st.just(""), st.text("0123456789", min_size=0, max_size=11).map(lambda f: "." + f)))
    tz = draw(st.sampled_from(["Z", "z", "+02:00", "-11:30", "+99:99", "+0200", "", "ZZ", "+02:0x"]))
    ts = f"{y:04d}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}{frac}{tz}".encode()
    how = draw(st.sampled_from(["as is", "as is", "as is", "byte", "cut", "extend"]))
    if how == "byte" and ts:
        i = draw(st.integers(0, len(ts) - 1))
        ts = ts[:i] + bytes([draw(st.integers(0, 255))]) + ts[i + 1 :]
    elif how == "cut":
        ts = ts[: draw(st.integers(0, len(ts)))]
    elif how == "extend":
        ts += draw(garbage)
    return ts


@st.composite
def cri_lines(draw) -> bytes:
    ts = draw(st.one_of(timestamps(), st.just(b"2024-05-01T12:00:00.123456789Z")))
    stream = draw(st.sampled_from([b"stdout", b"stderr", b"stdin", b"", b"STDOUT"]))
    tag = draw(st.sampled_from([b"F", b"P", b"F:x", b"P:a:b", b"", b"X", b"FF"]))
    message = draw(messages)
    shape = draw(st.sampled_from(["full"] * 6 + ["no message", "no tag", "garbage"]))
    if shape == "no message":
        return b" ".join((ts, stream, tag))
    if shape == "no tag":
        return b" ".join((ts, stream, message))
    if shape == "garbage":
        return draw(garbage).replace(b"\n", b"")
    return b" ".join((ts, stream, tag, message)).replace(b"\n", b"")


# --- piece by piece --------------------------------------------------------------------------------


@given(st.lists(timestamps(), max_size=20))
def test_timestamps_same_as_python(stamps):
    shared = TimestampParser()  # its per-second cache must not change any answer
    for ts in stamps:
        assert native.parse_ts(ts) == TimestampParser().parse(ts) == shared.parse(ts), ts


@given(st.lists(cri_lines(), max_size=30), st.sampled_from([1024, 60, 10**6]))
def test_cri_framing_same_as_python(lines, limit):
    assert native.frame(1, lines, limit) == list(line_path.frame_lines(CriParser().parse, lines, limit))


@given(st.lists(messages.map(lambda m: m.replace(b"\n", b"")), max_size=30), st.sampled_from([1024, 60]))
def test_plain_framing_same_as_python(lines, limit):
    assert native.frame(0, lines, limit) == list(line_path.frame_lines(PlainParser().parse, lines, limit))


@st.composite
def docker_lines(draw) -> bytes:
    """Docker's json-file lines (its own shape, and others: attrs, other key order, spaces), pieces of
    16 KiB, escapes of every kind (surrogate pairs, lone surrogates), broken JSON and timestamps."""
    log = draw(
        st.one_of(
            texts, texts.map(lambda t: t + "\n"), st.just("é" * 6000), st.just("x" * 16384), st.just("y" * 16383 + "\n")
        )
    )
    rec = {
        "log": log,
        "stream": draw(st.sampled_from(["stdout", "stderr", "stdin"])),
        "time": draw(timestamps()).decode("utf-8", "replace"),
    }
    shape = draw(st.sampled_from(["docker"] * 5 + ["attrs", "reordered", "spaced", "escaped", "cut", "byte"]))
    if shape == "attrs":
        rec["attrs"] = {"tag": "x"}
    if shape == "reordered":
        rec = {"time": rec["time"], "stream": rec["stream"], "log": rec["log"]}
    line = orjson.dumps(rec)
    if shape == "spaced":
        line = line.replace(b'":', b'": ')
    elif shape == "escaped":  # what orjson never writes, docker may: \u escapes, pairs, lone halves
        esc = draw(
            st.sampled_from(
                [
                    b"\\u00e9",
                    b"\\ud83d\\ude00",
                    b"\\uD83D\\uDE00",
                    b"\\ud800",
                    b"\\udc00x",
                    b"\\u12",
                    b"\\x",
                    b"\\/",
                    b"\\u0000",
                ]
            )
        )
        line = line.replace(b'{"log":"', b'{"log":"' + esc, 1)
    elif shape == "cut":
        line = line[: draw(st.integers(0, len(line)))]
    elif shape == "byte":
        i = draw(st.integers(0, len(line) - 1))
        line = line[:i] + bytes([draw(st.integers(0, 255))]) + line[i + 1 :]
    return line.replace(b"\n", b"")


@given(st.lists(docker_lines(), max_size=20), st.sampled_from([1 << 18, 1024]))
def test_docker_framing_same_as_python(lines, limit):
    """Docker's own shape framed natively exactly as in Python; any other shape left to Python."""
    python = list(line_path.frame_lines(DockerParser().parse, lines, limit))
    for line, got, want in zip(lines, native.frame(2, lines, limit), python):
        assert got is None or got == want, line
        if want is not None and _docker_shape(line):
            assert got == want, line


def _docker_shape(line: bytes) -> bool:
    rec = orjson.loads(line)
    return (
        list(rec) == ["log", "stream", "time"] and rec["stream"] in ("stdout", "stderr") and orjson.dumps(rec) == line
    )


_times = st.one_of(st.none(), st.integers(-(2**70), 2**70), st.integers(0, 2**63 - 1))


@given(
    texts,
    _times,
    st.integers(0, 2**63 - 1),
    _times,
    st.integers(0, 2**62),
    st.text(max_size=300),
    st.dictionaries(texts, texts, max_size=3),
)
def test_record_same_as_python(body, time_ns, observed, ingest, offset, name, attributes):
    prefix = (name + "\x1f").encode()  # identities of every length: one BLAKE2b block and more
    template = envelope.EventTemplate(source="k8s", attributes=attributes, resource={"k8s.pod.name": name})
    eid, value = native.record(prefix, offset, time_ns, observed, ingest, body, template.tail)
    assert eid == envelope.make_id(name, offset)
    assert value == template.encode(eid, time_ns, observed, ingest, body)


def test_record_of_a_long_line():
    body = ('x\x00"\\\n' * 2_000_001)[: 10 * 1024 * 1024]  # 10 MiB, escapes all along
    template = envelope.EventTemplate(source="file")
    eid, value = native.record(b"a\x1f", 7, None, 1, 2, body, template.tail)
    assert value == template.encode(eid, None, 1, 2, body)
    assert envelope.decode(value)["body"] == body


def test_framing_of_a_long_line():
    line = b"2024-05-01T12:00:00.1Z stdout F " + b"\xc3\xa9\t" * 3_500_000
    for limit in (len(line), len(line) - 1):
        assert native.frame(1, [line], limit) == list(line_path.frame_lines(CriParser().parse, [line], limit))


# --- through the agent -----------------------------------------------------------------------------


class _Capture:
    """A producer that keeps what it is given and acknowledges everything at once."""

    def __init__(self):
        self.records: list[tuple[bytes, bytes]] = []

    def bind(self, topic, on_delivery, wait=True):
        def send(value, key, *headers):
            self.records.append((key, value))

        return send

    def pending(self):
        return 0

    def poll(self, timeout=0.0):
        return 0

    def flush(self, timeout=None):
        return 0

    def close(self):
        pass


def _agent_records(logs, run, native_on: bool) -> list[tuple[bytes, bytes]]:
    """What the agent sends for the files in ``logs`` (read in small chunks, then finished), with
    the clock fixed so that observed/ingest times are the same on both paths; checkpoints in ``run``."""
    run.mkdir()
    config = AgentConfig.model_validate(
        {
            "mode": "files",
            "include": [str(logs / "*.log")],
            "checkpoint_dir": str(run),
            "read": {"chunk_bytes": 4096, "max_line_bytes": 1024},
            "partial": {"max_bytes": 2048},
            "max_event_bytes": 1500,
        }
    )
    producer = _Capture()
    checkpoints = SqliteCheckpoints(str(run / "checkpoints.sqlite"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(agent_module, "_NATIVE", native if native_on else None)
        mp.setattr(line_path, "NATIVE", native if native_on else None)
        mp.setattr(time, "time_ns", lambda: 1_700_000_000_000_000_000)
        agent = Agent(config, producer, checkpoints)
        agent.scan(0.0)
        while agent.read_round(0.0):
            pass
        for tf in list(agent.files.values()):
            agent.flush_file(tf)
            assert tf.failed is None
        agent.shutdown()
    return producer.records


_counter = iter(range(10**9))


_long = st.tuples(
    st.sampled_from([b"2024-05-01T12:00:00.5Z stdout F ", b"2024-05-01T12:00:00.5Z stderr P ", b""]),
    st.integers(300, 1200),
).map(lambda p: p[0] + b"long \t\xc3\xa9\xff" * p[1])  # over max_line_bytes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(
        [
            b"",
            b"2024-05-01T12:00:00.5Z stdout F first\n",
            b'{"log":"first\\n","stream":"stdout","time":"2024-05-01T12:00:00.5Z"}\n',
        ]
    ),
    st.lists(st.one_of(cri_lines(), cri_lines(), messages, _long, docker_lines()), min_size=1, max_size=40),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
)
def test_agent_sends_the_same_records_on_both_paths(tmp_path, first, lines, newline, finished):
    """CRI, docker and plain files (the format picked from the first line): pieces, multi-line
    records, garbage, invalid UTF-8, lines over max_line_bytes, a last line without its newline."""
    data = first + newline.encode().join(line.replace(b"\n", b"") for line in lines) + (b"\n" if finished else b"")
    run = tmp_path / f"run{next(_counter)}"
    logs = run / "logs"
    logs.mkdir(parents=True)
    log = logs / "app.log"  # one file for both paths: same identity, same ids
    log.write_bytes(data)
    os.utime(log, (1, 1))  # old enough to fingerprint at once, however short
    python = _agent_records(logs, run / "py", False)
    assert _agent_records(logs, run / "c", True) == python
    assert python or not data.strip()  # (not vacuous: lines were sent)

"""Faults in the line pipeline: a crash inside parsing (the agent as a process, one file's parser
raising), an exception that ends the loop mid-chunk, and random bytes through the parsers and the
agent's whole line path (hypothesis): never an exception, never a lost line, no checkpoint past a
record that was not acknowledged."""

from __future__ import annotations

import os
import time

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings, strategies as st

from logtide.agents.agent import Agent
from logtide.agents.config import AgentConfig
from logtide.agents.parser.cri import CriParser
from logtide.agents.parser.docker import DockerParser
from logtide.agents.parser.picker import detect
from logtide.agents.parser.plain import PlainParser
from logtide.agents.tracked_file import TrackedFile
from logtide.agents.file_identity import FileIdentity
from logtide.checkpoint import SqliteCheckpoints
from tests.agents.helpers import RunningAgent, TopicReader, cri, start_agent_process, stop_agent_process

#: `logtide agent` with a parser bug injected: CRI lines containing BOOM raise inside parse(); on the
#: native line path (which frames CRI lines in C) they raise at the next per-line step, the merger.
CRASHING_AGENT = """
import sys
from logtide.agents import multiline
from logtide.agents.parser import cri
real = cri.CriParser.parse
def parse(self, line):
    if b"BOOM" in line:
        raise RuntimeError("injected parser crash")
    return real(self, line)
cri.CriParser.parse = parse
real_add = multiline.MultilineMerger.add
def add(self, start, end, time_ns, stream, text, *rest):
    if "BOOM" in text:
        raise RuntimeError("injected parser crash")
    return real_add(self, start, end, time_ns, stream, text, *rest)
multiline.MultilineMerger.add = add
from logtide.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _config(pods, topic: str, ck) -> str:
    return yaml.safe_dump(
        {
            "mode": "kubernetes",
            "pods_root": str(pods),
            "containers_root": f"{pods}/none",
            "topic": topic,
            "checkpoint_dir": str(ck),
            "checkpoint_interval_seconds": 0.2,
            "http": {"port": 0},
            "kubernetes": {"enabled": False},
            "multiline": {"enabled": False},
            "read": {"scan_interval_seconds": 0.1, "idle_poll_seconds": 0.02},
        }
    )


def _stop(proc) -> bytes:
    returncode, err = stop_agent_process(proc)
    assert returncode == 0, err.decode()[-3000:]
    return err


@pytest.mark.timeout(120)
def test_crash_inside_parsing_stops_that_file_only_and_a_restart_loses_nothing(tmp_path, broker, new_topic):
    topic = new_topic(3)
    pods = tmp_path / "pods"
    config = tmp_path / "agent.yaml"
    config.write_text(_config(pods, topic, tmp_path / "ck"))
    bad = pods / "ns_bad-0_uid-bad" / "app" / "0.log"
    good = pods / "ns_good-0_uid-good" / "app" / "0.log"
    for path in (bad, good):
        path.parent.mkdir(parents=True)
    bad_lines = [f"bad {i:04d}" + (" BOOM" if i == 150 else "") for i in range(300)]
    bad.write_bytes(b"".join(cri(line) for line in bad_lines))
    poison_offset = sum(len(cri(line)) for line in bad_lines[:150])
    good_lines = [f"good {i:04d}" for i in range(600)]
    good.write_bytes(b"".join(cri(line) for line in good_lines[:300]))
    reader = TopicReader(broker, topic, partitions=3)

    agent = start_agent_process(config, broker, ("-c", CRASHING_AGENT))
    try:
        reader.read_until(
            lambda evs: {"good 0299", "bad 0149"} <= {e["body"] for e in evs} or agent.poll() is not None, timeout=30
        )
        assert agent.poll() is None, "the agent survived the parser crash"
        with open(good, "ab") as f:  # the other file is still read after the crash
            f.write(b"".join(cri(line) for line in good_lines[300:]))
        reader.read_until(lambda evs: "good 0599" in {e["body"] for e in evs}, timeout=30)
        time.sleep(0.6)  # a few checkpoint intervals
    finally:
        err = _stop(agent)
    assert b"injected parser crash" in err, "the failure is logged"
    first = {e["body"] for e in reader.events}
    assert not any(b.startswith("bad ") and int(b[4:8]) >= 150 for b in first), "nothing after the crash was sent"
    store = SqliteCheckpoints(tmp_path / "ck" / "checkpoints.sqlite")
    offsets = {v["path"]: v["offset"] for _, v in store.items()}
    store.close()
    assert offsets[str(bad)] <= poison_offset, "the failed file's checkpoint is not past what was sent"
    assert offsets[str(good)] == good.stat().st_size

    agent = start_agent_process(config, broker)  # the agent without the injected bug
    try:
        reader.read_until(lambda evs: "bad 0299" in {e["body"] for e in evs}, timeout=30)
        reader.settle(0.5)
    finally:
        _stop(agent)
    bodies = [e["body"] for e in reader.events]
    assert set(bodies) == set(bad_lines) | set(good_lines), "every line of both files, none lost"
    assert all(bodies.count(g) == 1 for g in good_lines), "the healthy file was not read twice"
    reader.close()


@pytest.mark.timeout(60)
def test_an_error_that_ends_the_loop_mid_chunk_writes_no_checkpoint_past_it(tmp_path, fast_kafka, new_topic):
    """KeyboardInterrupt (not an Exception: no per-file guard catches it) in the middle of a chunk: the
    lines after it were read but never sent; shutdown must keep the checkpoint of the last drain."""
    topic = new_topic(1)
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = [f"line {i:04d}" for i in range(200)]
    (logs / "a.log").write_text("".join(line + "\n" for line in lines))
    agent = RunningAgent(
        fast_kafka, tmp_path / "ck", include=[str(logs / "*.log")], topic=topic, multiline={"enabled": False}
    )
    real = Agent.emit
    sent = []

    def emit(self, tf, rec, observed, problem=None):
        if rec.text == "line 0100":
            raise KeyboardInterrupt
        sent.append(rec.text)
        return real(self, tf, rec, observed, problem)

    agent.agent.emit = emit.__get__(agent.agent)
    with pytest.raises(KeyboardInterrupt):
        with agent:
            deadline = time.monotonic() + 20
            while agent.thread.is_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
    assert sent == lines[:100]
    store = SqliteCheckpoints(tmp_path / "ck" / "checkpoints.sqlite")
    ((_, state),) = store.items()
    store.close()
    assert state["offset"] <= 100 * len("line 0000\n")
    reader = TopicReader(fast_kafka.bootstrap, topic)
    with RunningAgent(
        fast_kafka, tmp_path / "ck", include=[str(logs / "*.log")], topic=topic, multiline={"enabled": False}
    ):
        reader.read_until(lambda evs: "line 0199" in {e["body"] for e in evs})
    reader.settle(0.5)
    assert set(reader.bodies()) == set(lines)
    reader.close()


# --- random bytes --------------------------------------------------------------------------------

_DOCKER_PIECE = b'{"log":' + orjson.dumps("x" * 16384) + b',"stream":"stdout","time":"2024-05-01T12:00:00Z"}'
_lines = st.lists(
    st.one_of(
        st.binary(max_size=80),
        st.sampled_from(
            [
                b"2024-05-01T12:00:00.1Z stdout P piece ",
                b"2024-05-01T12:00:00.1Z stderr F end",
                b"2024-05-01T12:00:00Z stdout F:x tagged",
                b'{"log":"a\\n","stream":"stdout","time":"x"}',
                _DOCKER_PIECE,
                b'{"log":"\\ud800","stream":"stdout"}',
                b"Traceback (most recent call last):",
                b"\tat a.B(C.java:1)",
                b"panic: x",
                b"",
                b"\r",
                b"\xff\xfe",
                b'{"log":5}',
                b"[]",
                b'"s"',
                b"null",
            ]
        ),
        st.binary(min_size=1, max_size=12).map(lambda b: b"2024-05-01T12:00:00.1Z stdout P " + b),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(
    line=st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=60).map(lambda b: b"2024-05-01T12:00:0" + b),  # near-CRI
        st.binary(max_size=60).map(lambda b: b'{"log":"x\\n","stream":' + b),
    )
)  # near-docker
def test_parsers_take_any_bytes(line):
    assert detect(line, "/var/log/pods/ns_p_u/c/0.log") in ("cri", "docker", "plain")
    for parser in (CriParser(), DockerParser(), PlainParser()):
        frag = parser.parse(line)
        assert frag.stream in ("stdout", "stderr")
        if frag.problem == "bad_format":
            assert frag.message == line


class _Sink:
    """The agent's sender, recording what it is given."""

    def __init__(self):
        self.values = []
        self.accepted = 0

    def send(self, value, key):
        self.values.append(value)
        self.accepted += 1


@pytest.fixture(scope="module")
def line_agent(tmp_path_factory):
    ck = tmp_path_factory.mktemp("ck")
    config = AgentConfig.model_validate(
        {
            "mode": "files",
            "checkpoint_dir": str(ck),
            "include": ["/nonexistent"],
            "kafka": {"bootstrap": "127.0.0.1:1"},
            "read": {"max_line_bytes": 65536},
            "multiline": {"max_lines": 5},
        }
    )
    agent = Agent.__new__(Agent)  # the line path only: no producer, no checkpoint store
    agent.config, agent.source, agent.metadata = config, "file", None
    agent._rate_limit, agent._max_event_bytes = None, config.max_event_bytes
    agent.node = "node"
    return agent


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=_lines, fmt=st.sampled_from(["auto", "cri", "docker", "plain"]))
@example(lines=[_DOCKER_PIECE, b"hello"], fmt="auto")  # issue 21 point 1
@example(lines=[b'{"log":"bb","stream":"stdout","time":"2024-05-01T12:00:00Z"}', b"hello"], fmt="auto")
@example(lines=[b"2024-05-01T12:00:00.1Z stdout P a", b"garbage", b"2024-05-01T12:00:00.1Z stdout F b"], fmt="auto")
def test_random_lines_through_the_agents_line_path_none_lost(line_agent, tmp_path, lines, fmt):
    """Every line fed in is covered by exactly one record sent (by byte range), whatever the bytes."""
    from logtide import envelope

    agent = line_agent
    agent.sender = _Sink()
    data = b"".join(line.replace(b"\n", b" ") + b"\n" for line in lines)
    path = tmp_path / "f.log"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        tf = TrackedFile(agent.config, str(path), fd, FileIdentity(1, 1, "fp", 8, 0), 0, None, fmt=fmt)
        agent._enrich(tf)
        starts: dict[int, int] = {}
        real_emit = Agent.emit

        def emit(tf_, rec, observed, problem=None):
            assert rec.start not in starts, "a line sent twice"
            starts[rec.start] = rec.end
            real_emit(agent, tf_, rec, observed, problem)

        agent.emit = emit
        head, start, got, _ = tf.tailer.read(1 << 20)
        if head is not None or got:
            agent.process(tf, head, start, got)
        agent.flush_file(tf)
        del agent.emit
        assert tf.failed is None
        assert not tf.buffered()
        # the records' byte ranges cover the file without a gap (no line lost); one record per start
        # (none sent twice). Ranges may overlap: a stream's split line spans the other stream's lines.
        covered = 0
        for s in sorted(starts):
            assert s <= covered, ("a gap: lost bytes", covered, s)
            covered = max(covered, starts[s])
        assert covered == len(data)
        for value in agent.sender.values:
            envelope.decode(value)
    finally:
        os.close(fd)


_trace_texts = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            "\tat a.B(C.java:1)",
            "... 3 more",
            "Suppressed: x",
            "Caused by: y",
            "java.io.IOException: z",
            "E",
            "Traceback (most recent call last):",
            "  + Exception Group Traceback (most recent call last):",
            '  File "a"',
            "goroutine 1 [running]:",
            "[signal SIGSEGV",
            "\tmain.go:1 +0x1",
            "main.main()",
            "created by x",
            "exit status 2",
            "...additional frames elided...",
            "panic: x",
            "fatal error: y",
            "\tfrom a.rb:1:in `m'",
            "\t ... 3 levels...",
            "KeyError: 'x'",
            "0main()",
            "{x}",
        ]
    ),
)


@settings(max_examples=500, deadline=None)
@given(text=st.one_of(_trace_texts, st.builds(lambda a, b: a + b, _trace_texts, _trace_texts)))
def test_first_character_guards_never_change_which_rule_matches(text):
    """The `first` field of the built-in rules (a fast rejection) agrees with the patterns themselves."""
    from logtide.agents import multiline

    rules = [r for lang in multiline.LANGUAGES for r in multiline.RULES[lang]]
    for state in {""} | {r[2] for r in rules}:
        picked = (
            [r for r in rules if r[0] is not None and state in r[0] and not r[3]]
            + [r for r in rules if r[0] is None and not r[3]]
            + [r for r in rules if r[3]]
        )
        guarded = multiline._table(picked)
        plain = multiline._table([r[:4] + (None,) for r in picked])
        g, p = guarded.regex.match(text), plain.regex.match(text)
        assert (g and g.lastindex) == (p and p.lastindex), (state, text)

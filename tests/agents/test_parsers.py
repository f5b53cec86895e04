"""Unit tests of the line parsers, the format picker, the mergers, path parsing and the tailer."""

from __future__ import annotations

import calendar
import os

import orjson

from logtide.agents.multiline import MultilineMerger
from logtide.agents.parser.cri import CriParser
from logtide.agents.parser.docker import DockerParser
from logtide.agents.parser.picker import detect
from logtide.agents.parser.timestamps import TimestampParser
from logtide.agents.partial_merger import PartialMerger
from logtide.agents.path_info import pod_ref
from logtide.agents.tailer import RawLine, Tailer


def test_rfc3339_nanoseconds_offsets_and_garbage():
    p = TimestampParser()
    base = calendar.timegm((2024, 5, 1, 12, 0, 3, 0, 0, 0)) * 10**9
    assert p.parse(b"2024-05-01T12:00:03.123456789Z") == base + 123456789
    assert p.parse(b"2024-05-01T12:00:03Z") == base
    assert p.parse(b"2024-05-01T12:00:03.5Z") == base + 500_000_000
    assert p.parse(b"2024-05-01T14:00:03.000000001+02:00") == base + 1
    for bad in (
        b"2024-13-01T12:00:03Z",
        b"yesterday",
        b"2024-05-01T12:00:03.Z",
        b"2024-05-01T12:00:03.1234567891Z",
        b"2024-05-01T12:00:03+0200",
        b"2024-05-01T12:00:03.12a4Z",
        b"2024-05-01T12:00:03. 1Z",
        b"",
    ):
        assert p.parse(bad) is None, bad


def test_cri_lines_partial_tags_and_bad_input():
    p = CriParser()
    f = p.parse(b"2024-05-01T12:00:03.1Z stderr P first half")
    assert (f.stream, f.partial, f.message, f.problem) == ("stderr", True, b"first half", None)
    f = p.parse(b"2024-05-01T12:00:03.1Z stdout F ")
    assert (f.partial, f.message) == (False, b"")
    f = p.parse(b"2024-05-01T12:00:03.1Z stdout F:tag msg with  spaces ")
    assert f.message == b"msg with  spaces "
    f = p.parse(b"2024-99-01T12:00:03.1Z stdout F broken time")
    assert (f.time, f.message, f.problem) == (None, b"broken time", "bad_timestamp")
    f = p.parse(b"not a cri line at all")
    assert (f.message, f.problem) == (b"not a cri line at all", "bad_format")


def test_docker_json_lines():
    p = DockerParser()
    f = p.parse(orjson.dumps({"log": "hello\n", "stream": "stderr", "time": "2024-05-01T12:00:03.000000001Z"}))
    assert (f.stream, f.partial, f.message, f.problem) == ("stderr", False, "hello", None)
    # issue 21: only docker's 16 KiB pieces are partial; a short log without newline is a whole line
    assert not p.parse(orjson.dumps({"log": "no newline yet", "stream": "stdout", "time": "x"})).partial
    f = p.parse(orjson.dumps({"log": "é" * 8192, "stream": "stdout", "time": "2024-05-01T12:00:03Z"}))
    assert f.partial and f.message == "é" * 8192  # 16 KiB of UTF-8 in 8192 characters
    assert not p.parse(orjson.dumps({"log": "x" * 16383, "stream": "stdout", "time": "x"})).partial
    assert p.parse(b'{"log": 5}').problem == "bad_format"
    assert p.parse(b"{broken").problem == "bad_format"


def test_format_picker():
    assert detect(b'{"log":"x\\n","stream":"stdout","time":"2024-05-01T12:00:03Z"}') == "docker"
    assert detect(b"2024-05-01T12:00:03.1Z stdout F hi") == "cri"
    assert detect(b"Dec 10 06:55:46 LabSZ sshd[24200]: reverse mapping") == "plain"
    assert detect(b'{"level": "info"}') == "plain"
    # issue 21: application JSON with a log key is not docker's shape (log, stream, time; attrs)
    assert detect(b'{"ts":1,"level":"info","log":"user 1 logged in"}') == "plain"
    assert detect(b'{"log":"x\\n","stream":"stdout","time":"2024-05-01T12:00:03Z","level":"info"}') == "plain"
    assert detect(b'{"log":"x\\n","stream":"stdout","attrs":{"a":"b"},"time":"2024-05-01T12:00:03Z"}') == "docker"
    # docker's own layout says docker, whatever the first line
    cid = "ab" * 32
    assert detect(b"garbage", f"/var/lib/docker/containers/{cid}/{cid}-json.log") == "docker"


def test_partial_merger_joins_caps_and_times_out():
    m = PartialMerger(max_bytes=10, timeout=5.0)
    assert m.add(0, 10, 1, "stdout", True, b"abc") is None
    assert m.add(10, 20, 2, "stderr", False, b"other").message == b"other"  # streams are independent
    assert m.hold() == 0
    line = m.add(20, 30, 3, "stdout", False, b"def")
    assert (line.start, line.end, line.time, line.message, line.pieces) == (0, 30, 1, b"abcdef", 2)
    assert m.hold() is None
    m.add(30, 40, 4, "stdout", True, b"0123456789")
    line = m.add(40, 50, 5, "stdout", False, b"overflow")
    assert line.message == b"0123456789" and line.truncated
    m.add(50, 60, 6, "stdout", True, b"never finished")
    assert m.expired(now=0.0) == []
    (line,) = m.expired(everything=True)
    assert line.unfinished and line.message == b"never fini"


def _merge(merger: MultilineMerger, texts: list[str]) -> list[str]:
    out = []
    for i, t in enumerate(texts):
        rec = merger.add(i * 100, i * 100 + 99, None, "stdout", t)
        if rec is not None:
            out.append(rec.text)
    out += [r.text for r in merger.expired(everything=True)]
    return out


def test_multiline_builtin_java_python_go():
    java = [
        "ERROR request failed",
        "java.lang.IllegalStateException: boom",
        "\tat a.B.c(B.java:1)",
        "\t... 3 more",
        "Caused by: java.io.IOException: x",
        "\tat d.E.f(E.java:2)",
        "INFO next",
    ]
    python = [
        "ERROR worker failed",
        "Traceback (most recent call last):",
        '  File "/app/w.py", line 3, in h',
        "    x = y()",
        "ValueError: bad",
        "INFO next",
    ]
    go = [
        "panic: runtime error: index out of range",
        "",
        "goroutine 1 [running]:",
        "main.main()",
        "\t/app/main.go:12 +0x1d",
        "exit status 2",
        "INFO next",
    ]
    m = MultilineMerger(["java", "python", "go"])
    assert _merge(m, java) == ["\n".join(java[:-1]), "INFO next"]
    assert _merge(m, python) == ["\n".join(python[:-1]), "INFO next"]
    assert _merge(m, go) == ["\n".join(go[:-1]), "INFO next"]
    assert _merge(m, ["a", "b", "  indented but not a trace"]) == ["a", "b", "  indented but not a trace"]
    assert m.merged == 3


def test_multiline_start_pattern_and_limits():
    m = MultilineMerger([], start_pattern=r"\d{4}-", max_lines=3)
    out = _merge(m, ["2024- one", "cont", "2024- two", "c1", "c2", "c3"])
    assert out == ["2024- one\ncont", "2024- two\nc1\nc2", "c3"]
    off = MultilineMerger(["java"], enabled=False)
    assert _merge(off, ["x", "\tat a.b(C.java:1)"]) == ["x", "\tat a.b(C.java:1)"]


def test_pod_paths():
    ref = pod_ref("/var/log/pods/shop_web-7d9f_0b1c-uid/nginx/3.log")
    assert (ref.namespace, ref.pod, ref.uid, ref.container, ref.restart) == ("shop", "web-7d9f", "0b1c-uid", "nginx", 3)
    cid = "a" * 64
    ref = pod_ref(f"/var/log/containers/web-7d9f_shop_nginx-{cid}.log")
    assert (ref.namespace, ref.pod, ref.container, ref.container_id) == ("shop", "web-7d9f", "nginx", cid)
    ref = pod_ref("/var/log/pods/shop_web-7d9f_0b1c-uid/nginx/3.log.20240501-120000")  # rotated by the kubelet
    assert (ref.namespace, ref.pod, ref.container, ref.restart) == ("shop", "web-7d9f", "nginx", 3)
    assert pod_ref("/var/log/syslog") is None


def test_tailer_offsets_long_lines_and_tail(tmp_path):
    path = tmp_path / "t.log"
    path.write_bytes(b"one\ntwo\n" + b"x" * 5000 + b"\nthr")
    fd = os.open(path, os.O_RDONLY)
    try:
        t = Tailer(fd, 0, max_line_bytes=1024)
        lines = []
        while True:
            head, pos, got, n = t.read(1000)  # small chunks: lines span reads
            if head is not None:
                lines.append(head)
            for data in got:
                cut = len(data) > 1024
                lines.append(RawLine(pos, pos + len(data) + 1, data[:1024] if cut else data, cut))
                pos += len(data) + 1
            if not n:
                break
        assert [(x.start, x.end, x.data[:5], x.truncated) for x in lines] == [
            (0, 4, b"one", False),
            (4, 8, b"two", False),
            (8, 5009, b"xxxxx", True),
        ]
        assert len(lines[2].data) == 1024
        assert t.line_start == 5009
        tail = t.pending_tail()
        assert (tail.start, tail.end, tail.data) == (5009, 5012, b"thr")
        os.truncate(path, 3)
        assert t.truncated()
    finally:
        os.close(fd)

"""Docker json-file lines: ``{"log": "message\\n", "stream": "stdout", "time": "<RFC3339Nano>"}``
(and ``"attrs"`` with ``--log-opt labels/env``).

Docker cuts output lines into pieces of 16 KiB (its copier's buffer): every piece but the last lacks
the trailing newline in ``log``. A ``log`` without newline that is shorter than that is not a piece:
it is the container's last output without a newline (``printf``, a crash), complete as it is.
"""

from __future__ import annotations

import orjson

from logtide.agents.parser import Fragment
from logtide.agents.parser.timestamps import TimestampParser

#: moby daemon/logger/copier.go: lines are cut into messages of at most this many bytes
PIECE_BYTES = 16 * 1024
#: the keys docker's json-file driver writes (attrs only with --log-opt labels/env/tag)
_KEYS = {"log", "stream", "time", "attrs"}


def _piece(log: str) -> bool:
    """A piece docker split from a longer line (more follows): no newline and the full 16 KiB.
    (Invalid UTF-8 at a cut becomes U+FFFD, 3 bytes per byte: a piece never encodes shorter.)"""
    if log.endswith("\n") or len(log) * 4 < PIECE_BYTES:
        return False
    return len(log) >= PIECE_BYTES or len(log.encode("utf-8", "surrogatepass")) >= PIECE_BYTES


class DockerParser:
    name = "docker"

    def __init__(self) -> None:
        self._ts = TimestampParser()

    def parse(self, line: bytes) -> Fragment:
        try:
            rec = orjson.loads(line)
            log = rec["log"]
            if not isinstance(log, str):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError, IndexError):
            return Fragment(None, "stdout", False, line, "bad_format")
        stream = rec.get("stream")
        if stream not in ("stdout", "stderr"):
            stream = "stdout"
        ts = rec.get("time")
        time = self._ts.parse(ts.encode("utf-8", "surrogatepass")) if isinstance(ts, str) else None
        if log.endswith("\n"):
            return Fragment(time, stream, False, log[:-1], None if time is not None else "bad_timestamp")
        return Fragment(time, stream, _piece(log), log, None if time is not None else "bad_timestamp")


def looks_like_docker(line: bytes) -> bool:
    """The exact shape docker's json-file driver writes: ``log`` (string), ``stream`` (stdout/stderr) and
    ``time`` (RFC 3339), nothing else but ``attrs``. Application JSON with a ``log`` key is not it."""
    if not line.startswith(b"{"):
        return False
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(rec, dict)
        and isinstance(rec.get("log"), str)
        and rec.get("stream") in ("stdout", "stderr")
        and isinstance(rec.get("time"), str)
        and rec.keys() <= _KEYS
        and TimestampParser().parse(rec["time"].encode("utf-8", "surrogatepass")) is not None
    )

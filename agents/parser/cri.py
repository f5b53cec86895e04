"""CRI log lines (containerd, CRI-O): ``<RFC3339Nano time> <stdout|stderr> <P|F>[:tags] <message>``.

A ``P`` tag means the runtime split a long line (16 KiB by default) and the next piece of the same
stream follows; ``F`` ends the line. See kubernetes/cri-api (CRI logging format). A line without the
tag field (what runtimes wrote before kubelet 1.10) is a full line.
"""

from __future__ import annotations

from logtide.agents.parser import Fragment
from logtide.agents.parser.timestamps import TimestampParser

_STREAMS = {b"stdout": "stdout", b"stderr": "stderr"}
_new_fragment = tuple.__new__


def _tag(field: bytes) -> bool:
    return field[:1] in (b"P", b"F") and (len(field) == 1 or field[1:2] == b":")


class CriParser:
    name = "cri"

    def __init__(self) -> None:
        self._ts = TimestampParser()

    def parse(self, line: bytes) -> Fragment:
        parts = line.split(b" ", 3)  # "<time> <stream> F " (empty message) splits into 4 too
        if len(parts) == 4:
            ts, stream, tag, message = parts
            stream = _STREAMS.get(stream)
            if stream is not None and len(tag) == 1 and tag in b"PF":
                time = self._ts.parse(ts)
                # tuple.__new__: a Fragment without the NamedTuple's Python-level __new__ (once per line)
                return _new_fragment(
                    Fragment, (time, stream, tag == b"P", message, None if time is not None else "bad_timestamp")
                )
        return self._other(line, parts)

    def _other(self, line: bytes, parts: list[bytes]) -> Fragment:
        """Tags with options (``F:x``), no tag field, no message; else not CRI at all."""
        if len(parts) >= 3 and parts[1] in _STREAMS:
            time = self._ts.parse(parts[0])
            if time is not None:
                if _tag(parts[2]):
                    message = parts[3] if len(parts) == 4 else b""
                    partial = parts[2][:1] == b"P"
                else:
                    message, partial = b" ".join(parts[2:]), False
                return Fragment(time, _STREAMS[parts[1]], partial, message, None)
        if len(parts) == 4 and parts[1] in _STREAMS and _tag(parts[2]):
            return Fragment(None, _STREAMS[parts[1]], parts[2][:1] == b"P", parts[3], "bad_timestamp")
        # Not CRI: the whole line is the message (the agent sends it alone, flagged).
        return Fragment(None, "stdout", False, line, "bad_format")


def looks_like_cri(line: bytes) -> bool:
    parts = line.split(b" ", 3)
    return len(parts) >= 3 and parts[1] in _STREAMS and _tag(parts[2]) and TimestampParser().parse(parts[0]) is not None

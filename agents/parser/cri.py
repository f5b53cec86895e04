"""CRI log lines (containerd, CRI-O): ``<RFC3339Nano time> <stdout|stderr> <P|F>[:tags] <message>``.

A ``P`` tag means the runtime split a long line (16 KiB by default) and the next piece of the same
stream follows; ``F`` ends the line. See kubernetes/cri-api (CRI logging format).
"""

from __future__ import annotations

from logtide.agents.parser import Fragment
from logtide.agents.parser.timestamps import TimestampParser

_STREAMS = {b"stdout": "stdout", b"stderr": "stderr"}
_new_fragment = tuple.__new__


class CriParser:
    name = "cri"

    def __init__(self) -> None:
        self._ts = TimestampParser()

    def parse(self, line: bytes) -> Fragment:
        parts = line.split(b" ", 3)   # "<time> <stream> F " (empty message) splits into 4 too
        if len(parts) == 4:
            ts, stream, tag, message = parts
            stream = _STREAMS.get(stream)
            if stream is not None and tag[:1] in (b"P", b"F"):
                time = self._ts.parse(ts)
                # tuple.__new__: a Fragment without the NamedTuple's Python-level __new__ (once per line)
                return _new_fragment(Fragment, (time, stream, tag[:1] == b"P", message,
                                                None if time is not None else "bad_timestamp"))
        # Not CRI at all: keep the whole line as the message rather than lose it.
        return Fragment(None, "stdout", False, line, "bad_format")


def looks_like_cri(line: bytes) -> bool:
    parts = line.split(b" ", 3)
    return len(parts) >= 3 and parts[1] in _STREAMS and parts[2][:1] in (b"P", b"F") \
        and TimestampParser().parse(parts[0]) is not None

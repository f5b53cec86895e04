"""Reassemble lines the container runtime split (CRI ``P`` pieces, docker pieces without newline).

Pieces of one stream (stdout/stderr of one file) are joined until the final piece arrives. A record
over ``max_bytes`` is cut (flagged truncated; the rest of its pieces are dropped); a record whose
final piece never comes is sent as it is after ``timeout`` seconds (or when its file is finished).
"""

from __future__ import annotations

import time
from typing import NamedTuple


class Line(NamedTuple):
    """One complete line of a stream, with the byte range [start, end) it came from."""

    start: int
    end: int
    time: int | None
    stream: str
    message: bytes | str
    pieces: int  # >1 when merged from partial pieces
    truncated: bool
    unfinished: bool  # the final piece never came (timeout or end of file)


class _Pending:
    __slots__ = ("start", "end", "time", "pieces", "size", "count", "truncated", "touched")

    def __init__(self, start: int, time_ns: int | None):
        self.start = start
        self.end = start
        self.time = time_ns
        self.pieces: list = []
        self.size = 0
        self.count = 0
        self.truncated = False
        self.touched = time.monotonic()


class PartialMerger:
    def __init__(self, max_bytes: int, timeout: float):
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.pending: dict[str, _Pending] = {}  # stream → its line in progress

    def add(
        self,
        start: int,
        end: int,
        time_ns: int | None,
        stream: str,
        partial: bool,
        message: bytes | str,
        truncated: bool = False,
    ) -> Line | None:
        """Feed one piece; returns the complete line when this piece ends one."""
        pend = self.pending.get(stream)
        if pend is None:
            if not partial:
                return Line(start, end, time_ns, stream, message, 1, truncated, False)
            pend = self.pending[stream] = _Pending(start, time_ns)
        pend.truncated |= truncated
        if not pend.truncated:
            room = self.max_bytes - pend.size
            if len(message) > room:
                message = message[:room]
                pend.truncated = True
            pend.pieces.append(message)
            pend.size += len(message)
        pend.count += 1
        pend.end = end
        pend.touched = time.monotonic()
        if partial:
            return None
        del self.pending[stream]
        return self._line(pend, stream, unfinished=False)

    @staticmethod
    def _line(pend: _Pending, stream: str, unfinished: bool) -> Line:
        first = pend.pieces[0] if pend.pieces else b""
        joined = (b"" if isinstance(first, bytes) else "").join(pend.pieces)
        return Line(pend.start, pend.end, pend.time, stream, joined, pend.count, pend.truncated, unfinished)

    def expired(self, now: float | None = None, everything: bool = False) -> list[Line]:
        """Lines whose final piece did not come within the timeout (all of them when ``everything``)."""
        if not self.pending:
            return []
        now = time.monotonic() if now is None else now
        out = []
        for stream, pend in list(self.pending.items()):
            if everything or now - pend.touched >= self.timeout:
                del self.pending[stream]
                out.append(self._line(pend, stream, unfinished=True))
        out.sort(key=lambda line: line.start)
        return out

    def hold(self) -> int | None:
        """The first byte offset still buffered here (the checkpoint may not pass it)."""
        return min((p.start for p in self.pending.values()), default=None)

"""Read complete lines from one open file, remembering byte offsets; notice truncation.

The file is read with ``pread`` at our own position, so a copytruncate (the file shrinks under us)
is seen as ``size < position``. A line longer than ``max_line_bytes`` keeps only its head (memory
stays bounded however long the line) and is flagged truncated when its newline finally comes.
"""

from __future__ import annotations

import os
from typing import NamedTuple


class RawLine(NamedTuple):
    start: int
    end: int          # offset just past the newline
    data: bytes       # without the newline
    truncated: bool


class Tailer:
    __slots__ = ("fd", "position", "line_start", "_buf", "_overlong", "max_line_bytes")

    def __init__(self, fd: int, offset: int, max_line_bytes: int):
        self.fd = fd
        self.position = offset      # next byte to read
        self.line_start = offset    # start of the line being assembled (everything before is consumed)
        self._buf = b""             # bytes of that line read so far
        self._overlong = False      # the line exceeded max_line_bytes: _buf holds only its head
        self.max_line_bytes = max_line_bytes

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def truncated(self) -> bool:
        """Did the file shrink below what we have read (copytruncate)?"""
        return self.size() < self.position

    def reset(self, offset: int = 0) -> None:
        self.position = self.line_start = offset
        self._buf = b""
        self._overlong = False

    def read(self, max_bytes: int) -> tuple[list[RawLine], int]:
        """Read up to ``max_bytes``; return the complete lines and how many bytes were read."""
        data = os.pread(self.fd, max_bytes, self.position)
        if not data:
            return [], 0
        n = len(data)
        self.position += n
        lines: list[RawLine] = []
        pos = self.line_start
        if self._buf or self._overlong:
            nl = data.find(b"\n")
            if nl < 0:
                self._extend(data)
                return lines, n
            self._extend(data[:nl])
            end = self.position - n + nl + 1
            lines.append(RawLine(pos, end, self._buf, self._overlong))
            pos = end
            self._buf = b""
            self._overlong = False
            data = data[nl + 1:]
        parts = data.split(b"\n")
        tail = parts.pop()
        limit = self.max_line_bytes
        for part in parts:
            end = pos + len(part) + 1
            if len(part) > limit:
                lines.append(RawLine(pos, end, part[:limit], True))
            else:
                lines.append(RawLine(pos, end, part, False))
            pos = end
        self.line_start = pos
        self._extend(tail)
        return lines, n

    def _extend(self, data: bytes) -> None:
        if self._overlong:
            return
        self._buf += data
        if len(self._buf) > self.max_line_bytes:
            self._buf = self._buf[:self.max_line_bytes]
            self._overlong = True

    def pending_tail(self) -> RawLine | None:
        """The last line when it has no newline (sent only when the file is finished)."""
        if not self._buf and not self._overlong:
            return None
        line = RawLine(self.line_start, self.position, self._buf, self._overlong)
        self.line_start = self.position
        self._buf = b""
        self._overlong = False
        return line

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
    end: int  # offset just past the newline
    data: bytes  # without the newline
    truncated: bool


class Tailer:
    __slots__ = ("fd", "position", "line_start", "_buf", "_overlong", "max_line_bytes")

    def __init__(self, fd: int, offset: int, max_line_bytes: int):
        self.fd = fd
        self.position = offset  # next byte to read
        self.line_start = offset  # start of the line being assembled (everything before is consumed)
        self._buf = b""  # bytes of that line read so far
        self._overlong = False  # the line exceeded max_line_bytes: _buf holds only its head
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

    def read(self, max_bytes: int) -> tuple[RawLine | None, int, list[bytes], int]:
        """Read up to ``max_bytes``; return ``(head, start, lines, n)``.

        ``head`` is the line completed from bytes of earlier reads (None if there was none); ``lines``
        are the complete lines after it, as read (without newlines), the first starting at byte
        ``start``: line i+1 starts len(line i) + 1 bytes after line i. Keeping them bare bytes (no
        object per line) matters at 100k lines/s; a caller cuts lines over ``max_line_bytes`` (they
        are within one read, so memory stays bounded). ``n`` is how many bytes were read.
        """
        data = os.pread(self.fd, max_bytes, self.position)
        if not data:
            return None, self.line_start, [], 0
        n = len(data)
        self.position += n
        head = None
        pos = self.line_start
        if self._buf or self._overlong:
            nl = data.find(b"\n")
            if nl < 0:
                self._extend(data)
                return None, pos, [], n
            self._extend(data[:nl])
            end = self.position - n + nl + 1
            head = RawLine(pos, end, self._buf, self._overlong)
            pos = end
            self._buf = b""
            self._overlong = False
            data = data[nl + 1 :]
        lines = data.split(b"\n")
        tail = lines.pop()
        self.line_start = self.position - len(tail)
        self._extend(tail)
        return head, pos, lines, n

    def _extend(self, data: bytes) -> None:
        if self._overlong:
            return
        self._buf += data
        if len(self._buf) > self.max_line_bytes:
            self._buf = self._buf[: self.max_line_bytes]
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

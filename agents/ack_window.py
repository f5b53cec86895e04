"""Which bytes of a file may be checkpointed: everything before the oldest record not yet acknowledged.

Records are sent in (nearly) offset order; Kafka acknowledges them later. The checkpoint of a file is
the smallest of: the start of the oldest unacknowledged record, the start of anything still buffered
in the mergers, and the end of what was read as complete lines. A restart resumes there, so the only
duplicates are the unacknowledged window, and they get the same ids (same file identity + offset).
"""

from __future__ import annotations

from collections import deque


class AckWindow:
    __slots__ = ("_starts", "_acked", "bytes")

    def __init__(self) -> None:
        self._starts: deque[int] = deque()   # record starts in send order
        self._acked: set[int] = set()         # acknowledged starts not yet at the front
        self.bytes = 0                        # bytes of unacknowledged event values (the queue's size)

    def sent(self, start: int) -> None:
        self._starts.append(start)

    def acked(self, start: int) -> None:
        starts = self._starts
        if starts and starts[0] == start:
            starts.popleft()
            acked = self._acked
            while starts and starts[0] in acked:
                acked.discard(starts.popleft())
        else:
            self._acked.add(start)

    def __len__(self) -> int:
        return len(self._starts) - len(self._acked)

    def oldest(self) -> int | None:
        """Start of the oldest unacknowledged record (None when everything was acknowledged)."""
        if not self._starts:
            return None
        return min(s for s in self._starts if s not in self._acked)

    def clear(self) -> None:
        self._starts.clear()
        self._acked.clear()
        self.bytes = 0

"""Bounded memory of recent event ids: the first line of duplicate suppression in every sink.

Duplicates come from at-least-once delivery: a redelivered batch after a crash, or an upstream
processor that re-produced after its own restart. Both are recent, so a bounded LRU catches them;
each sink adds its own durable check for the restart case (audit: segment tail; Parquet: offsets and
query-time ``QUALIFY``; PostgreSQL: ``ON CONFLICT DO NOTHING``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar
from collections.abc import Callable, Iterable

T = TypeVar("T")


class RecentIds:
    def __init__(self, capacity: int = 200_000):
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, event_ids: Iterable[str]) -> None:
        """Remember ids, only after they were written durably (a failed write must not mark them)."""
        if self.capacity <= 0:
            return
        ids = self._ids
        for i in event_ids:
            if i in ids:
                ids.move_to_end(i)
            else:
                ids[i] = None
        while len(ids) > self.capacity:
            ids.popitem(last=False)

    def fresh(self, items: Iterable[T], event_id: Callable[[T], str]) -> tuple[list[T], int]:
        """Items whose id is neither remembered nor repeated earlier in ``items``; and how many were dropped."""
        out: list[T] = []
        seen: set[str] = set()
        dropped = 0
        for item in items:
            i = event_id(item)
            if i in seen or i in self._ids:
                dropped += 1
                continue
            seen.add(i)
            out.append(item)
        return out, dropped

"""Sliding event-time windows per group key, in fixed buckets (memory per key is bounded by
window / step, not by the event rate).

A ``Series`` keeps ``[bucket, count, errors]`` triples in time order plus the last few matching
events (samples for templates). Counting is approximate to one bucket (a window is 30 buckets
by default): good enough to page on, and it stays O(1) per event under a storm.
"""

from __future__ import annotations

from collections import deque
from typing import Any

SAMPLES = 3
MAX_SAMPLE_BODY = 2000


def sample_of(event: dict) -> dict:
    """A small copy of an event for templates (bounded size: bodies are cut)."""
    body = event.get("body")
    if isinstance(body, str) and len(body) > MAX_SAMPLE_BODY:
        body = body[:MAX_SAMPLE_BODY] + "…"
    elif not isinstance(body, (str, type(None))):
        text = str(body)
        body = text[:MAX_SAMPLE_BODY] if len(text) > MAX_SAMPLE_BODY else body
    return {
        "id": event.get("id"),
        "time": event.get("time"),
        "severity_text": event.get("severity_text"),
        "severity_number": event.get("severity_number"),
        "body": body,
        "source": event.get("source"),
        "resource": event.get("resource") or {},
        "attributes": event.get("attributes") or {},
    }


class Series:
    """Counts of one group key in buckets of ``step`` ns."""

    __slots__ = ("buckets", "total", "errors", "samples", "last_seen", "partition")

    def __init__(self, partition: int = -1):
        self.buckets: deque[list[int]] = deque()
        self.total = 0
        self.errors = 0
        self.samples: deque[dict] = deque(maxlen=SAMPLES)
        self.last_seen = 0
        self.partition = partition

    def add(self, bucket: int, n: int = 1, errors: int = 0) -> None:
        b = self.buckets
        if b and b[-1][0] == bucket:
            b[-1][1] += n
            b[-1][2] += errors
        elif not b or b[-1][0] < bucket:
            b.append([bucket, n, errors])
        else:  # a late event: find or insert its bucket (rare, short scan from the right)
            for i in range(len(b) - 1, -1, -1):
                if b[i][0] == bucket:
                    b[i][1] += n
                    b[i][2] += errors
                    break
                if b[i][0] < bucket:
                    b.insert(i + 1, [bucket, n, errors])
                    break
            else:
                b.appendleft([bucket, n, errors])
        self.total += n
        self.errors += errors

    def expire(self, oldest: int) -> None:
        """Forget buckets before ``oldest``."""
        b = self.buckets
        while b and b[0][0] < oldest:
            _, n, e = b.popleft()
            self.total -= n
            self.errors -= e

    def between(self, lo: int, hi: int) -> int:
        """Count in buckets lo <= bucket < hi."""
        return sum(n for bid, n, _ in self.buckets if lo <= bid < hi)

    def sample_list(self) -> list[dict]:
        """The samples as small dicts (events are kept as they came and cut down only when needed)."""
        return [sample_of(e) for e in self.samples]

    def dump(self) -> dict[str, Any]:
        return {"b": list(self.buckets), "s": self.sample_list(), "l": self.last_seen, "p": self.partition}

    @classmethod
    def load(cls, data: dict[str, Any]) -> Series:
        s = cls(data.get("p", -1))
        for bid, n, e in data.get("b", []):
            s.add(bid, n, e)
        s.samples.extend(data.get("s", []))
        s.last_seen = data.get("l", 0)
        return s

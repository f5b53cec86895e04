"""The time a sink files an event under, when the event's own time is missing or absurd.

Rules (deterministic for one event, so a redelivered duplicate lands in the same partition and
the same PostgreSQL row key): the event ``time`` when present and not more than ``MAX_FUTURE_NS``
ahead of when it was observed; else ``observed_time``; else ``ingest_time``. The sinks keep the
original ``time`` as it was and record ``time_adjusted`` so nothing is silently rewritten.
"""

from __future__ import annotations

import time
from datetime import datetime, UTC

from logtide.timeutil import format_rfc3339

MAX_FUTURE_NS = 24 * 3600 * 10**9
#: 2000-01-01: earlier "times" are parse accidents (epoch 0, seconds taken for ns, ...).
MIN_TIME_NS = 946_684_800 * 10**9


def effective_time_ns(event: dict) -> tuple[int, bool]:
    """(time to file the event under in Unix ns, whether it differs from the event's own time)."""
    seen = event.get("observed_time") or event.get("ingest_time") or time.time_ns()
    t = event.get("time")
    if isinstance(t, int) and MIN_TIME_NS <= t <= seen + MAX_FUTURE_NS:
        return t, False
    return seen, True


def utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def ns_to_iso(ns: int | None) -> str | None:
    return None if ns is None else format_rfc3339(ns)

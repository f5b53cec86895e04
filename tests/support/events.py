"""Envelope builders: one event as a source would have sent it (ids deterministic per run and i)."""

from __future__ import annotations

import time
from typing import Any

from logtide import envelope


def make_event(
    i: int,
    *,
    run: str = "t",
    source: str = "demo",
    body: Any = None,
    time_ns: int | None = None,
    resource: dict | None = None,
    ingest_time: int | None = None,
    **fields,
) -> dict:
    """Event ``i`` of ``run``: id ``make_id(run, i)`` unless given, ``time`` now unless given; the other
    keyword arguments are envelope fields (severity_text, attributes, routes, ...)."""
    ev = envelope.new_event(
        id=fields.pop("id", None) or envelope.make_id(run, i),
        body=body if body is not None else f"event {i}",
        source=source,
        time=time.time_ns() if time_ns is None else time_ns,
        resource=resource or {},
        **fields,
    )
    ev["ingest_time"] = ingest_time if ingest_time is not None else (ev.get("observed_time") or time.time_ns())
    return ev

"""`logtide audit search`: records by time range and a condition (logtide's condition language).

Segments whose time span (from the manifest) misses the range are skipped without reading them.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from logtide.condition import compile_condition

from logtide.processors.sinks.audit.chain import MANIFEST, segment_number


def search(
    archive,
    *,
    since_ns: int | None = None,
    until_ns: int | None = None,
    where: str | None = None,
    limit: int | None = None,
) -> Iterator[dict]:
    """Yield ``{"chain", "seq", "time", "event"}`` of matching records, chain by chain in seq order."""
    predicate = compile_condition(where) if where else None
    found = 0
    for chain in archive.chains():
        raw = archive.read(chain, MANIFEST)
        spans = {s["name"]: s for s in (orjson.loads(raw).get("segments", []) if raw else [])}
        names = sorted(
            {*spans, *(n for n in archive.files(chain) if segment_number(n) is not None)}, key=segment_number
        )
        for name in names:
            span = spans.get(name, {})
            if since_ns is not None and span.get("last_time") is not None and span["last_time"] < since_ns:
                continue
            if until_ns is not None and span.get("first_time") is not None and span["first_time"] >= until_ns:
                continue
            data = archive.read(chain, name)
            for line in (data or b"").splitlines():
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # `verify` reports damage; search shows what is readable
                if rec.get("type") != "record":
                    continue
                t = rec.get("time", 0)
                if (since_ns is not None and t < since_ns) or (until_ns is not None and t >= until_ns):
                    continue
                if predicate is not None and not predicate(rec["event"]):
                    continue
                yield {"chain": chain, "seq": rec["seq"], "time": t, "event": rec["event"]}
                found += 1
                if limit is not None and found >= limit:
                    return

"""Records as logtide wrote them before events went without Kafka headers (issue 19): the envelope
as the value plus five headers repeating its routing fields. Every reader must still take them."""

from __future__ import annotations


def old_headers(event: dict) -> list[tuple[str, bytes]]:
    """The routing headers the sources and the processor used to put on each record."""
    return [
        ("logtide.id", event["id"].encode()),
        ("logtide.source", event["source"].encode()),
        ("logtide.routes", ",".join(event.get("routes") or ()).encode()),
        ("logtide.schema", str(event.get("schema", 1)).encode()),
        ("logtide.severity", str(event.get("severity_number", 0)).encode()),
    ]

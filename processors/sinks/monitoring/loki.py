"""Grafana Loki push (``POST /loki/api/v1/push``, JSON, gzip).

Streams are keyed by a whitelist of resource fields (dots become underscores: ``k8s.namespace.name``
→ ``k8s_namespace_name``) plus ``source`` and ``level`` — never per-event values, which would explode
Loki's index. Entries are sorted by time within each stream; a push above ``batch_bytes`` is split.
Duplicates: Loki itself drops an entry with the same stream, timestamp and line as one it has, and
our line and timestamp are deterministic per event, so a redelivered batch changes nothing.
"""

from __future__ import annotations

import re

import orjson
from prometheus_client import Counter

from logtide import log

from logtide.processors.sinks.eventtime import effective_time_ns
from logtide.processors.sinks.monitoring.http import HttpRejected, post

_log = log.get("processors.sinks.loki")

PUSHED = Counter("logtide_sink_loki_entries_total", "Log entries pushed to Loki", ["result"])

_LABEL_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")


def label_name(field: str) -> str:
    name = _LABEL_UNSAFE.sub("_", field)
    return name if not name[:1].isdigit() else "_" + name


def line_of(event: dict) -> str:
    body = event.get("body")
    return body if isinstance(body, str) else orjson.dumps(body).decode()


class LokiOutput:
    name = "loki"

    def __init__(self, settings):
        self.settings = settings
        self.url = settings.url.rstrip("/") + "/loki/api/v1/push"
        self.fields = [(f, label_name(f)) for f in settings.labels]
        self.headers = {"X-Scope-OrgID": settings.tenant} if settings.tenant else {}

    def streams(self, events: list[dict]) -> list[dict]:
        by_labels: dict[tuple, list[tuple[int, str]]] = {}
        for ev in events:
            res = ev.get("resource") or {}
            labels = [
                ("source", ev.get("source") or "unknown"),
                ("level", (ev.get("severity_text") or "unknown").lower()[:16]),
            ]
            labels += [(name, str(res[f])[:256]) for f, name in self.fields if res.get(f) not in (None, "")]
            t, _ = effective_time_ns(ev)
            by_labels.setdefault(tuple(labels), []).append((t, line_of(ev)))
        out = []
        for labels, entries in by_labels.items():
            entries.sort(key=lambda e: e[0])
            out.append({"stream": dict(labels), "values": [[str(t), line] for t, line in entries]})
        return out

    def _chunks(self, streams: list[dict]):
        """Pushes no larger than batch_bytes (roughly: counted on the lines)."""
        chunk, size = [], 0
        for s in streams:
            for i in range(0, len(s["values"]), 1000):
                part = {"stream": s["stream"], "values": s["values"][i : i + 1000]}
                n = sum(len(v[1]) + 32 for v in part["values"])
                if chunk and size + n > self.settings.batch_bytes:
                    yield chunk
                    chunk, size = [], 0
                chunk.append(part)
                size += n
        if chunk:
            yield chunk

    def write(self, events: list[dict]) -> None:
        s = self.settings
        for chunk in self._chunks(self.streams(events)):
            n = sum(len(x["values"]) for x in chunk)
            try:
                post(
                    self.url,
                    orjson.dumps({"streams": chunk}),
                    content_type="application/json",
                    headers=self.headers,
                    timeout=s.timeout_seconds,
                    attempts=s.attempts,
                    username=s.username,
                    password=s.password.get_secret_value() if s.password else None,
                )
                PUSHED.labels("ok").inc(n)
            except HttpRejected as exc:
                # e.g. entries too old or a label limit: retrying cannot succeed; do not block the stream.
                PUSHED.labels("rejected").inc(n)
                _log.warning("Loki rejected a push", extra={"status": exc.status, "error": str(exc), "entries": n})

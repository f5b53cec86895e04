"""Optional Elasticsearch / OpenSearch output: ``_bulk`` with ECS field names.

``create`` with ``_id`` = the event id makes writes idempotent: a redelivered event gets
409 (version conflict), which counts as already written. Per-item mapping errors (a field whose type
changed) are counted and logged, not retried forever.
"""

from __future__ import annotations

import orjson
from prometheus_client import Counter

from logtide import log
from logtide.consume import Retry

from logtide.processors.sinks.eventtime import effective_time_ns, ns_to_iso, utc
from logtide.processors.sinks.monitoring.http import HttpRejected, post

_log = log.get("processors.sinks.elasticsearch")

INDEXED = Counter("logtide_sink_elasticsearch_docs_total", "Documents sent to Elasticsearch", ["result"])

#: OTel resource attribute → ECS field.
ECS_RESOURCE = {
    "service.name": "service.name",
    "service.version": "service.version",
    "k8s.namespace.name": "orchestrator.namespace",
    "k8s.pod.name": "orchestrator.resource.name",
    "k8s.container.name": "container.name",
    "container.id": "container.id",
    "k8s.node.name": "host.name",
    "host.name": "host.name",
    "cloud.region": "cloud.region",
    "cloud.provider": "cloud.provider",
    "cloud.account.id": "cloud.account.id",
}


def _put(doc: dict, dotted: str, value) -> None:
    node = doc
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value


def ecs_document(event: dict) -> dict:
    t, _ = effective_time_ns(event)
    body = event.get("body")
    doc: dict = {
        "@timestamp": ns_to_iso(t),
        "message": body if isinstance(body, str) else orjson.dumps(body).decode(),
        "ecs": {"version": "8.11.0"},
    }
    _put(doc, "event.id", event["id"])
    _put(doc, "event.dataset", f"logtide.{event.get('source')}")
    _put(doc, "event.severity", event.get("severity_number") or 0)
    if event.get("observed_time"):
        _put(doc, "event.created", ns_to_iso(event["observed_time"]))
    if event.get("ingest_time"):
        _put(doc, "event.ingested", ns_to_iso(event["ingest_time"]))
    if event.get("severity_text"):
        _put(doc, "log.level", event["severity_text"].lower())
    res = event.get("resource") or {}
    for k, field in ECS_RESOURCE.items():
        if res.get(k) is not None:
            _put(doc, field, res[k])
    if res.get("k8s.pod.name"):
        _put(doc, "orchestrator.type", "kubernetes")
    _put(doc, "labels.logtide_source", event.get("source"))
    # Everything else, untouched, under one object (parsed fields and the full resource).
    doc["logtide"] = {"attributes": event.get("attributes") or {}, "resource": res}
    return doc


class ElasticsearchOutput:
    name = "elasticsearch"

    def __init__(self, settings):
        self.settings = settings
        self.url = settings.url.rstrip("/") + "/_bulk"

    def body(self, events: list[dict]) -> bytes:
        lines = []
        for ev in events:
            t, _ = effective_time_ns(ev)
            index = utc(t).strftime(self.settings.index)
            lines.append(orjson.dumps({"create": {"_index": index, "_id": ev["id"]}}))
            lines.append(orjson.dumps(ecs_document(ev)))
        return b"\n".join(lines) + b"\n"

    def write(self, events: list[dict]) -> None:
        if not events:
            return
        s = self.settings
        try:
            raw = post(
                self.url,
                self.body(events),
                content_type="application/x-ndjson",
                timeout=s.timeout_seconds,
                username=s.username,
                password=s.password.get_secret_value() if s.password else None,
            )
        except HttpRejected as exc:
            INDEXED.labels("rejected").inc(len(events))
            _log.warning("Elasticsearch rejected a bulk request", extra={"error": str(exc)})
            return
        resp = orjson.loads(raw)
        ok = dup = bad = 0
        retry = False
        for item in resp.get("items", []):
            status = next(iter(item.values())).get("status", 500)
            if status < 300:
                ok += 1
            elif status == 409:
                dup += 1
            elif status == 429 or status >= 500:
                retry = True
            else:
                bad += 1
        INDEXED.labels("ok").inc(ok)
        INDEXED.labels("duplicate").inc(dup)
        INDEXED.labels("rejected").inc(bad)
        if bad:
            _log.warning("Elasticsearch refused documents (mapping?)", extra={"refused": bad})
        if retry:
            # The whole batch comes again; what was created answers 409 next time.
            raise Retry("Elasticsearch overloaded or failing on some documents")

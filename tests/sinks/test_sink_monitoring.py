"""Monitoring: Loki push wire format (checked by a double), retries, bounded metrics, Elasticsearch _bulk."""

from __future__ import annotations

import gzip

import orjson
import pytest
from prometheus_client import REGISTRY

from logtide.consume import Retry
from logtide.transport import Record
from logtide.processors.sinks.config import MonitoringSettings
from logtide.processors.sinks.monitoring.sink import MonitoringSink
from logtide.processors.sinks.service import Item
from sinks_helpers import PostServer, make_event
from tests.support.metrics import metric as _value


def items(a, b, **over):
    return [
        Item(Record("logtide.route.monitoring", 0, i, None, None, [], None), make_event(i, **over)) for i in range(a, b)
    ]


def test_loki_push_shape_labels_and_idempotence(loki):
    sink = MonitoringSink(
        MonitoringSettings(
            loki={"url": loki.url, "labels": ["k8s.namespace.name", "service.name"], "batch_bytes": 2000}
        )
    )
    batch = items(0, 100)
    sink.write(batch)
    assert not loki.errors, loki.errors
    assert loki.pushes > 1  # split by batch_bytes
    labelsets = {dict(k[0])["service_name"] for k in loki.entries}
    assert labelsets == {"svc0", "svc1", "svc2", "svc3"}
    assert all(set(dict(k[0])) == {"source", "level", "k8s_namespace_name", "service_name"} for k in loki.entries)
    assert len(loki.entries) == 100
    sink.write(batch)  # redelivered: Loki keeps one copy of an identical entry
    assert len(loki.entries) == 100


def test_loki_retries_with_backoff_then_holds_the_batch(loki):
    sink = MonitoringSink(MonitoringSettings(loki={"url": loki.url, "attempts": 3}))
    loki.fail = 2
    sink.write(items(0, 10))  # two 503s, then accepted
    assert len(loki.entries) == 10
    loki.fail = 3
    with pytest.raises(Retry):
        sink.write(items(10, 20))
    sink.write(items(10, 20))
    assert len(loki.entries) == 20


def test_unreachable_loki_is_a_retry():
    from logtide.broker import free_port

    sink = MonitoringSink(MonitoringSettings(loki={"url": f"http://127.0.0.1:{free_port()}", "attempts": 2}))
    with pytest.raises(Retry):
        sink.write(items(0, 3))


def test_metrics_from_logs_with_bounded_labels():
    sink = MonitoringSink(MonitoringSettings(metrics={"max_services": 3}))
    before = _value("logtide_sink_log_label_overflow_total", label="service")
    evs = [
        make_event(
            i,
            run="metrics",
            source="metricsrc",
            resource={"service.name": f"m-svc{i % 5}", "k8s.namespace.name": "mon"},
        )
        for i in range(50)
    ]
    sink.write([Item(Record("t", 0, i, None, None, [], None), ev) for i, ev in enumerate(evs)])
    services = {
        s.labels["service"]
        for m in REGISTRY.collect()
        if m.name == "logtide_sink_log_events"
        for s in m.samples
        if s.labels.get("source") == "metricsrc"
    }
    assert len(services - {"__overflow__"}) == 3 and "__overflow__" in services
    assert _value("logtide_sink_log_label_overflow_total", label="service") - before == 20
    total = sum(
        _value("logtide_sink_log_events_total", source="metricsrc", service=s, namespace="mon", severity=sev)
        for s in services
        for sev in ("info", "warn", "error")
    )
    assert total == 50
    assert _value("logtide_sink_log_bytes_total", source="metricsrc", service="m-svc0", namespace="mon") > 0


class BulkDouble:
    """An Elasticsearch _bulk endpoint: NDJSON pairs, `create` by _id (409 for an existing id)."""

    def __init__(self):
        self.docs: dict[str, dict] = {}
        self.bad_requests = []
        self.server = PostServer(self.accept)
        self.url = self.server.url

    def accept(self, path, headers, raw) -> tuple[int, bytes]:
        if headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        if path != "/_bulk" or headers.get("Content-Type") != "application/x-ndjson":
            self.bad_requests.append(path)
        lines = raw.decode().splitlines()
        items = []
        for action, doc in zip(lines[::2], lines[1::2]):
            meta = orjson.loads(action)["create"]
            status = 409 if meta["_id"] in self.docs else 201
            self.docs.setdefault(meta["_id"], {"_index": meta["_index"], **orjson.loads(doc)})
            items.append({"create": {"_id": meta["_id"], "status": status}})
        return 200, orjson.dumps({"errors": any(i["create"]["status"] >= 300 for i in items), "items": items})


def test_elasticsearch_bulk_with_ecs_fields():
    es = BulkDouble()
    try:
        sink = MonitoringSink(MonitoringSettings(elasticsearch={"url": es.url}))
        sink.write(items(0, 20))
        sink.write(items(10, 30))  # 10..19 again: 409, not an error
        assert not es.bad_requests
        assert len(es.docs) == 30
        doc = es.docs[make_event(5)["id"]]
        assert doc["@timestamp"].startswith("2025-11-21T") and doc["_index"] == "logtide-2025.11.21"
        assert doc["message"] == make_event(5)["body"] and doc["ecs"]["version"]
        assert doc["log"]["level"] == "error" and doc["service"]["name"] == "svc1"
        assert doc["orchestrator"]["namespace"] == "ns1" and doc["event"]["id"] == make_event(5)["id"]
        assert doc["logtide"]["attributes"]["user"] == "u5"
    finally:
        es.server.stop()

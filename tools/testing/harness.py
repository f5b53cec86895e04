"""Runs a test's input offline through the real pipeline and the real alerting engine.

The pipeline is built by the processor's own code from its config (``processors.app``), without
Kafka; each input event is encoded and decoded as on the wire (a bad envelope lands in ``dlq`` with
stage ``decode``, as the processor would send it), then run; outputs are collected per sink.

Alerting uses ``alerting.engine.AlertEngine`` with an in-memory store, event-time clock (time comes
only from event timestamps and ``advance`` steps) and a notify hook that collects notifications
instead of sending them. With a pipeline, the engine sees what the pipeline routes to the sinks the
alerting config reads (``logtide.route.monitoring`` by default); without one, every input event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from logtide import envelope
from logtide.config import ConfigError
from logtide.topics import ROUTE_PREFIX

from logtide.tools.testing.spec import Advance, TestCase, TestFile

DEFAULT_SINKS = ["monitoring", "audit", "analytics"]


@dataclass
class Outcome:
    routes: dict[str, list[dict]] = field(default_factory=dict)
    dlq: list[dict] = field(default_factory=list)
    unrouted: list[dict] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)
    notifications: list[dict] = field(default_factory=list)


def _copy(event: dict) -> dict:
    return orjson.loads(orjson.dumps(event, option=orjson.OPT_NON_STR_KEYS))


def _fill(event: dict, test: TestCase, index: int) -> dict:
    """A full envelope from the partial one the test wrote (deterministic id, source, severity)."""
    ev = envelope.new_event(
        id=event.get("id") or envelope.make_id("logtide-test", test.name, index),
        body=event.get("body", ""),
        source=event.get("source") or "test",
        time=event.get("time"),
        observed_time=event.get("observed_time") or event.get("time"),
        severity_text=event.get("severity_text", ""),
        severity_number=event.get("severity_number"),
        attributes=event.get("attributes"),
        resource=event.get("resource"),
        routes=event.get("routes"),
    )
    for k, v in event.items():
        if k not in ev:
            ev[k] = v  # unknown fields stay: validation (decode) decides, as on the wire
    return ev


class PipelineHarness:
    """Builds a fresh pipeline per test (stateful steps start clean)."""

    def __init__(self, tf: TestFile):
        from logtide.processors.app import ProcessorConfig, load  # the processor's own loader and validation

        self.tf = tf
        if isinstance(tf.pipeline, list):
            self.entries = tf.pipeline
            self.sinks = list(tf.sinks or DEFAULT_SINKS)
            self.filename = str(tf.path)
            self.config = ProcessorConfig(sinks=self.sinks)
        else:
            self.config = load(tf.pipeline if tf.pipeline != "default" else None)
            self.filename = tf.pipeline if tf.pipeline != "default" else "<default pipeline>"
            self.entries = None
            self.sinks = list(self.config.sinks)
        self.build()  # config errors surface before any test runs

    def build(self):
        from logtide.processors.app import build_pipeline
        from logtide.processors.pipeline import Pipeline
        from logtide.processors.steps import StepContext

        ctx = StepContext(sinks=tuple(self.sinks), component="logtide-test", lookups=self.tf.lookups)
        if self.entries is not None:
            return Pipeline.from_config(self.entries, ctx, self.filename)
        return build_pipeline(self.config, self.filename, ctx)

    def run(self, pipeline, events: list[dict], outcome: Outcome) -> list[tuple[dict, tuple[str, ...]]]:
        """Run one batch of events through; fill the outcome; return the outputs as (event, sinks)."""
        from logtide.processors.pipeline import StepError

        routed = []
        for sink in self.sinks:
            outcome.routes.setdefault(sink, [])
        for ev in events:
            try:
                decoded = envelope.decode(envelope.encode(ev))
            except envelope.EnvelopeError as exc:
                outcome.dlq.append({"stage": "decode", "error": str(exc), "event": ev})
                continue
            try:
                outputs = pipeline.run(decoded)
            except StepError as exc:
                outcome.dlq.append(
                    {"stage": exc.stage, "error": str(exc.cause), "class": type(exc.cause).__name__, "event": ev}
                )
                continue
            for out, sinks in outputs:
                out = _copy(out)
                if not sinks:
                    outcome.unrouted.append(out)
                for sink in sinks:
                    outcome.routes.setdefault(sink, []).append(out)
                routed.append((out, tuple(sinks)))
        pipeline.end_batch()
        return routed


class AlertingHarness:
    def __init__(self, tf: TestFile):
        from logtide.alerting.config import AlertConfig, ClockSettings, load_alert_config
        from logtide.alerting.rules import load_rules, parse_rules

        if tf.alerting is not None:
            config = load_alert_config(tf.alerting)
            rules = load_rules(config.rule_paths())
        else:
            # No alerting config: one "default" receiver with a webhook that is never called (the
            # notify hook collects instead), so notifications and resolutions can be tested.
            from logtide.alerting.notifiers import Receiver
            from logtide.alerting.notifiers.webhook import WebhookConfig

            config = AlertConfig(
                receivers=[Receiver(name="default", webhook=[WebhookConfig(url="http://logtide-test.invalid/")])]
            )
            rules = []
        if tf.rules:
            inline = parse_rules({"rules": tf.rules}, str(tf.path))
            names = {r.name for r in inline}
            rules = [r for r in rules if r.name not in names] + inline
        self.config = config.model_copy(update={"clock": ClockSettings(mode="event")})
        self.rules = rules
        self.sinks = {t[len(ROUTE_PREFIX) :] for t in config.topics if t.startswith(ROUTE_PREFIX)}

    def run(self, items: list[Any], outcome: Outcome) -> None:
        """``items``: events (already through the pipeline, or raw) and Advance markers, in order."""
        from logtide.alerting.delivery import sendable
        from logtide.alerting.engine import AlertEngine
        from logtide.alerting.store import Store

        sent = []

        def notify(n) -> None:
            # Count it as delivered (as the delivery worker logs a success), so resolutions and
            # repeats follow as they would in production.
            engine.nflog.log(n.group_key, n.integration, n.firing, n.resolved, n.now)
            if sendable(n):  # as the delivery worker: a notification with nothing to show is not sent
                sent.append(n)

        engine = AlertEngine(self.config, self.rules, Store(":memory:"), notify=notify)
        for item in items:
            if isinstance(item, Advance):
                engine.advance_to(engine.clock.watermark + int(item.seconds * 1e9))
            else:
                engine.ingest([(item, 0)])
        outcome.alerts = [_alert(a) for a in engine.alerts_api()]
        outcome.notifications = [_notification(n, self.config.external_url) for n in sent]
        engine.store.close()


def _alert(a: dict) -> dict:
    labels = a.get("labels") or {}
    return {
        "rule": labels.get("alertname"),
        "state": a.get("state"),
        "labels": labels,
        "annotations": a.get("annotations") or {},
        "value": a.get("value"),
        "silenced": bool(a.get("silencedBy")),
    }


def _notification(n, external_url: str) -> dict:
    alerts = list(n.alerts)
    return {
        "receiver": n.receiver,
        "integration": n.integration,
        "status": n.status,
        "group_labels": dict(n.group_labels),
        "labels": dict(n.common_labels),
        "annotations": dict(n.common_annotations),
        "alerts": len(alerts),
        "firing": len(n.firing),
        "resolved": len(n.resolved),
        "alertnames": sorted({a.labels.get("alertname", "") for a in alerts}),
        "payload": n.payload(external_url),
    }  # the Alertmanager-style webhook body


class Harness:
    """Everything a tests file needs, built once; ``run(test)`` gives the outcome of one test."""

    def __init__(self, tf: TestFile):
        self.tf = tf
        try:
            self.pipeline = PipelineHarness(tf) if tf.pipeline is not None else None
            self.alerting = AlertingHarness(tf) if (tf.alerting is not None or tf.rules) else None
        except ImportError as exc:
            raise ConfigError(f"{tf.path}: cannot load the component under test: {exc}") from None

    def run(self, test: TestCase) -> Outcome:
        outcome = Outcome()
        filled: list[Any] = []
        n = 0
        for item in test.inputs:
            if isinstance(item, Advance):
                filled.append(item)
            else:
                filled.append(_fill(item, test, n))
                n += 1
        feed: list[Any] = []
        if self.pipeline is not None:
            # One pipeline per test; the events between advance markers are one batch each.
            pipeline = self.pipeline.build()
            try:
                pipeline.start()
            except Exception as exc:  # e.g. an enrich lookup table, which needs Kafka
                pipeline.close()
                raise ConfigError(
                    f"{self.tf.path}: the pipeline cannot start offline: {exc} "
                    "(give an enrich lookup's rows under `lookups:`)"
                ) from None
            try:
                chunk: list[dict] = []
                for item in filled + [None]:
                    if isinstance(item, dict):
                        chunk.append(item)
                        continue
                    if chunk:
                        for out, sinks in self.pipeline.run(pipeline, chunk, outcome):
                            if self.alerting is not None and self.alerting.sinks & set(sinks):
                                feed.append(out)
                        chunk = []
                    if item is not None:
                        feed.append(item)
            finally:
                pipeline.close()
        else:
            feed = filled
        if self.alerting is not None:
            self.alerting.run(feed, outcome)
        return outcome

"""Alert lifecycle, after Prometheus: inactive → pending (condition true, waiting ``for``) → firing
→ resolved (condition false for longer than ``keep_firing_for``). Resolved alerts are kept until
their resolved notification went out (or ``resolved_retention_seconds`` passed), then forgotten.

The fingerprint is Alertmanager's: FNV-1a 64 over the sorted label names and values, each followed
by the 0xff separator (prometheus/common model.LabelsToSignature / LabelSet.Fingerprint), written
as 16 hex digits, so alerts deduplicate with the rest of the ecosystem.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any
from collections.abc import Callable

from logtide.alerting import metrics
from logtide.timeutil import NS, format_rfc3339
from logtide.alerting.evaluators import Active, Key
from logtide.alerting.rules import RuleBase

FNV_OFFSET = 14695981039346656037
FNV_PRIME = 1099511628211
_SEP = 0xFF
_MASK = 0xFFFFFFFFFFFFFFFF

INACTIVE, PENDING, FIRING, RESOLVED = "inactive", "pending", "firing", "resolved"


def labels_signature(labels: dict[str, str]) -> int:
    """FNV-1a 64 of the sorted label set (the value Alertmanager uses as the alert fingerprint)."""
    h = FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode("utf-8"):
                h = ((h ^ byte) * FNV_PRIME) & _MASK
            h = ((h ^ _SEP) * FNV_PRIME) & _MASK
    return h


def fingerprint(labels: dict[str, str]) -> str:
    return f"{labels_signature(labels):016x}"


def rfc3339(ns: int | None) -> str:
    """Alertmanager's time format; the zero time for "not set"."""
    if not ns:
        return "0001-01-01T00:00:00Z"
    return format_rfc3339(ns, digits=3)


@dataclass
class Alert:
    rule: str
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    state: str
    active_at: int           # when the condition first held (event time, ns)
    last_true: int           # the last evaluation where it held
    fired_at: int = 0
    resolved_at: int = 0
    value: float = 0.0
    samples: list[dict] = field(default_factory=list)
    partition: int = -1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Alert:
        return cls(**d)

    def api(self, external_url: str = "") -> dict[str, Any]:
        """The Alertmanager v4 webhook / v2 API form of the alert."""
        return {
            "status": "resolved" if self.state == RESOLVED else "firing",
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": rfc3339(self.fired_at or self.active_at),
            "endsAt": rfc3339(self.resolved_at if self.state == RESOLVED else 0),
            "generatorURL": f"{external_url.rstrip('/')}/api/v2/alerts?rule={self.rule}",
            "fingerprint": self.fingerprint,
        }


Renderer = Callable[[dict[str, str], dict[str, Any]], dict[str, str]]


class AlertStates:
    """Active alerts of all rules, by fingerprint; ``update`` applies one evaluation of one rule."""

    def __init__(self, render_annotations: Renderer | None = None, resolved_retention_seconds: float = 3600.0):
        self.alerts: dict[str, Alert] = {}
        self.by_rule: dict[str, set[str]] = {}
        self.key_of: dict[str, tuple[str, Key]] = {}
        self.dirty: set[str] = set()
        self.render = render_annotations or (lambda ann, ctx: dict(ann))
        self._labels: dict[tuple[str, Key], tuple[dict[str, str], str]] = {}  # (rule, key) -> labels, fingerprint
        self.resolved_retention_ns = int(resolved_retention_seconds * NS)
        self._rerender: set[str] = set()  # alerts whose rule was edited: annotations rendered anew

    def labels_for(self, rule: RuleBase, key: Key) -> dict[str, str]:
        labels = {**rule.labels, **rule.group_labels(key), "alertname": rule.name}
        labels.setdefault("severity", rule.severity)
        return labels

    def _annotations(self, rule: RuleBase, labels: dict[str, str], act: Active) -> dict[str, str]:
        ctx = {"labels": labels, "value": act.value, "rule": rule.name, "events": act.samples()}
        ann = dict(rule.annotations)
        if rule.description and "description" not in ann:
            ann["description"] = rule.description
        return self.render(ann, ctx)

    def update(self, rule: RuleBase, active: dict[Key, Active], now: int) -> list[Alert]:
        """Apply ``active`` (keys whose condition holds at ``now``); return alerts whose state changed
        to firing or resolved (what the dispatcher must hear about)."""
        changed: list[Alert] = []
        fps = self.by_rule.setdefault(rule.name, set())
        seen: set[str] = set()
        for_ns = int(rule.for_ * NS)
        cache = self._labels
        for key, act in active.items():
            hit = cache.get((rule.name, key))
            if hit is None:  # labels and FNV fingerprint once per key, not at every evaluation
                labels = self.labels_for(rule, key)
                hit = cache[(rule.name, key)] = (labels, fingerprint(labels))
            labels, fp = hit
            seen.add(fp)
            a = self.alerts.get(fp)
            if a is None or a.state == RESOLVED:
                a = Alert(rule.name, fp, labels, self._annotations(rule, labels, act), PENDING, now, now,
                          value=act.value, samples=act.samples(), partition=act.partition)
                self.alerts[fp] = a
                fps.add(fp)
                self.key_of[fp] = (rule.name, key)
                metrics.TRANSITIONS.labels(PENDING).inc()
            else:
                if fp not in self.key_of:  # restored after a restart
                    self.key_of[fp] = (rule.name, key)
                a.last_true = now
                if a.value != act.value:
                    a.value = act.value
                    a.samples = act.samples() or a.samples
                if fp in self._rerender:
                    self._rerender.discard(fp)
                    a.annotations = self._annotations(rule, labels, act)
                    if a.state == FIRING:
                        changed.append(a)  # the groups get the new text; the same alerts: nobody is paged
            if a.state == PENDING and now - a.active_at >= for_ns:
                a.state = FIRING
                a.fired_at = now
                a.annotations = self._annotations(rule, labels, act)
                metrics.TRANSITIONS.labels(FIRING).inc()
                changed.append(a)
            self.dirty.add(fp)
        keep_ns = int(rule.keep_firing_for * NS)
        for fp in list(fps - seen):
            a = self.alerts[fp]
            if a.state == PENDING:
                self._forget(fp)
                metrics.TRANSITIONS.labels(INACTIVE).inc()
            elif a.state == FIRING and now - a.last_true >= keep_ns:
                a.state = RESOLVED
                a.resolved_at = now
                self.dirty.add(fp)
                metrics.TRANSITIONS.labels(RESOLVED).inc()
                changed.append(a)
            elif a.state == RESOLVED and now - a.resolved_at > self.resolved_retention_ns:
                self._forget(fp)
        return changed

    def _forget(self, fp: str) -> None:
        self._rerender.discard(fp)
        a = self.alerts.pop(fp, None)
        if a is not None:
            self.by_rule.get(a.rule, set()).discard(fp)
        rk = self.key_of.pop(fp, None)
        if rk is not None:
            self._labels.pop(rk, None)
        self.dirty.add(fp)

    def forget_resolved(self, fps: set[str]) -> None:
        """Resolved alerts whose resolved notification went out everywhere: no need to keep them."""
        for fp in fps:
            a = self.alerts.get(fp)
            if a is not None and a.state == RESOLVED:
                self._forget(fp)

    def rule_changed(self, name: str) -> None:
        """A rule was edited or removed: its labels may differ now; alerts it keeps get their
        annotations rendered anew at the next evaluation."""
        for rk in [rk for rk in self._labels if rk[0] == name]:
            del self._labels[rk]
        self._rerender |= self.by_rule.get(name, set())

    def drop_rule(self, name: str) -> None:
        for fp in list(self.by_rule.get(name, ())):
            self._forget(fp)
        self.by_rule.pop(name, None)

    def drop_partitions(self, partitions: set[int]) -> None:
        for fp in [fp for fp, a in self.alerts.items() if a.partition in partitions]:
            self._forget(fp)

    def restore(self, a: Alert) -> None:
        self.alerts[a.fingerprint] = a
        self.by_rule.setdefault(a.rule, set()).add(a.fingerprint)

    def take_dirty(self) -> set[str]:
        d, self.dirty = self.dirty, set()
        return d

    def counts(self) -> dict[str, int]:
        out = {PENDING: 0, FIRING: 0, RESOLVED: 0}
        for a in self.alerts.values():
            out[a.state] += 1
        return out

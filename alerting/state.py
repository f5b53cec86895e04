"""Alert lifecycle, after Prometheus: inactive → pending (condition true, waiting ``for``) → firing
→ resolved (condition false for longer than ``keep_firing_for``). Resolved alerts are kept until
their resolved notification went out (or ``resolved_retention_seconds`` passed), then forgotten.

The fingerprint is Alertmanager's: FNV-1a 64 over the sorted label names and values, each followed
by the 0xff separator (prometheus/common model.LabelsToSignature / LabelSet.Fingerprint), written
as 16 hex digits, so alerts deduplicate with the rest of the ecosystem.
"""

from __future__ import annotations

import heapq
import itertools
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
_TO = {state: metrics.TRANSITIONS.labels(state) for state in (INACTIVE, PENDING, FIRING, RESOLVED)}


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
    active_at: int  # when the condition first held (event time, ns)
    last_true: int  # the last evaluation where it held
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
    """Active alerts of all rules, by fingerprint; ``update`` applies one evaluation of one rule.

    Incremental: an evaluation reports only the keys it looked at (see evaluators.py), so the alerts
    whose condition holds are remembered (``holding``) and time-driven changes (``for`` running
    out, ``keep_firing_for`` running out, resolved alerts forgotten) come from a heap of deadlines
    per rule; no evaluation walks every alert. ``last_true`` of an alert that holds is brought up to
    date when it stops holding, or by ``refresh`` (the engine calls it now and then, for the store).
    """

    def __init__(self, render_annotations: Renderer | None = None, resolved_retention_seconds: float = 3600.0):
        self.alerts: dict[str, Alert] = {}
        self.by_rule: dict[str, set[str]] = {}
        self.key_of: dict[str, tuple[str, Key]] = {}
        self.dirty: set[str] = set()
        self.render = render_annotations or (lambda ann, ctx: dict(ann))
        self._labels: dict[tuple[str, Key], tuple[dict[str, str], str]] = {}  # (rule, key) -> labels, fingerprint
        self.resolved_retention_ns = int(resolved_retention_seconds * NS)
        self._rerender: set[str] = set()  # alerts whose rule was edited: annotations rendered anew
        self.holding: dict[str, dict[str, Active]] = {}  # rule -> fingerprint -> value, where the condition holds
        self._timers: dict[str, list[tuple[int, str]]] = {}  # rule -> heap of (event time, fingerprint)
        self._last_now: dict[str, int] = {}  # rule -> time of its last evaluation
        self.counts_by_state = {PENDING: 0, FIRING: 0, RESOLVED: 0}
        #: when set, every state change is reported (fingerprint, state before); ``alert test`` prints them
        self.on_change: Callable[[str, str], None] | None = None
        self.order: dict[str, int] = {}  # fingerprint -> rank of its insertion in ``alerts`` (print order)
        self._inserted = itertools.count()

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

    def _set_state(self, a: Alert, state: str) -> None:
        if self.on_change is not None:
            self.on_change(a.fingerprint, a.state)
        self.counts_by_state[a.state] = self.counts_by_state.get(a.state, 0) - 1
        self.counts_by_state[state] = self.counts_by_state.get(state, 0) + 1
        a.state = state
        _TO[state].inc()

    def _at(self, rule: str, t: int, fp: str) -> None:
        heapq.heappush(self._timers.setdefault(rule, []), (t, fp))

    def update(self, rule: RuleBase, checked: dict[Key, Active | None], now: int, full: bool = True) -> list[Alert]:
        """Apply one evaluation at ``now``: ``checked`` maps keys looked at to their value when the
        condition holds, to None when not; with ``full`` every key was looked at (the alerts of keys
        not in ``checked`` do not hold). Returns the alerts whose state changed to firing or
        resolved, or whose text changed (what the dispatcher must hear about)."""
        name = rule.name
        timers = self._timers.get(name)
        if not checked and not full and not (timers and timers[0][0] <= now):
            self._last_now[name] = now
            return []  # nothing looked at, nothing due
        changed: list[Alert] = []
        fps = self.by_rule.setdefault(name, set())
        holding = self.holding.setdefault(name, {})
        prev_now = self._last_now.get(name, now)
        self._last_now[name] = now
        for_ns = int(rule.for_ * NS)
        keep_ns = int(rule.keep_firing_for * NS)
        cache = self._labels
        stopped: list[str] = []
        seen: set[str] = set()
        for key, act in checked.items():
            if act is None:
                hit = cache.get((name, key))
                if hit is not None and hit[1] in holding:
                    stopped.append(hit[1])
                continue
            hit = cache.get((name, key))
            if hit is None:  # labels and FNV fingerprint once per key, not at every evaluation
                labels = self.labels_for(rule, key)
                hit = cache[(name, key)] = (labels, fingerprint(labels))
            labels, fp = hit
            seen.add(fp)
            a = self.alerts.get(fp)
            if a is None or a.state == RESOLVED:
                if a is not None:
                    self.counts_by_state[RESOLVED] -= 1
                if self.on_change is not None:
                    self.on_change(fp, a.state if a is not None else INACTIVE)
                a = Alert(
                    name,
                    fp,
                    labels,
                    self._annotations(rule, labels, act),
                    PENDING,
                    now,
                    now,
                    value=act.value,
                    samples=act.samples(),
                    partition=act.partition,
                )
                if fp not in self.alerts:
                    self.order[fp] = next(self._inserted)
                self.alerts[fp] = a
                self.counts_by_state[PENDING] += 1
                fps.add(fp)
                self.key_of[fp] = (name, key)
                _TO[PENDING].inc()
                if for_ns:
                    self._at(name, now + for_ns, fp)
            else:
                if fp not in self.key_of:  # restored after a restart
                    self.key_of[fp] = (name, key)
                a.last_true = now
                if a.value != act.value:
                    a.value = act.value
                    a.samples = act.samples() or a.samples
                if fp in self._rerender:
                    self._rerender.discard(fp)
                    a.annotations = self._annotations(rule, labels, act)
                    if a.state == FIRING:
                        changed.append(a)  # the groups get the new text; the same alerts: nobody is paged
                if a.state == PENDING and fp not in holding and for_ns:
                    self._at(name, a.active_at + for_ns, fp)  # restored pending alert: its timer
            holding[fp] = act
            if a.state == PENDING and now - a.active_at >= for_ns:
                self._fire(rule, a, act, now, changed)
            self.dirty.add(fp)
        if full:
            stopped = [fp for fp in fps if fp not in seen]
        for fp in stopped:
            a = self.alerts[fp]
            if holding.pop(fp, None) is not None and prev_now > a.last_true:
                a.last_true = prev_now  # it held until the evaluation before this one
            self._not_holding(name, a, now, keep_ns, changed)
        timers = self._timers.get(name)  # (again: a stopped alert may have started one)
        while timers and timers[0][0] <= now:
            _, fp = heapq.heappop(timers)
            a = self.alerts.get(fp)
            if a is None or a.rule != name:
                continue
            if fp in holding:
                if a.state == PENDING and now - a.active_at >= for_ns:
                    self._fire(rule, a, holding[fp], now, changed)
            else:
                self._not_holding(name, a, now, keep_ns, changed)
        return changed

    def _fire(self, rule: RuleBase, a: Alert, act: Active, now: int, changed: list[Alert]) -> None:
        a.last_true = now
        self._set_state(a, FIRING)
        a.fired_at = now
        a.annotations = self._annotations(rule, a.labels, act)
        self.dirty.add(a.fingerprint)
        changed.append(a)

    def _not_holding(self, rule: str, a: Alert, now: int, keep_ns: int, changed: list[Alert]) -> None:
        """An alert whose condition does not hold at ``now``: pending ones go, firing ones resolve once
        ``keep_firing_for`` has passed, resolved ones are forgotten after the retention."""
        fp = a.fingerprint
        if a.state == PENDING:
            if self.on_change is not None:
                self.on_change(fp, PENDING)
            self._forget(fp)
            _TO[INACTIVE].inc()
        elif a.state == FIRING:
            if now - a.last_true >= keep_ns:
                self._set_state(a, RESOLVED)
                a.resolved_at = now
                self.dirty.add(fp)
                changed.append(a)
                self._at(rule, now + self.resolved_retention_ns + 1, fp)
            else:
                self._at(rule, a.last_true + keep_ns, fp)
        elif a.state == RESOLVED:
            if now - a.resolved_at > self.resolved_retention_ns:
                self._forget(fp)
            else:
                self._at(rule, a.resolved_at + self.resolved_retention_ns + 1, fp)

    def refresh(self, now: int) -> None:
        """Alerts that hold: ``last_true`` is ``now`` (written to the store now and then, so that a
        restart's keep_firing_for counts from about when the condition last held)."""
        for holding in self.holding.values():
            for fp in holding:
                a = self.alerts.get(fp)
                if a is not None and a.last_true < now:
                    a.last_true = now
                    self.dirty.add(fp)

    def _forget(self, fp: str) -> None:
        self._rerender.discard(fp)
        a = self.alerts.pop(fp, None)
        self.order.pop(fp, None)
        if a is not None:
            self.by_rule.get(a.rule, set()).discard(fp)
            self.holding.get(a.rule, {}).pop(fp, None)
            self.counts_by_state[a.state] -= 1
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
        old = self.alerts.get(a.fingerprint)
        if old is not None:
            self.counts_by_state[old.state] -= 1
        else:
            self.order[a.fingerprint] = next(self._inserted)
        self.alerts[a.fingerprint] = a
        self.counts_by_state[a.state] = self.counts_by_state.get(a.state, 0) + 1
        self.by_rule.setdefault(a.rule, set()).add(a.fingerprint)

    def take_dirty(self) -> set[str]:
        d, self.dirty = self.dirty, set()
        return d

    def counts(self) -> dict[str, int]:
        return dict(self.counts_by_state)

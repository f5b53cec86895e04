"""Rule evaluation: each rule kind keeps per-key windows and answers "which keys are active now".

``observe(event, t_ns, partition)`` feeds one event (already known to be in this replica's share);
``evaluate(now_ns)`` returns ``{key: Active(value, samples)}`` for the keys whose condition holds at
event time ``now_ns``. Keys are capped per rule (``max_keys``) and the new_term store is an LRU of
``max_terms`` values, so an event storm with ever-new keys cannot grow memory without bound.
Dirty keys are tracked for incremental persistence (``take_dirty`` / ``export`` / ``restore``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from logtide import log

from logtide.alerting import metrics
from logtide.timeutil import NS
from logtide.alerting.rules import (AbsenceRule, MatchRule, NewTermRule, RatioRule, RuleBase, SpikeRule,
                            ThresholdRule)
from logtide.alerting.windows import Series

_log = log.get("alerting.evaluators")

BUCKETS_PER_WINDOW = 30
Key = tuple[str, ...]


def _no_samples() -> list[dict]:
    return []


@dataclass
class Active:
    """A key whose condition holds: its value, and its sample events (built only when asked)."""

    value: float
    samples: Callable[[], list[dict]] = _no_samples
    partition: int = -1


class Evaluator:
    """Shared machinery: bucketed series per key, caps, dirty tracking."""

    def __init__(self, rule: RuleBase, max_keys: int):
        self.rule = rule
        self.max_keys = rule.max_keys or max_keys
        self.window_ns = int(rule.window * NS)
        self.step = max(self.window_ns // BUCKETS_PER_WINDOW, NS // 10)
        self.series: dict[Key, Series] = {}
        self.dirty: set[Key] = set()
        self.started_at: int | None = None  # event time of the first evaluation (absence, new_term)
        self.meta_dirty = False
        self._dropped = metrics.KEYS_DROPPED.labels(rule.name)
        self._matches = metrics.RULE_MATCHES.labels(rule.name)
        self.matched = 0  # counted here, added to the metric once per evaluation (cheaper per event)
        self._warned: set[str] = set()

    # horizon: how far back buckets are kept
    def horizon_ns(self) -> int:
        return self.window_ns

    def _series(self, key: Key, partition: int) -> Series | None:
        s = self.series.get(key)
        if s is None:
            if len(self.series) >= self.max_keys:
                self._dropped.inc()
                return None
            s = self.series[key] = Series(partition)
        return s

    def observe(self, event: dict, t: int, partition: int = -1, cache: dict | None = None) -> None:
        if self.started_at is None:
            self.started_at = t
            self.meta_dirty = True
        if not self.rule.predicate(event):
            return
        self.matched += 1
        key = self.rule.group_key(event, cache)
        s = self._series(key, partition)
        if s is None:
            return
        self.count(s, event, t)
        self.dirty.add(key)

    def dropped(self, event: dict, t: int, reason: str) -> None:
        """An event this rule cannot count (too late for its window, too far in the future): counted
        when it matches the rule, and logged once per rule and reason."""
        if not self.rule.predicate(event):
            return
        metrics.EVENTS_DROPPED.labels(self.rule.name, reason).inc()
        if reason not in self._warned:
            self._warned.add(reason)
            _log.warning("events dropped for a rule (counted in logtide_alerting_events_dropped_total; "
                         "logged once per rule and reason)",
                         extra={"rule": self.rule.name, "reason": reason, "event_id": event.get("id"), "time_ns": t})

    def adopt(self, old: Evaluator) -> None:
        """Take over the windows of the rule's previous definition (an edit that keeps what they count)."""
        self.series, self.dirty, self.started_at = old.series, old.dirty, old.started_at
        self.meta_dirty = old.meta_dirty

    def count(self, s: Series, event: dict, t: int) -> None:
        s.add(t // self.step)
        s.samples.append(event)
        if t > s.last_seen:
            s.last_seen = t

    def _expire(self, now: int) -> None:
        oldest = (now - self.horizon_ns()) // self.step + 1
        empty = []
        for key, s in self.series.items():
            if s.buckets and s.buckets[0][0] < oldest:
                s.expire(oldest)
                self.dirty.add(key)
            if not s.buckets and self.keep_empty(key, s, now) is False:
                empty.append(key)
        for key in empty:
            del self.series[key]
            self.dirty.add(key)

    def keep_empty(self, key: Key, s: Series, now: int) -> bool:
        return False

    def evaluate(self, now: int) -> dict[Key, Active]:
        if self.started_at is None:
            self.started_at = now
            self.meta_dirty = True
        self._expire(now)
        if self.matched:
            self._matches.inc(self.matched)
            self.matched = 0
        metrics.TRACKED_KEYS.labels(self.rule.name).set(len(self.series))
        return self.active(now)

    def active(self, now: int) -> dict[Key, Active]:
        raise NotImplementedError

    # --- persistence ---
    def take_dirty(self) -> set[Key]:
        d, self.dirty = self.dirty, set()
        return d

    def export(self, key: Key) -> Any | None:
        s = self.series.get(key)
        return s.dump() if s is not None else None

    def restore(self, key: Key, data: Any) -> None:
        self.series[key] = Series.load(data)

    def export_meta(self) -> dict:
        return {"started_at": self.started_at}

    def restore_meta(self, data: dict) -> None:
        self.started_at = data.get("started_at")

    def drop_partitions(self, partitions: set[int]) -> None:
        for key in [k for k, s in self.series.items() if s.partition in partitions]:
            del self.series[key]


class CountEvaluator(Evaluator):
    """match (at least 1) and threshold (at least ``count``) in the window."""

    def __init__(self, rule: RuleBase, max_keys: int):
        super().__init__(rule, max_keys)
        self.at_least = rule.count if isinstance(rule, ThresholdRule) else 1

    def active(self, now: int) -> dict[Key, Active]:
        need = self.at_least
        return {k: Active(s.total, s.sample_list, s.partition) for k, s in self.series.items() if s.total >= need}


class RatioEvaluator(Evaluator):
    rule: RatioRule

    def count(self, s: Series, event: dict, t: int) -> None:
        err = 1 if self.rule._errors_pred(event) else 0
        s.add(t // self.step, 1, err)
        if err:
            s.samples.append(event)
        if t > s.last_seen:
            s.last_seen = t

    def active(self, now: int) -> dict[Key, Active]:
        r = self.rule
        out = {}
        for k, s in self.series.items():
            if s.total >= r.min_total and s.errors / s.total > r.above:
                out[k] = Active(round(s.errors / s.total, 4), s.sample_list, s.partition)
        return out


class SpikeEvaluator(Evaluator):
    rule: SpikeRule

    def __init__(self, rule: SpikeRule, max_keys: int):
        super().__init__(rule, max_keys)
        self.ref_ns = int(rule.reference * NS)

    def horizon_ns(self) -> int:
        return self.window_ns + self.ref_ns

    def active(self, now: int) -> dict[Key, Active]:
        r = self.rule
        if self.started_at is not None and now - self.started_at < self.horizon_ns():
            return {}  # no full reference period yet
        cur_lo = (now - self.window_ns) // self.step + 1
        ref_lo = (now - self.window_ns - self.ref_ns) // self.step + 1
        scale = self.window_ns / self.ref_ns
        out = {}
        for k, s in self.series.items():
            ref = s.between(ref_lo, cur_lo)
            if ref < r.min_reference:
                continue
            cur = s.total - ref
            expected = ref * scale
            ratio = cur / expected if expected else 0.0
            up = ratio >= r.factor
            down = ratio <= 1 / r.factor
            if (r.direction == "up" and up) or (r.direction == "down" and down) or (r.direction == "both" and (up or down)):
                out[k] = Active(round(ratio, 3), s.sample_list, s.partition)
        return out


class AbsenceEvaluator(Evaluator):
    rule: AbsenceRule

    def __init__(self, rule: AbsenceRule, max_keys: int):
        super().__init__(rule, max_keys)
        within = rule.expect_seen_within if rule.expect_seen_within is not None else (0 if rule.expected else 86400)
        self.seen_ns = int(within * NS)
        self.expected = rule.expected_keys()

    def keep_empty(self, key: Key, s: Series, now: int) -> bool:
        return s.last_seen >= now - self.seen_ns  # remembered as "expected" for expect_seen_within

    def active(self, now: int) -> dict[Key, Active]:
        if self.started_at is None or now - self.started_at < self.window_ns:
            return {}  # a full window has not been observed yet
        below = self.rule.below
        out = {}
        for k, s in self.series.items():
            if s.total < below and s.last_seen >= now - self.seen_ns:
                out[k] = Active(s.total, s.sample_list, s.partition)
        for k in self.expected:
            s = self.series.get(k)
            n = s.total if s is not None else 0
            if n < below:
                out[k] = Active(n, s.sample_list if s else _no_samples, s.partition if s else -1)
        return out


class NewTermEvaluator(Evaluator):
    """A term never seen (per group key) after the learning period is active for ``window``."""

    rule: NewTermRule

    def __init__(self, rule: NewTermRule, max_keys: int):
        super().__init__(rule, max_keys)
        self.learning_ns = int(rule.learning * NS)
        self.terms: OrderedDict[Key, int] = OrderedDict()  # (group..., term) -> last seen (LRU order)
        self.terms_dirty: set[Key] = set()
        self._evicted = metrics.NEW_TERMS_EVICTED.labels(rule.name)

    def observe(self, event: dict, t: int, partition: int = -1, cache: dict | None = None) -> None:
        if self.started_at is None:
            self.started_at = t
            self.meta_dirty = True
        if not self.rule.predicate(event):
            return
        value = self.rule._term.get(event)
        if value is None or value == "":
            return
        self.matched += 1
        key = self.rule.group_key(event, cache) + (value if isinstance(value, str) else str(value),)
        terms = self.terms
        known = key in terms
        terms[key] = t
        terms.move_to_end(key)
        self.terms_dirty.add(key)
        if len(terms) > self.rule.max_terms:
            old, _ = terms.popitem(last=False)
            self.terms_dirty.add(old)
            self._evicted.inc()
        if known or t - self.started_at < self.learning_ns:
            return
        s = self._series(key, partition)
        if s is not None:
            self.count(s, event, t)
            self.dirty.add(key)

    def active(self, now: int) -> dict[Key, Active]:
        return {k: Active(1, s.sample_list, s.partition) for k, s in self.series.items() if s.total >= 1}

    def adopt(self, old: Evaluator) -> None:
        super().adopt(old)
        if isinstance(old, NewTermEvaluator):
            self.terms, self.terms_dirty = old.terms, old.terms_dirty

    def export_term(self, key: Key) -> int | None:
        return self.terms.get(key)

    def restore_term(self, key: Key, last_seen: int) -> None:
        self.terms[key] = last_seen

    def take_dirty_terms(self) -> set[Key]:
        d, self.terms_dirty = self.terms_dirty, set()
        return d


def evaluator_for(rule: RuleBase, max_keys: int) -> Evaluator:
    if isinstance(rule, (MatchRule, ThresholdRule)):
        return CountEvaluator(rule, max_keys)
    if isinstance(rule, RatioRule):
        return RatioEvaluator(rule, max_keys)
    if isinstance(rule, SpikeRule):
        return SpikeEvaluator(rule, max_keys)
    if isinstance(rule, AbsenceRule):
        return AbsenceEvaluator(rule, max_keys)
    if isinstance(rule, NewTermRule):
        return NewTermEvaluator(rule, max_keys)
    raise TypeError(f"no evaluator for {type(rule).__name__}")

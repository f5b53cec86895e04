"""Rule evaluation: each rule kind keeps per-key windows and answers "which keys are active now".

``observe(event, t_ns, partition)`` feeds one event (already known to be in this replica's share);
``evaluate(now_ns)`` returns ``(checked, full)``: ``checked`` maps the keys looked at to
``Active(value, samples)`` when the rule's condition holds for them at event time ``now_ns`` and to
None when it does not; with ``full`` every key was looked at (keys missing hold nothing).

Cost proportional to what changed: a key's condition changes only when an event touches it or when
time moves one of its buckets out of the window (spike: when a bucket moves from the current window
into the reference; absence: also when ``expect_seen_within`` runs out). So an evaluation looks at
the keys touched since the last one and at those whose *deadline* passed, from a heap of deadlines
(one live entry per key); the other keys cannot have changed. A full pass happens only when the
rule is new, edited, restored, or when its warm-up (spike reference, absence window) ends.

Groups are capped per rule (``max_groups``: new groups past it are dropped, counted and logged once)
and the new_term store is an LRU of ``max_terms`` values, so an event storm with ever-new keys
cannot grow memory without bound. Dirty keys are tracked for incremental persistence
(``take_dirty`` / ``export`` / ``restore``).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from logtide import log

from logtide.alerting import metrics
from logtide.timeutil import NS
from logtide.alerting.rules import AbsenceRule, MatchRule, NewTermRule, RatioRule, RuleBase, SpikeRule, ThresholdRule
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

    def __init__(self, rule: RuleBase, max_groups: int):
        self.rule = rule
        self.max_groups = rule.max_groups or max_groups
        self.window_ns = int(rule.window * NS)
        self.step = max(self.window_ns // BUCKETS_PER_WINDOW, NS // 10)
        self.series: dict[Key, Series] = {}
        self.dirty: set[Key] = set()
        self.started_at: int | None = None  # event time of the first evaluation (absence, new_term)
        self.meta_dirty = False
        self.touched: set[Key] = set()  # keys fed since the last evaluation
        self._deadlines: list[tuple[int, Key]] = []  # heap of (event time, key): when a key may change
        self._due: dict[Key, int] = {}  # the live heap entry of each key (others are stale)
        self.full = True  # the next evaluation looks at every key
        self._warming = False  # the last evaluation was in the warm-up (see warming())
        self._dropped = metrics.GROUPS_DROPPED.labels(rule.name)
        self._tracked = metrics.TRACKED_KEYS.labels(rule.name)
        self._tracked_n = -1
        self._matches = metrics.RULE_MATCHES.labels(rule.name)
        self.matched = 0  # counted here, added to the metric once per evaluation (cheaper per event)
        self._warned: set[str] = set()

    # horizon: how far back buckets are kept
    def horizon_ns(self) -> int:
        return self.window_ns

    def _series(self, key: Key, partition: int) -> Series | None:
        s = self.series.get(key)
        if s is None:
            if len(self.series) >= self.max_groups:
                self._dropped.inc()
                if "max_groups" not in self._warned:
                    self._warned.add("max_groups")
                    _log.warning(
                        "a rule reached max_groups: events of new groups are dropped (counted in "
                        "logtide_alerting_groups_dropped_total; logged once per rule)",
                        extra={"rule": self.rule.name, "max_groups": self.max_groups},
                    )
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
        self.touched.add(key)

    def dropped(self, event: dict, t: int, reason: str) -> None:
        """An event this rule cannot count (too late for its window, too far in the future): counted
        when it matches the rule, and logged once per rule and reason."""
        if not self.rule.predicate(event):
            return
        metrics.EVENTS_DROPPED.labels(self.rule.name, reason).inc()
        if reason not in self._warned:
            self._warned.add(reason)
            _log.warning(
                "events dropped for a rule (counted in logtide_alerting_events_dropped_total; "
                "logged once per rule and reason)",
                extra={"rule": self.rule.name, "reason": reason, "event_id": event.get("id"), "time_ns": t},
            )

    def adopt(self, old: Evaluator) -> None:
        """Take over the windows of the rule's previous definition (an edit that keeps what they count);
        the next evaluation looks at every key (the condition may have changed)."""
        self.series, self.dirty, self.started_at = old.series, old.dirty, old.started_at
        self.meta_dirty = old.meta_dirty
        self.full = True

    def count(self, s: Series, event: dict, t: int) -> None:
        s.add(t // self.step)
        s.samples.append(event)
        if t > s.last_seen:
            s.last_seen = t

    def keep_empty(self, key: Key, s: Series, now: int) -> bool:
        return False

    def deadline(self, s: Series, now: int) -> int | None:
        """The event time from which the key's condition may change without new events: its oldest
        bucket leaves the window."""
        return s.buckets[0][0] * self.step + self.horizon_ns() if s.buckets else None

    def warming(self, now: int) -> bool:
        """True while the rule cannot hold for any key yet (spike reference, absence window)."""
        return False

    def _schedule(self, key: Key, s: Series | None, now: int) -> None:
        d = self.deadline(s, now) if s is not None else None
        if d is None:
            self._due.pop(key, None)
        elif self._due.get(key) != d:
            self._due[key] = d
            heapq.heappush(self._deadlines, (d, key))

    def _expire_key(self, key: Key, now: int, oldest: int) -> Series | None:
        s = self.series.get(key)
        if s is None:
            return None
        if s.buckets and s.buckets[0][0] < oldest:
            s.expire(oldest)
            self.dirty.add(key)
        if not s.buckets and self.keep_empty(key, s, now) is False:
            del self.series[key]
            self.dirty.add(key)
            return None
        return s

    def evaluate(self, now: int) -> tuple[dict[Key, Active | None], bool]:
        if self.started_at is None:
            self.started_at = now
            self.meta_dirty = True
        if self.matched:
            self._matches.inc(self.matched)
            self.matched = 0
        oldest = (now - self.horizon_ns()) // self.step + 1
        warming = self.warming(now)
        if self._warming and not warming:
            self.full = True  # the warm-up is over: every key may hold now
        self._warming = warming
        if self.full:
            self.full = False
            self.touched = set()
            self._deadlines, self._due = [], {}
            out: dict[Key, Active | None] = {}
            for key in list(self.series):
                s = self._expire_key(key, now, oldest)
                self._schedule(key, s, now)
                act = None if warming else self.holds(key, s, now)
                if act is not None:
                    out[key] = act
            if not warming:
                for key in self.extra_keys():
                    if key not in out:
                        act = self.holds(key, self.series.get(key), now)
                        if act is not None:
                            out[key] = act
            self._tracked_n = len(self.series)
            self._tracked.set(self._tracked_n)
            return out, True
        heap, due = self._deadlines, self._due
        if not self.touched and not (heap and heap[0][0] <= now):
            return {}, False
        keys, self.touched = self.touched, set()
        while heap and heap[0][0] <= now:
            d, key = heapq.heappop(heap)
            if due.get(key) == d:  # not stale
                del due[key]
                keys.add(key)
        checked: dict[Key, Active | None] = {}
        for key in keys:
            s = self._expire_key(key, now, oldest)
            self._schedule(key, s, now)
            checked[key] = None if warming else self.holds(key, s, now)
        if len(self.series) != self._tracked_n:
            self._tracked_n = len(self.series)
            self._tracked.set(self._tracked_n)
        return checked, False

    def extra_keys(self) -> list[Key]:
        """Keys that may hold without a series (absence: the expected keys)."""
        return []

    def holds(self, key: Key, s: Series | None, now: int) -> Active | None:
        """The key's value when the rule's condition holds for it at ``now``, else None."""
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
        self.full = True

    def export_meta(self) -> dict:
        return {"started_at": self.started_at}

    def restore_meta(self, data: dict) -> None:
        self.started_at = data.get("started_at")

    def drop_partitions(self, partitions: set[int]) -> None:
        for key in [k for k, s in self.series.items() if s.partition in partitions]:
            del self.series[key]


class CountEvaluator(Evaluator):
    """match (at least 1) and threshold (at least ``count``) in the window."""

    def __init__(self, rule: RuleBase, max_groups: int):
        super().__init__(rule, max_groups)
        self.at_least = rule.count if isinstance(rule, ThresholdRule) else 1

    def holds(self, key: Key, s: Series | None, now: int) -> Active | None:
        return Active(s.total, s.sample_list, s.partition) if s is not None and s.total >= self.at_least else None


class RatioEvaluator(Evaluator):
    rule: RatioRule

    def count(self, s: Series, event: dict, t: int) -> None:
        err = 1 if self.rule._errors_pred(event) else 0
        s.add(t // self.step, 1, err)
        if err:
            s.samples.append(event)
        if t > s.last_seen:
            s.last_seen = t

    def holds(self, key: Key, s: Series | None, now: int) -> Active | None:
        r = self.rule
        if s is not None and s.total >= r.min_total and s.errors / s.total > r.above:
            return Active(round(s.errors / s.total, 4), s.sample_list, s.partition)
        return None


class SpikeEvaluator(Evaluator):
    rule: SpikeRule

    def __init__(self, rule: SpikeRule, max_groups: int):
        super().__init__(rule, max_groups)
        self.ref_ns = int(rule.reference * NS)

    def horizon_ns(self) -> int:
        return self.window_ns + self.ref_ns

    def warming(self, now: int) -> bool:
        return self.started_at is not None and now - self.started_at < self.horizon_ns()  # no full reference yet

    def deadline(self, s: Series, now: int) -> int | None:
        # at every bucket boundary a bucket moves from the current window into the reference
        return (now // self.step + 1) * self.step if s.buckets else None

    def holds(self, key: Key, s: Series | None, now: int) -> Active | None:
        r = self.rule
        if s is None:
            return None
        cur_lo = (now - self.window_ns) // self.step + 1
        ref_lo = (now - self.window_ns - self.ref_ns) // self.step + 1
        ref = s.between(ref_lo, cur_lo)
        if ref < r.min_reference:
            return None
        cur = s.total - ref
        expected = ref * (self.window_ns / self.ref_ns)
        ratio = cur / expected if expected else 0.0
        up = ratio >= r.factor
        down = ratio <= 1 / r.factor
        if (r.direction == "up" and up) or (r.direction == "down" and down) or (r.direction == "both" and (up or down)):
            return Active(round(ratio, 3), s.sample_list, s.partition)
        return None


class AbsenceEvaluator(Evaluator):
    rule: AbsenceRule

    def __init__(self, rule: AbsenceRule, max_groups: int):
        super().__init__(rule, max_groups)
        within = rule.expect_seen_within if rule.expect_seen_within is not None else (0 if rule.expected else 86400)
        self.seen_ns = int(within * NS)
        self.expected = rule.expected_keys()
        self._expected = set(self.expected)

    def keep_empty(self, key: Key, s: Series, now: int) -> bool:
        return s.last_seen >= now - self.seen_ns  # remembered as "expected" for expect_seen_within

    def warming(self, now: int) -> bool:
        return self.started_at is None or now - self.started_at < self.window_ns  # no full window observed yet

    def deadline(self, s: Series, now: int) -> int | None:
        gone = s.last_seen + self.seen_ns + 1  # no longer expected from then on
        expiry = super().deadline(s, now)
        return gone if expiry is None else min(expiry, gone)

    def extra_keys(self) -> list[Key]:
        return self.expected

    def holds(self, key: Key, s: Series | None, now: int) -> Active | None:
        below = self.rule.below
        if key in self._expected:
            n = s.total if s is not None else 0
            return Active(n, s.sample_list if s else _no_samples, s.partition if s else -1) if n < below else None
        if s is not None and s.total < below and s.last_seen >= now - self.seen_ns:
            return Active(s.total, s.sample_list, s.partition)
        return None


class NewTermEvaluator(Evaluator):
    """A term never seen (per group key) after the learning period is active for ``window``."""

    rule: NewTermRule

    def __init__(self, rule: NewTermRule, max_groups: int):
        super().__init__(rule, max_groups)
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
            self.touched.add(key)

    def holds(self, key: Key, s: Series | None, now: int) -> Active | None:
        return Active(1, s.sample_list, s.partition) if s is not None and s.total >= 1 else None

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


def evaluator_for(rule: RuleBase, max_groups: int) -> Evaluator:
    if isinstance(rule, (MatchRule, ThresholdRule)):
        return CountEvaluator(rule, max_groups)
    if isinstance(rule, RatioRule):
        return RatioEvaluator(rule, max_groups)
    if isinstance(rule, SpikeRule):
        return SpikeEvaluator(rule, max_groups)
    if isinstance(rule, AbsenceRule):
        return AbsenceEvaluator(rule, max_groups)
    if isinstance(rule, NewTermRule):
        return NewTermEvaluator(rule, max_groups)
    raise TypeError(f"no evaluator for {type(rule).__name__}")

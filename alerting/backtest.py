"""Rules run over recorded events, offline: ``logtide alert test`` (a file) and ``logtide alert
backtest`` (a window of a topic). Nobody is notified: the notifications the engine would send are
printed.

The events go through the engine's own code (``AlertEngine.ingest``) in batches, on the event
clock, evaluated at every distinct event time, as the engine would evaluate them one by one; an
evaluation costs the keys that changed (see evaluators.py), so a backtest is linear in events.
After the last event, time runs on until the alerts resolve (absence rules stop at the last event:
past it, every key would look silent). The summary gives, per rule, the alerts fired and the first
and last firing, and the peak of groups the rules tracked at once.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO
from collections.abc import Callable, Iterable

from logtide.timeutil import NS

from logtide.alerting.config import AlertConfig
from logtide.alerting.rules import AbsenceRule, RuleBase

BATCH = 2000


def offline_config(config: AlertConfig | None) -> AlertConfig:
    """The config on the event clock (one webhook receiver, grouped by alertname, when none is given)."""
    if config is None:
        config = AlertConfig(
            route={"receiver": "default", "group_by": ["alertname"], "group_wait": "0s"},
            receivers=[{"name": "default", "webhook": [{"url": "http://example.invalid/"}]}],
        )
    return config.model_copy(update={"clock": config.clock.model_copy(update={"mode": "event"})})


@dataclass
class RuleSummary:
    alerts: set[str] = field(default_factory=set)  # fingerprints that fired
    firings: int = 0
    first: int = 0
    last: int = 0


@dataclass
class Progress:
    """A progress line on stderr, at most once a second (only when asked: a TTY or --progress)."""

    total: int | None
    out: TextIO | None
    done: int = 0
    _shown: float = field(default=0.0)

    def advance(self, n: int) -> None:
        self.done += n
        if self.out is None or time.monotonic() - self._shown < 1.0:
            return
        self._shown = time.monotonic()
        of = f"/{self.total} ({100 * self.done // self.total}%)" if self.total else ""
        self.out.write(f"\r{self.done}{of} events")
        self.out.flush()

    def close(self) -> None:
        if self.out is not None and self._shown:
            self.out.write(f"\r{self.done} events\n")
            self.out.flush()


class Backtest:
    def __init__(self, rules: list[RuleBase], config: AlertConfig | None = None, echo: Callable[[str], None] = print):
        from logtide.alerting.engine import AlertEngine
        from logtide.alerting.store import Store

        self.rules = rules
        self.config = offline_config(config)
        self.echo = echo
        self.notifications: list[str] = []
        self.per_rule = {r.name: RuleSummary() for r in rules}
        self.events = 0
        self.peak_groups = 0
        self._changes: dict[str, str] = {}  # fingerprint -> state before the evaluation
        self.engine = AlertEngine(self.config, rules, Store(":memory:"), notify=self._notify, eval_step_ns=1)
        self.engine.states.on_change = self._changed
        self.engine.after_evaluate = self._print_changes

    def _changed(self, fp: str, before: str) -> None:
        self._changes.setdefault(fp, before)

    def _print_changes(self) -> None:
        if not self._changes:
            return
        from logtide.alerting.state import rfc3339

        changes, self._changes = self._changes, {}
        alerts, order = self.engine.states.alerts, self.engine.states.order
        for fp, before in sorted(changes.items(), key=lambda c: order.get(c[0], -1)):
            a = alerts.get(fp)
            if a is None or a.state == before:
                continue
            labels = ", ".join(f'{k}="{v}"' for k, v in sorted(a.labels.items()))
            when = {"pending": a.active_at, "firing": a.fired_at, "resolved": a.resolved_at}[a.state]
            self.echo(f"{rfc3339(when)}  {a.state.upper():8} {{{labels}}} value={a.value}")
            if a.state == "firing":
                s = self.per_rule.setdefault(a.rule, RuleSummary())
                s.alerts.add(fp)
                s.firings += 1
                s.first = s.first or a.fired_at
                s.last = a.fired_at

    def _notify(self, n) -> None:
        from logtide.alerting.delivery import sendable
        from logtide.alerting.state import rfc3339
        from logtide.alerting.templates import DEFAULT_TEXT, DEFAULT_TITLE, context, fallback_text

        engine = self.engine
        engine.nflog.log(n.group_key, n.integration, n.firing, n.resolved, n.now)
        if not sendable(n):  # what the delivery worker does: the log learns it, nobody is sent it
            return
        ctx = context(n, self.config.external_url)
        fallback = fallback_text(n)
        title = engine.templates.render_or(
            self._template(n, "title", DEFAULT_TITLE), ctx, fallback.splitlines()[0], n.receiver
        )
        text = engine.templates.render_or(self._template(n, "text", DEFAULT_TEXT), ctx, fallback, n.receiver)
        self.notifications.append(
            f"--- notification at {rfc3339(n.now)} to {n.integration} ({n.status}, "
            f"group {n.group_key})\n{title}\n{text}"
        )

    def _template(self, n, which: str, default: str) -> str:
        for integ in self.engine.integrations.get(n.receiver, []):
            if integ.id == n.integration:
                cfg = getattr(integ, "config", None)
                return (
                    getattr(cfg, which, None)
                    or (getattr(cfg, "summary", None) if which == "title" else None)
                    or default
                )
        return default

    def feed(self, events: list[dict]) -> None:
        """One batch of events (each an envelope), through the engine's ingest."""
        self.engine.ingest([(ev, 0) for ev in events])
        self.events += len(events)
        groups = sum(len(ev.series) for ev in self.engine.evaluators.values())
        if groups > self.peak_groups:
            self.peak_groups = groups

    def run(self, batches: Iterable[list[dict]], progress: Progress | None = None) -> None:
        for batch in batches:
            self.feed(batch)
            if progress is not None:
                progress.advance(len(batch))
        if progress is not None:
            progress.close()
        self.finish()

    def finish(self) -> None:
        """Run time on after the last event until every alert resolved and its notifications went out."""
        from logtide.alerting.state import FIRING, PENDING

        engine = self.engine
        for name in [n for n, ev in engine.evaluators.items() if isinstance(ev.rule, AbsenceRule)]:
            del engine.evaluators[name]
        routes = list(engine.dispatcher.root.walk())
        tail = max(
            (r.window + getattr(r, "reference", 0.0) + r.for_ + r.keep_firing_for for r in self.rules), default=0.0
        )
        tail += max(r.group_wait + r.group_interval for r in routes)
        t, end = engine.clock.now(), engine.clock.now() + int(tail * NS)
        while t < end:
            t += NS  # one evaluation per second of event time, as the engine's ticker
            engine.advance_to(t)
            counts = engine.states.counts()
            if not counts[PENDING] and not counts[FIRING] and not engine.dispatcher.groups:
                break

    def report(self, out: TextIO | None = None) -> int:
        """Print the notifications and the summary; the number of alerts fired."""
        from logtide.alerting.state import rfc3339

        out = out or sys.stdout
        for block in self.notifications:
            print(block, file=out)
        fired = sum(len(s.alerts) for s in self.per_rule.values())
        print(
            f"summary: {self.events} events, {len(self.rules)} rules, peak {self.peak_groups} active groups", file=out
        )
        for name, s in self.per_rule.items():
            span = f" ({s.firings} firings), first {rfc3339(s.first)}, last {rfc3339(s.last)}" if s.firings else ""
            print(f"  {name}: {len(s.alerts)} alerts fired{span}", file=out)
        print(
            f"{self.events} events, {len(self.rules)} rules: {fired} alerts fired, "
            f"{len(self.notifications)} notifications",
            file=out,
        )
        self.engine.store.close()
        return fired


#: records are read this far past --to before a partition is closed: timestamps only roughly grow
#: with offsets (producers' clocks differ), as `logtide replay` reads them
WINDOW_GRACE_MS = 60_000


class TopicWindow:
    """The records of some topics stamped in [start, end): from offsets_for_times(start) to the
    exact end of each partition now (new records are not chased), a partition closed at its first
    record stamped past ``end`` + grace; records outside the window are skipped. Decoded envelopes,
    in batches."""

    def __init__(self, consumer, ranges: dict, start_ns: int, end_ns: int):
        from logtide.topics import RangeReader

        self.consumer = consumer
        self.start_ms, self.end_ms = start_ns // 1_000_000, end_ns // 1_000_000
        self.total = sum(e - s for s, e in ranges.values())
        self.reader = RangeReader(consumer, ranges, max_batch=BATCH)
        self.records = 0
        self.undecodable = 0

    def batches(self, size: int) -> Iterable[list[dict]]:
        from logtide import envelope

        for records in self.reader.batches():
            out = []
            for rec in records:
                ts = rec.timestamp
                if ts is not None and ts >= self.end_ms + WINDOW_GRACE_MS:
                    self.reader.finish(rec.tp)
                    continue
                if ts is not None and not self.start_ms <= ts < self.end_ms:
                    continue
                try:
                    out.append(envelope.decode(rec.value))
                except envelope.EnvelopeError:
                    self.undecodable += 1
            self.records += len(out)
            if out:
                yield out

    def close(self) -> None:
        self.consumer.close()


def topic_window(transport, topics: list[str], start_ns: int, end_ns: int) -> TopicWindow:
    from logtide.cli import UsageError
    from logtide.topics import exact_end_offsets

    consumer = transport.consumer(None)
    parts = []
    for topic in topics:
        found = consumer.partitions_for(topic)
        if not found:
            consumer.close()
            raise UsageError(f"topic {topic!r} does not exist (see `logtide topics`)")
        parts += found
    ends = exact_end_offsets(consumer, parts)
    firsts = consumer.offsets_for_times({tp: start_ns // 1_000_000 for tp in parts})
    ranges = {}
    for tp in parts:
        end = ends.get(tp, 0)
        first = firsts.get(tp)
        ranges[tp] = (end if first is None else min(first, end), end)
    return TopicWindow(consumer, ranges, start_ns, end_ns)

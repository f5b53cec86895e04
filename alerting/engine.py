"""The alerting engine: events in, alerts and notifications out.

``AlertEngine`` holds the rules' windows, the alert states, silences, the dispatcher and the
notification log; it is transport-free (``logtide alert test`` drives it from a file). The services
around it: ``EngineLoop`` consumes ``logtide.route.monitoring`` (configurable) with
``logtide.consume.BatchLoop``, decodes envelopes (bad ones go to the DLQ with the reason), feeds the
engine and returns only after the batch's state is in SQLite, so the offsets are committed after the
state is durable; ``Ticker`` evaluates between batches (group timers run on the wall clock, see
clock.py), lets the event clock go live once a catch-up is over and reloads changed rule files.

Scale-out by partition. Kafka keys keep one stream (pod+container, log group+stream …) on one
partition, so a rule whose group key includes the stream key (``shard.stream_key_fields``, or
``partitioned: true`` on the rule) sees all events of each of its groups on one partition. Run N
replicas with ``shard.mode: partitioned`` in one consumer group: each evaluates those rules for the
partitions it owns, keeps their state tagged by partition, drops it on revoke and reloads what its
store has on assign. Rules whose groups span streams (e.g. per service across pods) need every
event: run exactly one more replica with ``shard.mode: global`` and its own ``group_id``. With
``shard.mode: all`` (the default) one replica runs every rule.
The store is each replica's own SQLite file (a volume per pod, e.g. a StatefulSet): a partition that
moves to another replica starts its windows afresh there, and that replica's notification log does
not know what the previous owner sent, so a group that was already notified can be notified once
more after a rebalance.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from operator import itemgetter
from pathlib import Path
from collections.abc import Callable

import orjson

from logtide import envelope, log
from logtide.consume import BatchLoop, Retry
from logtide.dlq import DeadLetters
from logtide.transport import Record, TopicPartition, Transport

from logtide.alerting import metrics
from logtide.alerting.clock import OK, Clock
from logtide.alerting.config import AlertConfig
from logtide.alerting.delivery import Delivery
from logtide.alerting.dispatch import Dispatcher, Integration, Notification
from logtide.timeutil import NS
from logtide.alerting.evaluators import Evaluator, NewTermEvaluator, evaluator_for
from logtide.alerting.inhibition import Inhibitor
from logtide.alerting.matchers import matches_all
from logtide.alerting.nflog import Entry, NotificationLog
from logtide.alerting.notifiers import build_integrations
from logtide.alerting.routing import RouteNode
from logtide.alerting.rules import RuleBase, load_rules
from logtide.alerting.silences import Silence, Silences
from logtide.alerting.state import FIRING, RESOLVED, Alert, AlertStates, rfc3339
from logtide.alerting.store import Batch, Store
from logtide.alerting.templates import Templates
from logtide.alerting.timeintervals import TimeIntervals

_log = log.get("alerting.engine")

META_KEY = "__meta__"
TERM_KEY = "__term__"
ALERT_SAVE_EVERY_NS = 30 * NS
#: within a batch that spans more event time than this (a backlog), rules are evaluated at each step,
#: so a burst in the middle of a backlog fires as it would have live
EVAL_STEP_NS = 1 * NS


def _key_str(key: tuple) -> str:
    return orjson.dumps(list(key)).decode()


class AlertEngine:
    def __init__(
        self,
        config: AlertConfig,
        rules: list[RuleBase],
        store: Store,
        notify: Callable[[Notification], None] | None = None,
        on_sent=None,
        eval_step_ns: int = EVAL_STEP_NS,
    ):
        self.config = config
        self.eval_step_ns = eval_step_ns  # backtests: 1 (every distinct event time, as one event at a time)
        self.after_evaluate: Callable[[], None] | None = None
        self.lock = threading.RLock()
        self.store = store
        self.templates = Templates()
        self.clock = Clock(config.clock)
        self.states = AlertStates(self.templates.annotations, config.limits.resolved_retention_seconds)
        self.silences = Silences(on_change=lambda s: store.put_silence(s.id, s.to_dict()))
        self.nflog = NotificationLog(persist=lambda key, e: store.put_nflog(key[0], key[1], e.to_dict()))
        self.integrations = {
            r.name: build_integrations(r, config.external_url, self.templates) for r in config.receivers
        }
        self.delivery = Delivery(config.receivers, self.integrations, self.nflog, on_sent, self._refused)
        self.dispatcher = Dispatcher(
            RouteNode(config.route),
            {
                name: [Integration(i.id, i.send_resolved, i.resend_ns) for i in ints]
                for name, ints in self.integrations.items()
            },
            self.nflog,
            self.silences,
            Inhibitor(config.inhibit_rules),
            TimeIntervals(config.time_intervals),
            enqueue=notify if notify is not None else self.delivery.enqueue,
            firing_alerts=self._firing,
        )
        self.evaluators: dict[str, Evaluator] = {}
        self.signatures: dict[str, str | None] = {}
        self.applied: dict[tuple[str, int], int] = {}  # (topic, partition) -> next offset to apply
        self.partitioned_mode = config.shard.mode == "partitioned"
        self._alert_saved: dict[str, int] = {}
        self._refreshed = 0
        self._alert_gauges: dict[str, int] = {}  # the counts last shown in logtide_alerting_alerts
        self._recent_ids: OrderedDict[str, None] = OrderedDict()  # ids are deterministic: duplicates repeat them
        self.reset_windows: set[str] = set()  # rules whose stored windows must go (edited definition)
        self._last_input = time.monotonic()  # records or an assignment: the clock goes live when quiet
        self._input_assigned = False
        self.set_rules(rules, restoring=True)
        self._restore()

    # --- rules ---
    def _runs_here(self, rule: RuleBase) -> bool:
        mode = self.config.shard.mode
        if mode == "all":
            return True
        part = rule.is_partitioned(self.config.shard.stream_key_fields)
        return part if mode == "partitioned" else not part

    def set_rules(self, rules: list[RuleBase], restoring: bool = False) -> None:
        """Install rules, as Prometheus does on reload: an alert whose rule name and labels are
        unchanged keeps its state (an edited summary or threshold does not resolve and re-page it);
        a removed rule, or one whose labels or grouping changed, resolves its alerts now. Windows are
        kept when the edit does not change what they count (condition, grouping, window …)."""
        with self.lock:
            wanted = {r.name: r for r in rules if self._runs_here(r)}
            now, timers = self.clock.now(), self.clock.timers()
            for name in list(self.evaluators):
                old = self.evaluators[name]
                new = wanted.get(name)
                if new is not None and new.signature() == old.rule.signature():
                    continue
                del self.evaluators[name]
                if new is None or new.labels_signature() != old.rule.labels_signature():
                    closing = old.rule.model_copy(update={"keep_firing_for": 0.0})
                    for a in self.states.update(closing, {}, now):
                        self.dispatcher.put(a, timers)
                self.states.rule_changed(name)
                if new is None:
                    self.signatures[name] = None
                    continue
                ev = self.evaluators[name] = evaluator_for(new, self.config.limits.max_groups_per_rule)
                if new.window_signature() == old.rule.window_signature():
                    ev.adopt(old)
                else:
                    self.reset_windows.add(name)
                self.signatures[name] = new.window_signature()
            for name, rule in wanted.items():
                if name not in self.evaluators:
                    self.evaluators[name] = evaluator_for(rule, self.config.limits.max_groups_per_rule)
                    self.signatures[name] = rule.window_signature()

    def _refused(self, n: Notification) -> None:
        with self.lock:
            self.dispatcher.not_delivered(n.group_key, n.integration)

    # --- restore after restart ---
    def _restore(self) -> None:
        stored = self.store.signatures()
        for name, ev in self.evaluators.items():
            if stored.get(name) == ev.rule.window_signature():
                self._restore_windows(ev, None)
            elif name in stored:
                self.reset_windows.add(name)  # edited while stopped: its old windows count something else
        for name in stored:
            if name not in self.evaluators:
                self.signatures[name] = None
        self.clock.restore(self.store.meta("watermark", 0) or 0)
        now, timers = self.clock.now(), self.clock.timers()
        for d in self.store.alerts():
            a = Alert.from_dict(d)
            self._alert_saved[a.fingerprint] = a.last_true
            if a.rule not in self.evaluators and a.state == FIRING:
                # its rule was removed while we were stopped: resolve it (its receivers were told it fires)
                a.state, a.resolved_at = RESOLVED, max(now, a.last_true)
                self.states.dirty.add(a.fingerprint)
            self.states.restore(a)
            if a.state in (FIRING, RESOLVED):
                self.dispatcher.put(a, timers)
        for d in self.store.silences():
            self.silences.restore(Silence.from_dict(d))
        for g, i, d in self.store.nflog():
            self.nflog.restore(g, i, Entry.from_dict(d))
        self.applied = self.store.offsets()

    def _restore_windows(self, ev: Evaluator, partitions: set[int] | None) -> None:
        for key_s, data in self.store.windows(ev.rule.name):
            key = tuple(orjson.loads(key_s))
            if key and key[0] == META_KEY:
                if partitions is None:
                    ev.restore_meta(data)
            elif key and key[0] == TERM_KEY:
                if partitions is None and isinstance(ev, NewTermEvaluator):
                    ev.restore_term(key[1:], data)
            elif partitions is None or data.get("p") in partitions:
                ev.restore(key, data)

    # --- partitions (scale-out) ---
    def partitions_assigned(self, parts: list[TopicPartition]) -> None:
        self._input_assigned = True
        self._last_input = time.monotonic()
        if not self.partitioned_mode:
            return
        ids = {tp.partition for tp in parts}
        with self.lock:
            for ev in self.evaluators.values():
                self._restore_windows(ev, ids)
                ev.full = True  # the alerts restored below are looked at with every key
            self.applied.update({k: v for k, v in self.store.offsets().items() if k[1] in ids})
            now = self.clock.timers()
            for d in self.store.alerts():  # alerts of these partitions from when we owned them last
                a = Alert.from_dict(d)
                if a.partition in ids and a.rule in self.evaluators and a.fingerprint not in self.states.alerts:
                    self.states.restore(a)
                    if a.state in (FIRING, RESOLVED):
                        self.dispatcher.put(a, now)

    def partitions_revoked(self, parts: list[TopicPartition]) -> None:
        if not self.partitioned_mode:
            return
        ids = {tp.partition for tp in parts}
        with self.lock:
            for ev in self.evaluators.values():
                ev.drop_partitions(ids)
            gone = {fp for fp, a in self.states.alerts.items() if a.partition in ids}
            self.states.drop_partitions(ids)
            self.states.take_dirty()  # their rows stay in the store for when we own them again
            self.dispatcher.drop(gone)

    # --- the work ---
    def _firing(self) -> list[tuple[str, dict]]:
        return [(fp, a.labels) for fp, a in self.states.alerts.items() if a.state == FIRING]

    def ingest(self, events: list[tuple[dict, int]]) -> None:
        """Feed events (with their partition) and evaluate. Events are taken in event-time order;
        when a batch spans more than EVAL_STEP_NS (a backlog) the rules are evaluated along the way."""
        with self.lock:
            self._last_input = time.monotonic()
            evs = list(self.evaluators.values())
            clock = self.clock
            recent, cap, dups = self._recent_ids, self.config.limits.dedup_ids, 0
            wall = time.time_ns()
            admitted: list[tuple[int, dict, int]] = []
            refused: dict[str, int] = {}
            for event, partition in events:
                if cap:
                    eid = event.get("id")
                    if eid in recent:
                        dups += 1
                        continue
                    recent[eid] = None
                    if len(recent) > cap:
                        recent.popitem(last=False)
                t = event.get("time") or event.get("observed_time") or event.get("ingest_time") or clock.now() or wall
                t, verdict = clock.admit(t, wall)
                if verdict is not OK:
                    refused[verdict] = refused.get(verdict, 0) + 1
                    for ev in evs:
                        ev.dropped(event, t, verdict)
                    continue
                admitted.append((t, event, partition))
            admitted.sort(key=itemgetter(0))
            now = clock.now()
            floors = [(ev, now - ev.horizon_ns()) for ev in evs]
            latest = 0
            fed = False  # events fed since the last evaluation
            for t, event, partition in admitted:
                if t > latest and self._advance_before(latest if fed else 0, t, now):
                    now, fed = clock.now(), False
                    floors = [(ev, now - ev.horizon_ns()) for ev in evs]
                fed = True
                cache: dict = {}  # group keys of this event, shared by rules with the same group_by
                for ev, floor in floors:
                    if t < floor:
                        ev.dropped(event, t, "too_late")  # its window has passed for this rule
                    else:
                        ev.observe(event, t, partition, cache)
                if t > latest:
                    latest = t
            if latest:
                clock.observe(latest)
            metrics.EVENTS.labels("evaluated").inc(len(admitted))
            if dups:
                metrics.EVENTS.labels("duplicate").inc(dups)
            for verdict, n in refused.items():
                metrics.EVENTS.labels(verdict).inc(n)
            self.evaluate()

    def _advance_before(self, latest: int, t: int, now: int) -> bool:
        """Before an event at ``t``: when the batch moved on in event time, evaluate what came so far
        (events up to ``latest``, 0 if none since the last evaluation at ``now``); while catching up,
        also flush the groups due before ``t`` (their timers run on the backlog's time). True when
        it evaluated."""
        clock, moved = self.clock, False
        if latest and t - now >= self.eval_step_ns:
            clock.observe(latest)
            self.evaluate()
            moved = True
        due = self.dispatcher.next_due()
        while not clock.live and due is not None and clock.now() < due <= t:
            clock.observe(due)
            self.evaluate()
            moved = True
            due = self.dispatcher.next_due()
        return moved

    def evaluate(self, now: int | None = None) -> None:
        with self.lock:
            now = self.clock.now() if now is None else now
            timers = self.clock.timers()
            if now > 0:  # before the first event of a catch-up there is no event time yet
                for ev in self.evaluators.values():
                    checked, full = ev.evaluate(now)
                    for a in self.states.update(ev.rule, checked, now, full):
                        self.dispatcher.put(a, timers)
            released = self.dispatcher.tick(timers, self.clock.wall())
            if released:
                self.states.forget_resolved(released)
            counts = self.states.counts_by_state
            if counts != self._alert_gauges:
                for state, n in counts.items():
                    metrics.ALERTS.labels(state).set(n)
                self._alert_gauges = dict(counts)
            if self.after_evaluate is not None:
                self.after_evaluate()

    def tick(self) -> None:
        """Flush the groups that are due (cheap; between full evaluations); let the clock go live
        once the input is quiet after a catch-up."""
        with self.lock:
            if not self.clock.live:
                quiet = time.monotonic() - self._last_input
                if quiet * NS >= self.clock.lateness_ns and (
                    self._input_assigned or quiet >= 2 * self.config.session_timeout_seconds
                ):
                    self.clock.go_live("the input is quiet")
            released = self.dispatcher.tick(self.clock.timers(), self.clock.wall())
            if released:
                self.states.forget_resolved(released)

    def advance_to(self, t: int) -> None:
        """Move event time forward without events (tests, ``alert test``) and evaluate."""
        with self.lock:
            self.clock.observe(t)
            self.evaluate()

    def persist(self, offsets: dict[tuple[str, int], int] | None = None) -> None:
        """Write what changed since the last call in one transaction (then offsets may be committed)."""
        with self.lock:
            batch = Batch()
            now = self.clock.now()
            if now - self._refreshed >= ALERT_SAVE_EVERY_NS:
                self.states.refresh(now)  # alerts that hold: their last_true, now and then (not every batch)
                self._refreshed = now
            for fp in self.states.take_dirty():
                a = self.states.alerts.get(fp)
                if a is None:
                    batch.alerts[fp] = None
                    self._alert_saved.pop(fp, None)
                    continue
                saved = self._alert_saved.get(fp)
                # last_true moves at every evaluation: write it now and then, state changes always
                if (
                    saved is None
                    or a.state != "firing"
                    or a.last_true - saved >= ALERT_SAVE_EVERY_NS
                    or a.fired_at >= saved
                ):
                    batch.alerts[fp] = a.to_dict()
                    self._alert_saved[fp] = a.last_true
            for name, ev in self.evaluators.items():
                for key in ev.take_dirty():
                    batch.windows[(name, _key_str(key))] = ev.export(key)
                if ev.meta_dirty:
                    batch.windows[(name, _key_str((META_KEY,)))] = ev.export_meta()
                    ev.meta_dirty = False
                if isinstance(ev, NewTermEvaluator):
                    for key in ev.take_dirty_terms():
                        batch.windows[(name, _key_str((TERM_KEY,) + key))] = ev.export_term(key)
            batch.signatures.update(self.signatures)
            self.signatures = {}
            batch.reset_windows, self.reset_windows = self.reset_windows, set()
            if offsets:
                batch.offsets.update(offsets)
                self.applied.update(offsets)
            batch.meta["watermark"] = self.clock.watermark
            self.store.save(batch)

    # --- reads for the API ---
    def alerts_api(
        self,
        state: str | None = None,
        matchers: list | None = None,
        active: bool = True,
        silenced: bool = True,
        inhibited: bool = True,
        unprocessed: bool = True,
        receiver: re.Pattern | None = None,
    ) -> list[dict]:
        """Alerts as Alertmanager's ``GET /api/v2/alerts`` gives them (so amtool reads them), plus
        logtide's own ``state`` (pending/firing/resolved), ``activeAt``, ``value`` and ``silencedBy``.
        Pending and resolved alerts have status ``unprocessed`` (Alertmanager would not have them)."""
        url = self.config.external_url
        with self.lock:
            wall = self.clock.wall()
            firing = self._firing() if self.dispatcher.inhibitor.rules else []
            out = []
            for a in self.states.alerts.values():
                if state and a.state != state:
                    continue
                if matchers and not matches_all(matchers, a.labels):
                    continue
                receivers = sorted({r.receiver for r in self.dispatcher.root.match(a.labels)})
                if receiver is not None and not any(receiver.fullmatch(r) for r in receivers):
                    continue
                silenced_by = self.silences.silenced_by(a.labels, wall)
                inhibitor = (
                    self.dispatcher.inhibitor.inhibited_by(a.labels, a.fingerprint, firing)
                    if a.state == FIRING and firing
                    else None
                )
                inhibited_by = [inhibitor] if inhibitor else []
                if a.state != FIRING:
                    status, shown = "unprocessed", unprocessed
                elif silenced_by or inhibited_by:
                    status = "suppressed"
                    shown = (silenced and bool(silenced_by)) or (inhibited and bool(inhibited_by))
                else:
                    status, shown = "active", active
                if not shown and not state:
                    continue
                d = a.api(url)
                d["status"] = {"state": status, "silencedBy": silenced_by, "inhibitedBy": inhibited_by}
                d["receivers"] = [{"name": r} for r in receivers]
                d["updatedAt"] = rfc3339(a.last_true)
                d["state"] = a.state
                d["activeAt"] = rfc3339(a.active_at)
                d["value"] = a.value
                d["silencedBy"] = silenced_by
                out.append(d)
            return out

    def groups_api(self) -> list[dict]:
        with self.lock:
            return [g.api(self.config.external_url) for g in self.dispatcher.groups.values()]


class EngineLoop:
    """Kafka → engine, committing offsets only after the state is durable."""

    name = "alert-engine"

    def __init__(self, engine: AlertEngine, transport: Transport, config: AlertConfig, **loop_overrides):
        self.engine = engine
        self.producer = transport.producer()
        self.dlq = DeadLetters(self.producer, "alerting")
        loop_overrides.setdefault("session_timeout_seconds", config.session_timeout_seconds)
        self.loop = BatchLoop(
            transport,
            component="alerting",
            group_id=config.group_id,
            topics=config.topics,
            handler=self.handle,
            on_assign=engine.partitions_assigned,
            on_revoke=engine.partitions_revoked,
            max_batch=config.batch_max_records,
            poll_timeout=config.batch_max_wait_seconds,
            **loop_overrides,
        )

    def ready(self) -> bool:
        return self.loop.ready()

    def handle(self, records: list[Record]) -> None:
        events: list[tuple[dict, int]] = []
        offsets: dict[tuple[str, int], int] = {}
        applied = self.engine.applied
        bad = 0
        for rec in records:
            k = (rec.topic, rec.partition)
            if rec.offset + 1 > offsets.get(k, 0):
                offsets[k] = rec.offset + 1
            if rec.offset < applied.get(k, 0):
                metrics.EVENTS.labels("replayed").inc()
                continue  # already applied before a restart: do not count it twice
            try:
                events.append((envelope.decode(rec.value), rec.partition))
            except envelope.EnvelopeError as exc:
                self.dlq.send(rec, "alerting.decode", exc)
                bad += 1
        if bad:
            metrics.EVENTS.labels("dead_letter").inc(bad)
            if self.producer.flush(30) > 0:
                raise Retry("DLQ records not acknowledged")
        try:
            started = time.perf_counter()
            self.engine.ingest(events)
            evaluated = time.perf_counter()
            self.engine.persist(offsets)
            metrics.BATCH_SECONDS.labels("evaluate").observe(evaluated - started)
            metrics.BATCH_SECONDS.labels("persist").observe(time.perf_counter() - evaluated)
        except Exception as exc:
            import sqlite3

            if isinstance(exc, sqlite3.Error):
                raise Retry(f"alert state store: {exc}") from exc
            raise

    def run(self, stop: threading.Event) -> None:
        try:
            self.loop.run(stop)  # waits for its topics: alerting may start before the processors
        finally:
            self.producer.flush(10)
            self.producer.close()


class Ticker:
    """Moves time on between batches and reloads edited rule files (bad edits are refused, logged
    and counted; the running rules stay)."""

    name = "alert-ticker"

    def __init__(
        self,
        engine: AlertEngine,
        rule_paths: list[Path],
        interval: float = 0.1,
        reload_interval_seconds: float = 5.0,
        evaluate_interval: float = 1.0,
    ):
        self.engine = engine
        self.evaluate_interval = evaluate_interval
        self.rule_paths = rule_paths
        self.interval = interval
        self.reload_interval_seconds = reload_interval_seconds
        self._mtimes = self._stat()

    def _stat(self) -> dict[Path, float]:
        out = {}
        for p in self.rule_paths:
            try:
                out[p] = p.stat().st_mtime_ns
            except OSError:
                out[p] = 0
        return out

    def reload_if_changed(self) -> bool:
        mtimes = self._stat()
        if mtimes == self._mtimes:
            return False
        self._mtimes = mtimes
        try:
            rules = load_rules(self.rule_paths)
        except Exception as exc:  # ConfigError mostly; never let a bad edit stop alerting
            metrics.RULE_RELOADS.labels("refused").inc()
            _log.error("rules not reloaded: keeping the running rules", extra={"error": str(exc)[:2000]})
            return False
        self.engine.set_rules(rules)
        metrics.RULE_RELOADS.labels("ok").inc()
        _log.info("rules reloaded", extra={"rules": len(rules)})
        return True

    def run(self, stop: threading.Event) -> None:
        next_reload = time.monotonic() + self.reload_interval_seconds
        next_eval = time.monotonic()
        while not stop.wait(self.interval):
            if time.monotonic() >= next_eval:
                self.engine.evaluate()
                self.engine.persist()
                next_eval = time.monotonic() + self.evaluate_interval
            else:
                self.engine.tick()
            if time.monotonic() >= next_reload:
                self.reload_if_changed()
                next_reload = time.monotonic() + self.reload_interval_seconds
        self.engine.persist()


class DeliveryService:
    name = "alert-delivery"

    def __init__(self, delivery: Delivery):
        self.delivery = delivery

    def run(self, stop: threading.Event) -> None:
        self.delivery.start()
        stop.wait()
        self.delivery.stop()


def build(config: AlertConfig, transport: Transport, on_sent=None, **loop_overrides) -> tuple[AlertEngine, list]:
    """The engine and its services (consumer loop, ticker, delivery, API)."""
    from logtide.alerting.api import AlertApi

    rules = load_rules(config.rule_paths())
    engine = AlertEngine(config, rules, Store(config.state_file()), on_sent=on_sent)
    services = [
        EngineLoop(engine, transport, config, **loop_overrides),
        Ticker(engine, config.rule_paths(), reload_interval_seconds=config.reload_interval_seconds),
        DeliveryService(engine.delivery),
        AlertApi(engine, config.api),
    ]
    return engine, services

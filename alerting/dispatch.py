"""Grouping and flushing, as Alertmanager's dispatcher: alerts that reach the same route with the
same ``group_by`` label values form one group. A new group waits ``group_wait`` (to collect its
siblings), then is flushed every ``group_interval``; a flush notifies each receiver integration
when the notification log says something changed, or ``repeat_interval`` passed. Silenced,
inhibited and time-interval-muted alerts are left out. The engine gives the time (``Clock.timers``
for the timers, ``Clock.wall`` for silences and time intervals); nothing here sleeps.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import NamedTuple
from collections.abc import Callable

from logtide.alerting import metrics
from logtide.timeutil import NS
from logtide.alerting.inhibition import Inhibitor
from logtide.alerting.nflog import Entry, NotificationLog, needs_update
from logtide.alerting.routing import RouteNode, labelset_string
from logtide.alerting.silences import Silences
from logtide.alerting.state import FIRING, RESOLVED, Alert
from logtide.alerting.timeintervals import TimeIntervals


@dataclass
class Notification:
    """One message for one receiver integration about one group."""

    group_key: str
    receiver: str
    integration: str
    status: str
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    alerts: list[Alert]
    firing: set[str]
    resolved: set[str]
    now: int
    repeat_ns: int
    send_resolved: bool
    group_interval_ns: int = 0

    def payload(self, external_url: str = "") -> dict:
        """The Alertmanager webhook payload (version 4)."""
        return {
            "version": "4",
            "groupKey": self.group_key,
            "truncatedAlerts": 0,
            "status": self.status,
            "receiver": self.receiver,
            "groupLabels": self.group_labels,
            "commonLabels": self.common_labels,
            "commonAnnotations": self.common_annotations,
            "externalURL": external_url,
            "alerts": [a.api(external_url) for a in self.alerts],
        }


def _common(dicts: list[dict[str, str]]) -> dict[str, str]:
    if not dicts:
        return {}
    out = dict(dicts[0])
    for d in dicts[1:]:
        for k in list(out):
            if d.get(k) != out[k]:
                del out[k]
    return out


@dataclass
class Group:
    key: str
    route: RouteNode
    labels: dict[str, str]
    next_flush: int
    alerts: dict[str, Alert] = field(default_factory=dict)

    def api(self, external_url: str = "") -> dict:
        return {
            "groupKey": self.key,
            "labels": self.labels,
            "receiver": {"name": self.route.receiver},
            "alerts": [a.api(external_url) for a in self.alerts.values()],
        }


class Integration(NamedTuple):
    """What the dispatcher needs of a receiver integration."""

    id: str
    send_resolved: bool
    #: re-send unchanged firing alerts this often (Alertmanager forwarding keeps them from expiring
    #: there); 0: only every repeat_interval
    resend_ns: int = 0


class Dispatcher:
    def __init__(
        self,
        root: RouteNode,
        integrations: dict[str, list[Integration]],
        nflog: NotificationLog,
        silences: Silences,
        inhibitor: Inhibitor,
        intervals: TimeIntervals,
        enqueue: Callable[[Notification], None],
        firing_alerts: Callable[[], list[tuple[str, dict]]],
    ):
        self.root = root
        self.integrations = integrations
        self.nflog = nflog
        self.silences = silences
        self.inhibitor = inhibitor
        self.intervals = intervals
        self.enqueue = enqueue
        self.firing_alerts = firing_alerts
        self.groups: dict[str, Group] = {}
        self.member_of: dict[str, set[str]] = {}  # fingerprint -> group keys
        # What each integration will know once the notifications already handed to delivery are sent:
        # flushes compare with this (not only with the log of delivered ones), so a resolve that
        # happens while the firing notification is still being retried is not lost.
        self.handed: dict[tuple[str, str], Entry] = {}

    def _known(self, group_key: str, integration: str) -> Entry | None:
        return self.handed.get((group_key, integration)) or self.nflog.get(group_key, integration)

    def not_delivered(self, group_key: str, integration: str) -> None:
        """A handed notification was refused: flushes go back to what the log says was delivered."""
        self.handed.pop((group_key, integration), None)

    def put(self, alert: Alert, now: int) -> None:
        """An alert started firing, changed or resolved: (re)place it in its groups."""
        snap = copy.copy(alert)
        for route in self.root.match(alert.labels):
            glabels = route.group_labels(alert.labels)
            gkey = f"{route.key}:{labelset_string(glabels)}"
            if route.id != route.key and any(g.route is not route and g.key == gkey for g in self.groups.values()):
                gkey = f"{route.id}:{labelset_string(glabels)}"  # two sibling routes with equal matchers
            group = self.groups.get(gkey)
            if group is None:
                group = self.groups[gkey] = Group(gkey, route, glabels, now + int(route.group_wait * NS))
            group.alerts[alert.fingerprint] = snap
            self.member_of.setdefault(alert.fingerprint, set()).add(gkey)

    def tick(self, now: int, mute_at: int | None = None) -> set[str]:
        """Flush due groups (timers at ``now``; silences and time intervals at ``mute_at``, default
        ``now``); return fingerprints of resolved alerts no group holds any more."""
        mute_at = now if mute_at is None else mute_at
        released: set[str] = set()
        firing_index = None
        for group in list(self.groups.values()):
            if group.next_flush > now:
                continue
            if firing_index is None:
                firing_index = self.firing_alerts()
            self._flush(group, now, mute_at, firing_index)
            group.next_flush = now + int(group.route.group_interval * NS)
            released |= self._cleanup(group)
        return released

    def next_due(self) -> int | None:
        """When the next group flush is due (None: no groups)."""
        return min((g.next_flush for g in self.groups.values()), default=None)

    def _muted_by_time(self, route: RouteNode, now: int) -> bool:
        if any(self.intervals.active(n, now) for n in route.mute_time_intervals):
            return True
        if route.active_time_intervals and not any(self.intervals.active(n, now) for n in route.active_time_intervals):
            return True
        return False

    def _flush(self, group: Group, now: int, mute_at: int, firing_index: list[tuple[str, dict]]) -> None:
        route = group.route
        if self._muted_by_time(route, mute_at):
            metrics.SILENCED.labels("time_interval").inc(len(group.alerts))
            return
        alerts = []
        for a in group.alerts.values():
            if self.silences.silenced_by(a.labels, mute_at):
                metrics.SILENCED.labels("silence").inc()
                continue
            if (
                a.state == FIRING
                and self.inhibitor.rules
                and self.inhibitor.inhibited(a.labels, a.fingerprint, firing_index)
            ):
                metrics.SILENCED.labels("inhibited").inc()
                continue
            alerts.append(a)
        firing = {a.fingerprint for a in alerts if a.state == FIRING}
        resolved = {a.fingerprint for a in alerts if a.state == RESOLVED}
        for integration, send_resolved, resend_ns in self.integrations.get(route.receiver, []):
            repeat_ns = int(route.repeat_interval * NS)
            if resend_ns:
                repeat_ns = min(repeat_ns, resend_ns)
            entry = self._known(group.key, integration)
            if not needs_update(entry, firing, resolved, send_resolved, repeat_ns, now):
                continue
            self.handed[(group.key, integration)] = Entry(set(firing), set(resolved), now)
            shown = alerts if send_resolved else [a for a in alerts if a.state == FIRING]
            shown = sorted(shown, key=lambda a: (a.state != FIRING, a.fired_at, a.fingerprint))
            self.enqueue(
                Notification(
                    group_key=group.key,
                    receiver=route.receiver,
                    integration=integration,
                    status="firing" if firing else "resolved",
                    group_labels=group.labels,
                    common_labels=_common([a.labels for a in shown]),
                    common_annotations=_common([a.annotations for a in shown]),
                    alerts=shown,
                    firing=firing,
                    resolved=resolved,
                    now=now,
                    repeat_ns=repeat_ns,
                    send_resolved=send_resolved,
                    group_interval_ns=int(route.group_interval * NS),
                )
            )

    def _cleanup(self, group: Group) -> set[str]:
        """Drop resolved alerts the receivers no longer know as firing; drop empty groups."""
        released = set()
        integrations = self.integrations.get(group.route.receiver, [])
        for fp, a in list(group.alerts.items()):
            if a.state != RESOLVED:
                continue
            known = False
            for integration, *_ in integrations:
                entry = self._known(group.key, integration)
                if entry is not None and fp in entry.firing:
                    known = True
            if not known:
                del group.alerts[fp]
                groups = self.member_of.get(fp, set())
                groups.discard(group.key)
                if not groups:
                    self.member_of.pop(fp, None)
                    released.add(fp)
        if not group.alerts:
            del self.groups[group.key]
            for integration, *_ in integrations:
                self.handed.pop((group.key, integration), None)
        return released

    def drop(self, fps: set[str]) -> None:
        for fp in fps:
            for gkey in self.member_of.pop(fp, set()):
                g = self.groups.get(gkey)
                if g is not None:
                    g.alerts.pop(fp, None)
                    if not g.alerts:
                        del self.groups[gkey]
                        for key in [k for k in self.handed if k[0] == gkey]:
                            del self.handed[key]

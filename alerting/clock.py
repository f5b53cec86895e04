"""The engine's two clocks.

Event time drives the rule windows: the *watermark* is the highest event timestamp accepted, and no
event can move it past the wall clock. An event stamped up to ``max_future_seconds`` ahead counts as "now";
further ahead it is dropped as too far in the future (one skewed node, or a local-time stamp read
as UTC, must not end every window). An event older than ``catch_up_horizon_seconds`` before the wall
clock is dropped as too late.

Catch-up: after a restart the clock starts at the saved watermark (checked against the wall clock)
and follows the backlog's event time, so what would have fired during an outage does fire. Once the
input has reached the present (an event within ``lateness_seconds`` of the wall clock) or has been quiet, the
clock is *live*: it runs on at wall-clock speed between events and never falls behind the wall clock
minus ``lateness_seconds``, so absence rules and resolutions happen on a quiet stream.

Silences, group timers (group_wait, group_interval, repeat_interval) and notification times run on
the wall clock, as Alertmanager's do (``wall()``, ``timers()``); while catching up, group timers run
on the backlog's event time, or a backlog's short-lived alert would resolve before its group_wait
ran out in wall time and never be notified. In ``event`` mode (``logtide alert test``,
``logtide test``, replays) both clocks are the event clock, so tests drive everything with
timestamps and nothing waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from logtide import log

from logtide.alerting.config import ClockSettings
from logtide.timeutil import NS

_log = log.get("alerting.clock")

OK, TOO_LATE, TOO_FAR_FUTURE = "ok", "too_late", "too_far_future"


class Clock:
    def __init__(self, settings: ClockSettings, wall: Callable[[], int] = time.time_ns):
        self.event_mode = settings.mode == "event"
        self.lateness_ns = int(settings.lateness_seconds * NS)
        self.max_future_ns = int(settings.max_future_seconds * NS)
        self.horizon = int(settings.catch_up_horizon_seconds * NS)
        self._wall = wall
        self.watermark = 0
        self._raised_at = time.monotonic_ns()
        #: hybrid mode: false while catching up on a backlog (the clock is the backlog's event time)
        self.live = self.event_mode

    # --- reading ---
    def now(self) -> int:
        """Event time for windows and alert states (``for``, ``keep_firing_for``)."""
        if not self.live or self.event_mode:
            return self.watermark
        wall = self._wall()
        running = min(self.watermark + (time.monotonic_ns() - self._raised_at), wall) if self.watermark else 0
        return max(running, wall - self.lateness_ns)

    def wall(self) -> int:
        """Time for silences and time intervals (the event clock in event mode)."""
        return self.watermark if self.event_mode else self._wall()

    def timers(self) -> int:
        """Time for group timers and notifications: the wall clock, but event time while catching up
        (a backlog's alert that fired and resolved within a few seconds of catch-up is still
        notified once group_wait of *its* time has passed, as it would have been live)."""
        return self.watermark if self.event_mode or not self.live else self._wall()

    # --- events ---
    def admit(self, t: int, wall: int) -> tuple[int, str]:
        """An event's time as the engine uses it, and whether it is admitted at all."""
        if self.event_mode:
            return t, OK
        if t > wall + self.max_future_ns:
            return t, TOO_FAR_FUTURE
        if t < wall - self.horizon:
            return t, TOO_LATE
        return min(t, wall), OK

    def observe(self, t: int) -> None:
        """Event time reached ``t`` (already admitted: never past the wall clock)."""
        if t > self.watermark:
            if self.live and not self.event_mode and t < self.now():
                return  # behind the running clock: counted, but does not move time back
            self.watermark = t
            self._raised_at = time.monotonic_ns()
        if not self.live and t >= self._wall() - self.lateness_ns:
            self.go_live("the input reached the present")

    def go_live(self, why: str) -> None:
        if not self.live:
            self.live = True
            _log.info("alerting clock is live", extra={"why": why, "watermark_ns": self.watermark})

    # --- restart ---
    def restore(self, saved: int) -> None:
        """Start from the saved watermark, checked against the wall clock: never ahead of it (a
        watermark saved by an engine that trusted a future stamp), never further back than the
        catch-up horizon."""
        if self.event_mode or not saved:
            self.watermark = saved or 0
            return
        wall = self._wall()
        if saved > wall:
            _log.warning(
                "saved watermark is ahead of the wall clock: using the wall clock",
                extra={"saved_ns": saved, "ahead_s": round((saved - wall) / NS, 1)},
            )
            saved = wall
        elif saved < wall - self.horizon:
            _log.warning(
                "saved watermark is older than the catch-up horizon: the backlog before it is counted as too late",
                extra={"saved_ns": saved, "horizon_s": self.horizon / NS},
            )
            saved = wall - self.horizon
        self.watermark = saved
        self._raised_at = time.monotonic_ns()

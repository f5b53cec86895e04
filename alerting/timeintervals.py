"""Time intervals (maintenance windows and business hours), as Alertmanager's ``time_intervals``:

    time_intervals:
      - name: weekend-maintenance
        time_intervals:
          - weekdays: ["saturday:sunday"]
            times: [{start_time: "02:00", end_time: "04:00"}]
            location: Europe/Paris
      - name: release-freeze
        time_intervals:
          - days_of_month: ["24:31"]
            months: ["december"]

Routes reference them by name in ``mute_time_intervals`` (no notifications inside) and
``active_time_intervals`` (notifications only inside). Empty fields mean "any".
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from logtide.config import Model

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_RANGE = re.compile(r"^(-?\w+)(?::(-?\w+))?$")
MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]


def _minutes(text: str) -> int:
    try:
        h, m = text.split(":")
        value = int(h) * 60 + int(m)
    except ValueError:
        raise ValueError(f"time {text!r} is not HH:MM") from None
    if not 0 <= value <= 24 * 60:
        raise ValueError(f"time {text!r} is outside 00:00..24:00")
    return value


def _ranges(items: list[str | int], names: list[str] | None, lo: int, hi: int) -> list[tuple[int, int]]:
    def one(x: str | int) -> int:
        if isinstance(x, int):
            return x
        x = x.strip().lower()
        if names and x in names:
            return names.index(x) + lo
        return int(x)

    out = []
    for item in items:
        m = _RANGE.match(str(item).strip())
        try:
            if not m:
                raise ValueError
            start = one(m.group(1))
            end = one(m.group(2)) if m.group(2) else start
        except ValueError:
            raise ValueError(f"{item!r} is not a value or a range like a:b") from None
        out.append((start, end))
    return out


class TimeRange(Model):
    start_time: str
    end_time: str

    @field_validator("start_time", "end_time")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        _minutes(v)
        return v


class TimeInterval(Model):
    times: list[TimeRange] = Field(default_factory=list)
    weekdays: list[str] = Field(default_factory=list)
    days_of_month: list[str | int] = Field(default_factory=list)
    months: list[str | int] = Field(default_factory=list)
    years: list[str | int] = Field(default_factory=list)
    location: str = "UTC"

    @field_validator("location")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, v: list[str]) -> list[str]:
        _ranges(v, WEEKDAYS, 0, 6)
        return v

    @field_validator("months")
    @classmethod
    def _months(cls, v: list) -> list:
        _ranges(v, MONTHS, 1, 12)
        return v

    @field_validator("days_of_month", "years")
    @classmethod
    def _nums(cls, v: list) -> list:
        _ranges(v, None, 1, 31)
        return v

    def contains(self, when: dt.datetime) -> bool:
        t = when.astimezone(ZoneInfo(self.location))
        if self.times:
            minute = t.hour * 60 + t.minute
            if not any(_minutes(r.start_time) <= minute < _minutes(r.end_time) for r in self.times):
                return False
        if self.weekdays and not any(a <= t.weekday() <= b for a, b in _ranges(self.weekdays, WEEKDAYS, 0, 6)):
            return False
        if self.days_of_month:
            import calendar

            last = calendar.monthrange(t.year, t.month)[1]

            def norm(d: int) -> int:
                return last + d + 1 if d < 0 else d

            if not any(norm(a) <= t.day <= norm(b) for a, b in _ranges(self.days_of_month, None, 1, 31)):
                return False
        if self.months and not any(a <= t.month <= b for a, b in _ranges(self.months, MONTHS, 1, 12)):
            return False
        if self.years and not any(a <= t.year <= b for a, b in _ranges(self.years, None, 1, 9999)):
            return False
        return True


class NamedTimeInterval(Model):
    name: str
    time_intervals: list[TimeInterval]


class TimeIntervals:
    def __init__(self, named: list[NamedTimeInterval]):
        self.by_name = {n.name: n.time_intervals for n in named}

    def active(self, name: str, now_ns: int) -> bool:
        when = dt.datetime.fromtimestamp(now_ns / 1e9, tz=dt.UTC)
        return any(ti.contains(when) for ti in self.by_name.get(name, ()))

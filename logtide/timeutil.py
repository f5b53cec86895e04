"""Time as logtide reads and writes it: RFC 3339 stamps <-> Unix nanoseconds, durations, and the
time expressions operators type on the command line (``-10m``, ``2h ago``, ``now``, a stamp).

One module so that every role agrees on the edge cases:

- a fraction of a second may have any number of digits; nanoseconds keep the first nine;
- ``Z``/``z``, ``+HH:MM``, ``+HHMM`` and ``+HH`` are offsets; a stamp without one is UTC (what
  container runtimes, CloudWatch and most JSON logs mean);
- a leap second (``23:59:60``) is read the POSIX way, as the next minute's first second;
- a month 13, a February 30th, an hour 24 or an offset of 24 hours are not stamps (None/ValueError);
- years 0001-9999 only (what RFC 3339 and Python's datetime can write back).

Everything is integer arithmetic (no float rounding of nanoseconds) and the seconds part of a
formatted stamp is cached: logs share their second.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, UTC
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BeforeValidator

NS = 1_000_000_000
MS_NS = 1_000_000

_STAMP = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?\s*([Zz]|[+-]\d\d(?::?\d\d)?)?")
_DATE = re.compile(r"(\d{4})-(\d\d)-(\d\d)")
_DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _valid_date(y: int, m: int, d: int) -> bool:
    if not (1 <= y <= 9999 and 1 <= m <= 12 and 1 <= d <= _DAYS_IN_MONTH[m]):
        return False
    return m != 2 or d < 29 or (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0))


def _offset_seconds(tz: str | None) -> int | None:
    if not tz or tz in "Zz":
        return 0
    digits = tz[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 23 or minutes > 59:
        return None
    seconds = hours * 3600 + minutes * 60
    return -seconds if tz[0] == "-" else seconds


def epoch_ns(
    y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, frac: str | None = None, offset_seconds: int = 0
) -> int:
    """Unix nanoseconds of a calendar date and time at a UTC offset (``frac``: the digits of a
    fraction of a second); ValueError for a date or time that does not exist (second 60 is a leap
    second: the next minute's first)."""
    if not _valid_date(y, mo, d) or not (0 <= h <= 23 and 0 <= mi <= 59 and 0 <= s <= 60):
        raise ValueError(f"no such time: {y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}")
    secs = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset_seconds
    return secs * NS + (int(frac[:9].ljust(9, "0")) if frac else 0)


def _from_match(m: re.Match) -> int | None:
    y, mo, d, h, mi, s, frac, tz = m.groups()
    offset = _offset_seconds(tz)
    if offset is None:
        return None
    try:
        return epoch_ns(int(y), int(mo), int(d), int(h), int(mi), int(s), frac, offset)
    except ValueError:
        return None


def parse_rfc3339(text: str) -> int | None:
    """Unix nanoseconds of an RFC 3339 / ISO 8601 date-time (``2024-05-01T12:00:03.123456789Z``,
    ``2024-05-01 12:00:03+02:00``, no offset = UTC); None when ``text`` is not one."""
    m = _STAMP.fullmatch(text.strip())
    return _from_match(m) if m else None


def scan_rfc3339(text: str) -> int | None:
    """Like ``parse_rfc3339`` for a stamp at the start of ``text`` (what follows it is ignored)."""
    m = _STAMP.match(text.lstrip())
    return _from_match(m) if m else None


def require_rfc3339(text: Any) -> int:
    """``parse_rfc3339`` that raises ValueError (with the form expected) instead of returning None."""
    ns = parse_rfc3339(text) if isinstance(text, str) else None
    if ns is None:
        raise ValueError(f"invalid time {text!r} (use RFC 3339, e.g. 2024-05-01T12:00:00Z)")
    return ns


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=8192)
def _seconds_text(secs: int) -> str:
    try:
        t = _EPOCH + timedelta(seconds=secs)
    except OverflowError:
        raise ValueError(f"time out of range: {secs} s since 1970") from None
    # not strftime: its %Y does not pad years before 1000
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"


def format_rfc3339(ns: int, digits: int = 9) -> str:
    """RFC 3339 in UTC with ``digits`` (0-9) fraction digits, truncated: ``2024-05-01T12:00:03.123Z``."""
    secs, frac = divmod(int(ns), NS)
    text = _seconds_text(secs)
    if digits <= 0:
        return text + "Z"
    return f"{text}.{frac // 10 ** (9 - digits):0{digits}d}Z"


# --- durations ------------------------------------------------------------------------------------

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: Any) -> float:
    """Seconds from "1h30m", "250ms", "30s", "0" or a number (already seconds); ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("a duration like 30s, 5m, 1h")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("a duration like 30s, 5m, 1h")
    text = value.strip()
    if not text:
        raise ValueError("empty duration")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    while pos < len(text):
        m = _PART.match(text, pos)
        if not m:
            raise ValueError(f"invalid duration {value!r} (use e.g. 30s, 5m, 1h30m, 1d)")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total


def format_duration(seconds: float) -> str:
    """The shortest of "250ms", "45s", "1h30m", "2d" for a number of seconds (whole seconds above 1 s)."""
    if seconds and seconds < 1:
        return f"{int(seconds * 1000)}ms"
    out, rest = "", int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out or "0s"


#: A pydantic field type: accepts "5m" or seconds, holds seconds (float). For the rule language
#: (``for: 5m``); role config keys are ``<name>_seconds`` numbers instead.
Duration = Annotated[float, BeforeValidator(parse_duration)]


# --- command-line time expressions ---------------------------------------------------------------

_RELATIVE = re.compile(r"-?\s*((?:\d+(?:\.\d+)?\s*(?:ms|s|m|h|d|w)\s*)+?)(?:\s+ago)?")
_NO_SECONDS = re.compile(r"(\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d)([Zz+-].*)?")


def is_relative(text: str | None) -> bool:
    """Whether a time expression depends on when it is read (``now``, ``2h``, ``-15m``, ``30m ago``)."""
    if text is None:
        return False
    s = text.strip().lower()
    return s == "now" or _RELATIVE.fullmatch(s) is not None


def parse_time_expr(text: str, now_ns: int | None = None) -> int:
    """A point in time as Unix nanoseconds, from what an operator types.

    ``now``; relative ``-15m``, ``1h30m``, ``2h ago`` (all: before now); RFC 3339 (no offset: UTC) or
    a date (its midnight, UTC); a Unix timestamp in seconds, milliseconds or nanoseconds (told apart
    by magnitude: >= 1e17 ns, >= 1e11 ms, else seconds). ValueError naming the accepted forms.
    """
    s = text.strip()
    now_ns = time.time_ns() if now_ns is None else now_ns
    low = s.lower()
    if low == "now":
        return now_ns
    m = _RELATIVE.fullmatch(low)
    if m:
        return now_ns - round(parse_duration(re.sub(r"\s+", "", m.group(1))) * NS)
    if re.fullmatch(r"\d+(\.\d+)?", s):
        whole, _, frac = s.partition(".")  # decimal digits, not a float: nanoseconds stay exact
        v = int(whole)
        if v >= 10**17:
            return v
        if v >= 10**11:
            return v * MS_NS + int(frac[:6].ljust(6, "0"))
        return v * NS + int(frac[:9].ljust(9, "0"))
    ns = parse_rfc3339(s)
    if ns is None and _DATE.fullmatch(s):
        ns = parse_rfc3339(s + "T00:00:00Z")
    if ns is None and (m := _NO_SECONDS.fullmatch(s)):
        ns = parse_rfc3339(f"{m.group(1)}:00{m.group(2) or ''}")
    if ns is None:
        raise ValueError(
            f"cannot read time {text!r}: use RFC 3339 (2024-05-01T12:00:00Z), Unix seconds/ms, "
            "'now' or a relative time like -15m / 2h ago"
        )
    return ns

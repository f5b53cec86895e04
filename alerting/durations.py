"""Durations as Prometheus writes them ("30s", "5m", "1h30m", "1d", "250ms"), parsed to seconds."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: Any) -> float:
    """Seconds from "1h30m", "250ms", "0" or a number (already seconds)."""
    if isinstance(value, bool):
        raise ValueError("a duration like 30s, 5m, 1h")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("a duration like 30s, 5m, 1h")
    text = value.strip()
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(text):
        m = _PART.match(text, pos)
        if not m:
            raise ValueError(f"invalid duration {value!r} (use e.g. 30s, 5m, 1h30m, 1d)")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not text:
        raise ValueError("empty duration")
    return total


def format_duration(seconds: float) -> str:
    if seconds and seconds < 1:
        return f"{int(seconds * 1000)}ms"
    out, rest = "", int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out or "0s"


#: A pydantic field type: accepts "5m" or seconds, holds seconds (float).
Duration = Annotated[float, BeforeValidator(parse_duration)]

NS = 1_000_000_000

"""Durations of the rule language ("30s", "5m", "1h30m", "1d", "250ms"): the kernel's
(logtide.timeutil), under the names alerting code has always imported."""

from __future__ import annotations

from logtide.timeutil import NS, Duration, format_duration, parse_duration

__all__ = ["NS", "Duration", "format_duration", "parse_duration"]

"""RFC 3339 timestamps (as CRI and docker write them) to Unix nanoseconds, fast.

Container runtimes write one timestamp per line with nanoseconds, e.g. 2024-05-01T12:00:03.123456789Z
or 2024-05-01T12:00:03.123+02:00. The seconds part changes at most once a second, so its conversion
is cached; only the fraction is parsed per line. (The general parser is logtide.timeutil; this
one reads bytes, in the agent's hot path.)
"""

from __future__ import annotations

from logtide.timeutil import epoch_ns


#: nanoseconds per unit of an n-digit fraction of a second
_SCALE = [10 ** (9 - n) for n in range(10)]


class TimestampParser:
    __slots__ = ("_prefix", "_seconds")

    def __init__(self) -> None:
        self._prefix = b""
        self._seconds = 0

    def parse(self, ts: bytes) -> int | None:
        """Unix nanoseconds, or None when ``ts`` is not an RFC 3339 timestamp."""
        if ts[:19] == self._prefix:
            # Same second as the line before (already validated); what containerd and docker write.
            frac = ts[20:-1]
            if ts[19:20] == b"." and ts[-1:] == b"Z" and frac.isdigit() and len(frac) <= 9:
                return self._seconds * 1_000_000_000 + int(frac) * _SCALE[len(frac)]
        if len(ts) < 20 or ts[10:11] not in (b"T", b"t", b" ") or ts[4:5] != b"-" or ts[13:14] != b":":
            return None
        prefix = ts[:19]
        if prefix != self._prefix:
            # digits where digits belong (int() alone takes " 5", "+5", "0_5") and both separators
            if not (
                prefix[0:4].isdigit()
                and prefix[5:7].isdigit()
                and prefix[8:10].isdigit()
                and prefix[11:13].isdigit()
                and prefix[14:16].isdigit()
                and prefix[17:19].isdigit()
                and prefix[7:8] == b"-"
                and prefix[16:17] == b":"
            ):
                return None
            try:
                seconds = (
                    epoch_ns(int(ts[0:4]), int(ts[5:7]), int(ts[8:10]), int(ts[11:13]), int(ts[14:16]), int(ts[17:19]))
                    // 1_000_000_000
                )
            except ValueError:
                return None
            self._prefix, self._seconds = prefix, seconds
        rest = ts[19:]
        # Fast path: what containerd and docker write, ".<1-9 digits>Z".
        if rest[-1:] == b"Z" and rest[:1] == b"." and 2 < len(rest) <= 11 and rest[1:-1].isdigit():
            return self._seconds * 1_000_000_000 + int(rest[1:-1].ljust(9, b"0"))
        nanos = 0
        if rest[:1] == b".":
            i = 1
            while i < len(rest) and 48 <= rest[i] <= 57:
                i += 1
            digits = rest[1:i]
            if not digits or len(digits) > 9:
                return None
            nanos = int(digits) * 10 ** (9 - len(digits))
            rest = rest[i:]
        if rest in (b"Z", b"z"):
            offset = 0
        elif (
            len(rest) == 6
            and rest[0:1] in (b"+", b"-")
            and rest[3:4] == b":"
            and rest[1:3].isdigit()
            and rest[4:6].isdigit()
        ):
            offset = (int(rest[1:3]) * 3600 + int(rest[4:6]) * 60) * (1 if rest[0:1] == b"+" else -1)
        else:
            return None
        return (self._seconds - offset) * 1_000_000_000 + nanos

"""Merge multi-line records (stack traces) into one event, per stream.

Two ways to say where a record starts, as Fluent Bit and Vector do:

- built-in continuation rules per language (the default): Java (``\\tat …``, ``Caused by:``,
  ``... 12 more``, the exception line itself), Python (``Traceback (most recent call last):``, the
  indented ``File``/code lines and the final ``SomeError: …`` line), Go (``panic:``/``fatal error:``
  then ``goroutine N [running]:`` with its function and file lines);
- ``start_pattern``: a line matching it starts a record; any other line continues the current one.

A record is sent when the next record starts, when it reaches ``max_lines``/``max_bytes``, or when
no line came for ``timeout`` seconds.
"""

from __future__ import annotations

import re
import time
from typing import NamedTuple

from agents.partial_merger import Line

# Lines that always continue the previous record (and put it "in a trace").
_ALWAYS = {
    "java": [
        r"\s+at\s",                                          # \tat com.example.Foo.bar(Foo.java:1)
        r"\s+\.\.\.\s\d+\s(?:more|common frames omitted)",    # \t... 12 more
        r"Caused by:\s",
        r"\s*Suppressed:\s",
        r"(?:[a-zA-Z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error|Throwable)(?::\s.*)?$",  # java.lang.X: msg
    ],
    "python": [
        r"Traceback \(most recent call last\):$",
        r"\s+File \"",
        r"During handling of the above exception",
        r"The above exception was the direct cause",
    ],
    "go": [
        r"goroutine \d+ \[[^\]]*\]:$",
        r"\t/",                                               # \t/src/app/main.go:12 +0x1d
        r"\[signal ",
    ],
}
# Lines that continue only inside a trace.
_IN_TRACE = {
    "java": [],
    "python": [
        r"\s{2,}\S",                                          # the source line under "File ..."
        r"[A-Za-z_][\w.]*(?:Error|Exception|Warning|Exit|Interrupt|StopIteration)(?::.*)?$",  # final line
        r"$",                                                 # blank line between chained tracebacks
    ],
    "go": [
        r"[\w./*()\-]+\(.*\)$",                               # main.main() / pkg.(*T).m(0x1, 0x2)
        r"created by ",
        r"exit status \d+$",
        r"$",
    ],
}
# Lines that start a record already "in a trace" (what follows them is part of it).
_OPENERS = {"java": [], "python": [], "go": [r"panic: ", r"fatal error: "]}


def _alternation(patterns: list[str]) -> re.Pattern | None:
    return re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None


class Record(NamedTuple):
    start: int
    end: int
    time: int | None
    stream: str
    text: str
    lines: int
    truncated: bool
    unfinished: bool     # a partial line in it never got its final piece


class _Pending:
    __slots__ = ("start", "end", "time", "texts", "size", "truncated", "unfinished", "in_trace", "touched")

    def __init__(self, line: Line, text: str, in_trace: bool, now: float):
        self.reset(line, text, in_trace, now)

    def reset(self, line: Line, text: str, in_trace: bool, now: float) -> None:
        """Start over with a new first line (the object is reused: one per stream, not one per line)."""
        self.start = line.start
        self.end = line.end
        self.time = line.time
        self.texts = [text]
        self.size = len(text)
        self.truncated = line.truncated
        self.unfinished = line.unfinished
        self.in_trace = in_trace
        self.touched = now

    def record(self, stream: str) -> Record:
        text = self.texts[0] if len(self.texts) == 1 else "\n".join(self.texts)
        return Record(self.start, self.end, self.time, stream, text, len(self.texts), self.truncated, self.unfinished)


class MultilineMerger:
    def __init__(self, languages: list[str], start_pattern: str | None = None, continue_pattern: str | None = None,
                 max_lines: int = 500, max_bytes: int = 1 << 20, timeout: float = 1.0, enabled: bool = True):
        self.enabled = enabled
        self.start = re.compile(start_pattern) if start_pattern else None
        always = [p for lang in languages for p in _ALWAYS[lang]]
        if continue_pattern:
            always.append(continue_pattern)
        self.always = _alternation(always)
        self.in_trace = _alternation([p for lang in languages for p in _IN_TRACE[lang]])
        self.openers = _alternation([p for lang in languages for p in _OPENERS[lang]])
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._pending: dict[str, _Pending] = {}
        self.merged = 0  # records made of more than one line (for the metric)

    def _continues(self, pend: _Pending, text: str) -> bool:
        if self.start is not None:
            return self.start.match(text) is None
        if self.always is not None and self.always.match(text):
            pend.in_trace = True
            return True
        return pend.in_trace and self.in_trace is not None and self.in_trace.match(text) is not None

    def add(self, line: Line, text: str, now: float | None = None) -> tuple[Record, ...]:
        """Feed one complete line; returns the record it completed, if any (``now``: time.monotonic())."""
        if not self.enabled:
            return (Record(line.start, line.end, line.time, line.stream, text, 1, line.truncated, line.unfinished),)
        if now is None:
            now = time.monotonic()
        stream = line.stream
        pend = self._pending.get(stream)
        if pend is None:
            opener = self.openers is not None and self.openers.match(text) is not None
            self._pending[stream] = _Pending(line, text, opener, now)
            return ()
        if (self._continues(pend, text) and len(pend.texts) < self.max_lines
                and pend.size + len(text) < self.max_bytes):
            pend.texts.append(text)
            pend.size += len(text) + 1
            pend.end = line.end
            pend.truncated |= line.truncated
            pend.unfinished |= line.unfinished
            pend.touched = now
            return ()
        if len(pend.texts) > 1:
            self.merged += 1
        done = pend.record(stream)
        pend.reset(line, text, self.openers is not None and self.openers.match(text) is not None, now)
        return (done,)

    def _emit(self, stream: str, pend: _Pending) -> Record:
        del self._pending[stream]
        if len(pend.texts) > 1:
            self.merged += 1
        return pend.record(stream)

    def expired(self, now: float | None = None, everything: bool = False) -> list[Record]:
        if not self._pending:
            return []
        now = time.monotonic() if now is None else now
        out = [self._emit(stream, pend) for stream, pend in list(self._pending.items())
               if everything or now - pend.touched >= self.timeout]
        out.sort(key=lambda r: r.start)
        return out

    def hold(self) -> int | None:
        return min((p.start for p in self._pending.values()), default=None)

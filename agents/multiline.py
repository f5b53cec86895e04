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


#: _new_record(Record, fields) is Record(*fields) without the NamedTuple's Python-level __new__
#: (one per line adds up).
_new_record = tuple.__new__


class _Pending:
    __slots__ = ("start", "end", "time", "texts", "size", "truncated", "unfinished", "in_trace", "touched")

    def __init__(self, start: int, end: int, time_ns: int | None, text: str, truncated: bool, unfinished: bool,
                 in_trace: bool, now: float):
        self.reset(start, end, time_ns, text, truncated, unfinished, in_trace, now)

    def reset(self, start: int, end: int, time_ns: int | None, text: str, truncated: bool, unfinished: bool,
              in_trace: bool, now: float) -> None:
        """Start over with a new first line (the object is reused: one per stream, not one per line)."""
        self.start = start
        self.end = end
        self.time = time_ns
        self.texts = [text]
        self.size = len(text)
        self.truncated = truncated
        self.unfinished = unfinished
        self.in_trace = in_trace
        self.touched = now

    def record(self, stream: str) -> Record:
        text = self.texts[0] if len(self.texts) == 1 else "\n".join(self.texts)
        return _new_record(Record, (self.start, self.end, self.time, stream, text, len(self.texts), self.truncated,
                                    self.unfinished))


class MultilineMerger:
    def __init__(self, languages: list[str], start_pattern: str | None = None, continue_pattern: str | None = None,
                 max_lines: int = 500, max_bytes: int = 1 << 20, timeout: float = 1.0, enabled: bool = True):
        self.enabled = enabled
        self.start = re.compile(start_pattern) if start_pattern else None
        always = [p for lang in languages for p in _ALWAYS[lang]]
        if continue_pattern:
            always.append(continue_pattern)
        openers = [p for lang in languages for p in _OPENERS[lang]]
        # One match per line says both whether it always continues (group 1 took part) and whether it
        # opens a trace (group 2): always-rules are tried first, as when they were separate patterns.
        self.classify = re.compile("|".join(f"({_alternation(ps).pattern})" if ps else "(?!)"
                                            for ps in (always, openers)))
        self.in_trace = _alternation([p for lang in languages for p in _IN_TRACE[lang]])
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._pending: dict[str, _Pending] = {}
        self.merged = 0  # records made of more than one line (for the metric)

    def add(self, start: int, end: int, time_ns: int | None, stream: str, text: str, truncated: bool = False,
            unfinished: bool = False, now: float | None = None) -> Record | None:
        """Feed one complete line (bytes [start, end) of the file); returns the record it completed,
        if any (``now``: time.monotonic()). Called once per line: kept flat on purpose."""
        if not self.enabled:
            return _new_record(Record, (start, end, time_ns, stream, text, 1, truncated, unfinished))
        if now is None:
            now = time.monotonic()
        m = self.classify.match(text)
        pend = self._pending.get(stream)
        if pend is None:
            self._pending[stream] = _Pending(start, end, time_ns, text, truncated, unfinished,
                                             m is not None and m.group(2) is not None, now)
            return None
        if self.start is not None:
            continues = self.start.match(text) is None
        elif m is not None and m.group(1) is not None:
            continues = pend.in_trace = True
        else:
            continues = pend.in_trace and self.in_trace is not None and self.in_trace.match(text) is not None
        texts = pend.texts
        if continues and len(texts) < self.max_lines and pend.size + len(text) < self.max_bytes:
            texts.append(text)
            pend.size += len(text) + 1
            pend.end = end
            pend.truncated |= truncated
            pend.unfinished |= unfinished
            pend.touched = now
            return None
        if len(texts) > 1:
            self.merged += 1
            done = pend.record(stream)
        else:   # the common case, inline
            done = _new_record(Record, (pend.start, pend.end, pend.time, stream, texts[0], 1, pend.truncated,
                                        pend.unfinished))
        # the stream's pending object is reused for the line that starts the next record
        pend.start, pend.end, pend.time, pend.texts, pend.size = start, end, time_ns, [text], len(text)
        pend.truncated, pend.unfinished, pend.touched = truncated, unfinished, now
        pend.in_trace = m is not None and m.group(2) is not None
        return done

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

"""Merge multi-line records (stack traces) into one event, per stream.

The semantics, exactly (a later native line path reproduces them byte for byte):

Every stream (stdout/stderr of one file) has at most one record in progress. A record's text is its
lines joined with ``\\n``. It is sent when a line comes that does not belong to it, when it reaches
``max_lines``/``max_bytes``, when no line came for ``timeout`` seconds, or when its file is finished.
How a line is judged depends on the mode, one per source:

- ``rules`` (the default): built-in rules per language, plus ``continue_pattern``. A rule is
  ``(from states, pattern, to state)``; ``ANY`` rules apply whatever the state. The record in progress
  is in a state ("" for a plain line). A line matching a *continue* rule of that state (the state's
  own first, then the ANY rules, each in table order) is added to the record, which moves to the
  rule's state; a line matching an *opener* starts a new record in the opener's state; any other line
  starts a new record in state "". So a plain line followed by ``\\tat ...`` or ``Traceback ...`` is one record (the
  message logged with the exception), and ``ValueError: x`` continues only right after a traceback.
- ``start`` (``start_pattern``; Vector's ``halt_before``, Filebeat's ``negate: true, match: after``): a
  line matching it starts a record; other lines continue the record in progress; with none in
  progress (before the first start line, or after a timeout) a line is sent alone, at once.
- ``end`` (``end_pattern``; Vector's ``halt_with``, Filebeat's ``negate: true, match: before``): lines
  are collected until one matches; that line ends the record, which is sent at once.
- ``join_next`` (``join_next_pattern``; Vector's ``continue_past``, Filebeat's ``negate: false, match:
  before``): a line matching it is joined with the line after it; the first line that does not match
  ends the record, which is sent at once.

``continue_pattern`` alone (``languages: []``) is Vector's ``continue_through`` and Filebeat's
``negate: false, match: after``. User patterns are searched anywhere in the line, as Vector and
Filebeat do (anchor them with ``^``); the built-in rules match at the line's start.

Limits: in ``rules``/``start`` modes a line that would make the record exceed ``max_lines`` or
``max_bytes`` ends it and starts the next one (in the same state); in ``end``/``join_next`` modes the
record is sent as soon as it reaches a limit.
"""

from __future__ import annotations

import functools
import re
import time
from typing import NamedTuple

ANY = None
#: (from states or ANY, pattern, to state, opener, first). Continue rules (opener False) add the line to
#: the record in progress; openers (always ANY) start a new record already in a state (what follows
#: belongs to it). ``first``: the characters a matching line can start with (a regex class body; ""
#: only the empty line; None any): a line starting with none of a state's is known not to match at
#: once (most log lines start with a digit), which is what keeps this off the agent's profile.
RULES: dict[str, list[tuple[tuple[str, ...] | None, str, str, bool, str | None]]] = {
    "java": [
        (ANY, r"\s+at\s", "java", False, r"\s"),  # \tat com.example.Foo.bar(Foo.java:1)
        (ANY, r"\s*\.\.\.\s\d+\s(?:more|common frames omitted)", "java", False, r"\s."),  # \t... 12 more
        (ANY, r"Caused by:\s", "java", False, "C"),
        (ANY, r"\s*Suppressed:\s", "java", False, r"\sS"),
        # java.lang.IllegalStateException: msg (the exception line after the logged message)
        (ANY, r"(?:[a-zA-Z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error|Throwable)(?::\s.*)?$", "java", False, "a-zA-Z_$"),
        (ANY, r"Exception in thread \"[^\"]*\" ", "java", True, "E"),
    ],
    "python": [
        (ANY, r"Traceback \(most recent call last\):$", "python", False, "T"),
        (ANY, r"\s*\+ Exception Group Traceback \(most recent call last\):$", "python", False, r"\s+"),
        (ANY, r"\s+File \"", "python", False, r"\s"),
        (ANY, r"During handling of the above exception", "python", False, "D"),
        (ANY, r"The above exception was the direct cause", "python", False, "T"),
        (("python",), r"\s{2,}\S", "python", False, r"\s"),  # source lines, ^^^^ markers
        (("python",), r"$", "python", False, ""),  # blank before a chained trace
        # the last line: any (dotted) exception name, with a message after ":" or alone
        (("python",), r"[A-Za-z_][\w.]*(?::.*)?$", "python_end", False, "A-Za-z_"),
        (("python_end",), r"$", "python_end", False, ""),  # blank, then "During handling ..."
    ],
    "go": [
        (ANY, r"goroutine \d+ (?:\S+ )*\[[^\]]*\]:$", "go", False, "g"),  # goroutine 1 [running]:
        (ANY, r"\[signal ", "go", False, r"\["),
        (ANY, r"\t\S+\.(?:go|s):\d+(?:\s|$)", "go", False, r"\t"),  # \tmain.go:12 +0x1d (any path)
        (("go",), r"$", "go", False, ""),  # blank lines between goroutines
        (("go",), r"\t\S", "go", False, r"\t"),  # frame paths, \tpanic: (recovered)
        (("go",), r"[^\s(]\S*\(.*\)(?: \{\.\.\.\})?$", "go", False, None),  # main.main() / pkg.(*T).m(0x1, ...)
        (("go",), r"created by ", "go", False, "c"),
        (("go",), r"exit status \d+$", "go", False, "e"),
        (("go",), r"\.\.\.additional frames elided\.\.\.$", "go", False, "."),
        (ANY, r"panic: ", "go", True, "p"),
        (ANY, r"fatal error: ", "go", True, "f"),
    ],
    "ruby": [
        (ANY, r"\s+from \S+:\d+(?::in .*)?$", "ruby", False, r"\s"),  # \tfrom app/x.rb:5:in `call'
        (("ruby",), r"\s+\.\.\. \d+ levels\.\.\.$", "ruby", False, r"\s"),
    ],
}
LANGUAGES = tuple(RULES)


class _Table(NamedTuple):
    regex: re.Pattern | None
    to: dict[int, tuple[str, bool]]  # outer group index → (to state, opener)


def _table(rules: list) -> _Table:
    parts, to, group, firsts = [], {}, 1, []
    for _from, pattern, state, opener, first in rules:
        parts.append(f"({pattern})")
        to[group] = (state, opener)
        group += 1 + re.compile(pattern).groups
        firsts.append(first)
    if not parts:
        return _Table(None, to)
    guard = ""
    if None not in firsts:
        chars = "".join(sorted(set(firsts)))
        guard = f"(?=[{chars}]|\\Z)" if "" in firsts else f"(?=[{chars}])"
        if not chars:
            guard = r"(?=\Z)"
    return _Table(re.compile(guard + "(?:" + "|".join(parts) + ")"), to)


@functools.lru_cache(maxsize=64)
def rule_tables(languages: tuple[str, ...], continue_pattern: str | None) -> dict[str, _Table]:
    """One alternation per state: the state's own continue rules first (inside a python traceback,
    ``pkg.FooError: x`` is its last line even though the java rules know that shape too), then the ANY
    rules, then openers (one regex match per line says what to do with it; ``m.lastindex`` names the
    rule)."""
    rules = [r for lang in languages for r in RULES[lang]]
    if continue_pattern:  # searched anywhere in the line, like the other user patterns
        rules.append((ANY, f"(?s:.*?)(?:{continue_pattern})", "custom", False, None))
    states = {""} | {r[2] for r in rules}
    tables = {}
    for s in states:
        cont_any = [r for r in rules if r[0] is ANY and not r[3]]
        cont_own = [r for r in rules if r[0] is not ANY and s in r[0] and not r[3]]
        openers = [r for r in rules if r[3]]  # whatever the state
        tables[s] = _table(cont_own + cont_any + openers)
    return tables


class Record(NamedTuple):
    start: int
    end: int
    time: int | None
    stream: str
    text: str
    lines: int
    truncated: bool
    unfinished: bool  # a partial line in it never got its final piece


#: _new_record(Record, fields) is Record(*fields) without the NamedTuple's Python-level __new__
#: (one per line adds up).
_new_record = tuple.__new__


class _Pending:
    __slots__ = ("start", "end", "time", "texts", "size", "truncated", "unfinished", "state", "touched")

    def __init__(
        self,
        start: int,
        end: int,
        time_ns: int | None,
        text: str,
        truncated: bool,
        unfinished: bool,
        state: str,
        now: float,
    ):
        self.start = start
        self.end = end
        self.time = time_ns
        self.texts = [text]
        self.size = len(text)
        self.truncated = truncated
        self.unfinished = unfinished
        self.state = state
        self.touched = now

    def append(self, end: int, text: str, truncated: bool, unfinished: bool, now: float) -> None:
        self.texts.append(text)
        self.size += len(text) + 1
        self.end = end
        self.truncated |= truncated
        self.unfinished |= unfinished
        self.touched = now

    def record(self, stream: str) -> Record:
        text = self.texts[0] if len(self.texts) == 1 else "\n".join(self.texts)
        return _new_record(
            Record, (self.start, self.end, self.time, stream, text, len(self.texts), self.truncated, self.unfinished)
        )


class MultilineMerger:
    def __init__(
        self,
        languages: list[str],
        start_pattern: str | None = None,
        continue_pattern: str | None = None,
        max_lines: int = 500,
        max_bytes: int = 1 << 20,
        timeout: float = 1.0,
        enabled: bool = True,
        end_pattern: str | None = None,
        join_next_pattern: str | None = None,
    ):
        self.enabled = enabled
        self.mode = (
            "start" if start_pattern else "end" if end_pattern else "join_next" if join_next_pattern else "rules"
        )
        self.pattern = re.compile(start_pattern or end_pattern or join_next_pattern or "(?!)")
        self.tables = rule_tables(tuple(languages), continue_pattern)
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._pending: dict[str, _Pending] = {}
        self.merged = 0  # records made of more than one line (for the metric)

    @classmethod
    def from_settings(cls, m) -> MultilineMerger:
        """From a config.MultilineSettings."""
        return cls(
            m.languages,
            m.start_pattern,
            m.continue_pattern,
            m.max_lines,
            m.max_bytes,
            m.timeout_seconds,
            enabled=m.enabled,
            end_pattern=m.end_pattern,
            join_next_pattern=m.join_next_pattern,
        )

    def add(
        self,
        start: int,
        end: int,
        time_ns: int | None,
        stream: str,
        text: str,
        truncated: bool = False,
        unfinished: bool = False,
        now: float | None = None,
    ) -> Record | None:
        """Feed one complete line (bytes [start, end) of the file); returns the record it completed,
        if any (``now``: time.monotonic()). Called once per line: kept flat on purpose."""
        if not self.enabled:
            return _new_record(Record, (start, end, time_ns, stream, text, 1, truncated, unfinished))
        if now is None:
            now = time.monotonic()
        if self.mode != "rules":
            return self._add_pattern(start, end, time_ns, stream, text, truncated, unfinished, now)
        pend = self._pending.get(stream)
        table = self.tables["" if pend is None else pend.state]
        m = table.regex.match(text) if table.regex is not None else None
        if m is not None:
            state, opener = table.to[m.lastindex]
        else:
            state, opener = "", True
        if pend is None:
            self._pending[stream] = _Pending(start, end, time_ns, text, truncated, unfinished, state, now)
            return None
        texts = pend.texts
        if not opener:
            if len(texts) < self.max_lines and pend.size + len(text) < self.max_bytes:
                pend.append(end, text, truncated, unfinished, now)
                pend.state = state
                return None
            state = pend.state  # over a limit: the next record goes on in the same state
        if len(texts) > 1:
            self.merged += 1
            done = pend.record(stream)
        else:  # the common case, inline
            done = _new_record(
                Record, (pend.start, pend.end, pend.time, stream, texts[0], 1, pend.truncated, pend.unfinished)
            )
        # the stream's pending object is reused for the line that starts the next record
        pend.start, pend.end, pend.time, pend.texts, pend.size = start, end, time_ns, [text], len(text)
        pend.truncated, pend.unfinished, pend.touched, pend.state = truncated, unfinished, now, state
        return done

    def _add_pattern(
        self,
        start: int,
        end: int,
        time_ns: int | None,
        stream: str,
        text: str,
        truncated: bool,
        unfinished: bool,
        now: float,
    ) -> Record | None:
        pend = self._pending.get(stream)
        matched = self.pattern.search(text) is not None
        if self.mode == "start":
            if not matched and pend is None:  # before the first start line: alone, at once
                return _new_record(Record, (start, end, time_ns, stream, text, 1, truncated, unfinished))
            if not matched and len(pend.texts) < self.max_lines and pend.size + len(text) < self.max_bytes:
                pend.append(end, text, truncated, unfinished, now)
                return None
            done = self._emit(stream, pend) if pend is not None else None
            self._pending[stream] = _Pending(start, end, time_ns, text, truncated, unfinished, "", now)
            return done
        if pend is None:
            pend = self._pending[stream] = _Pending(start, end, time_ns, text, truncated, unfinished, "", now)
        else:
            pend.append(end, text, truncated, unfinished, now)
        ends = matched if self.mode == "end" else not matched
        if ends or len(pend.texts) >= self.max_lines or pend.size >= self.max_bytes:
            return self._emit(stream, pend)
        return None

    def _emit(self, stream: str, pend: _Pending) -> Record:
        del self._pending[stream]
        if len(pend.texts) > 1:
            self.merged += 1
        return pend.record(stream)

    def expired(self, now: float | None = None, everything: bool = False) -> list[Record]:
        if not self._pending:
            return []
        now = time.monotonic() if now is None else now
        out = [
            self._emit(stream, pend)
            for stream, pend in list(self._pending.items())
            if everything or now - pend.touched >= self.timeout
        ]
        out.sort(key=lambda r: r.start)
        return out

    def hold(self) -> int | None:
        return min((p.start for p in self._pending.values()), default=None)

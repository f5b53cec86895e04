"""parse: turn a text body into fields. JSON (auto-detected), logfmt, RFC 5424/3164 syslog,
key=value pairs, regexes with named groups, and a "plain" parser that finds the leading timestamp
and level of the usual application log lines. Fields go to ``attributes``; a timestamp and level
found become ``time`` and ``severity_*``; a message field becomes the ``body``.

Each parser is a function ``text -> Parsed | None`` so tests (and the Loghub corpus test) can count
what each one understands.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, UTC
from typing import Any, Literal
from collections.abc import Callable

import orjson
from prometheus_client import Counter
from pydantic import Field, field_validator

from logtide.envelope import MAX_DEPTH, severity_number
from logtide.timeutil import epoch_ns, scan_rfc3339
from logtide.config import Model
from logtide.processors.steps.base import Step, StepConfig, StepFailed, compile_regex, register


PARSED = Counter(
    "logtide_processor_parsed_total", "Bodies by the parser that understood them ('none': none)", ["format"]
)
_SYSLOG_TEXT = {0: "EMERG", 1: "ALERT", 2: "CRIT", 3: "ERROR", 4: "WARN", 5: "NOTICE", 6: "INFO", 7: "DEBUG"}


@dataclass(slots=True)
class Parsed:
    format: str
    fields: dict[str, Any] = field(default_factory=dict)
    message: str | None = None  # becomes the body when set
    time_ns: int | None = None
    level: str | int | None = None  # text ("warn") or syslog number


# --- timestamps ---------------------------------------------------------------------------------

_MONTHS = {
    m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)
}


def parse_time(value: Any) -> int | None:
    """Unix ns from the shapes timestamps take in JSON logs: ISO 8601 text, epoch s/ms/us/ns numbers."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        v = float(value)
        if v > 1e17:
            return int(value)  # ns
        if v > 1e14:
            return int(v * 1e3)  # us
        if v > 1e11:
            return int(v * 1e6)  # ms
        if v > 1e8:
            return int(v * 1e9)  # s
        return None
    if isinstance(value, str):
        ns = scan_rfc3339(value)
        if ns is not None:
            return ns
        if value.replace(".", "", 1).isdigit():
            return parse_time(float(value))
    return None


def _year_for(month: int, day: int) -> int:
    """Year of a timestamp written without one (syslog 3164): this year, unless that is in the future."""
    now = datetime.now(UTC)
    year = now.year
    if (month, day) > (now.month, now.day + 1):
        year -= 1
    return year


# --- JSON -----------------------------------------------------------------------------------------

MESSAGE_KEYS = ("msg", "message", "log", "text")
LEVEL_KEYS = ("level", "severity", "lvl", "loglevel", "log.level", "levelname", "severity_text")
TIME_KEYS = ("time", "timestamp", "ts", "@timestamp", "datetime", "date", "t")
#: key → (role, priority): the first name in each list wins when a record has several
_KEY_ROLE = {
    k: (role, i)
    for role, keys in (("message", MESSAGE_KEYS), ("level", LEVEL_KEYS), ("time", TIME_KEYS))
    for i, k in enumerate(keys)
}


def _depth_exceeds(value: Any, limit: int, depth: int = 0) -> bool:
    if depth > limit:
        return True
    if isinstance(value, dict):
        return any(_depth_exceeds(v, limit, depth + 1) for v in value.values() if isinstance(v, (dict, list)))
    if isinstance(value, list):
        return any(_depth_exceeds(v, limit, depth + 1) for v in value if isinstance(v, (dict, list)))
    return False


def parse_json(text: str) -> Parsed | None:
    """A JSON object line; refuses (StepFailed) a JSON bomb nested deeper than the envelope allows."""
    if not text.startswith("{"):
        s = text.lstrip()
        if not s.startswith("{"):
            return None
        text = s
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "recursion" in str(exc).lower() or "depth" in str(exc).lower():
            raise StepFailed(f"JSON body nested too deeply: {exc}") from None
        return None
    if not isinstance(obj, dict):
        return None
    # Cheap pre-check: only count levels when there are enough brackets to be deep at all.
    if text.count("{") + text.count("[") > MAX_DEPTH and _depth_exceeds(obj, MAX_DEPTH):
        raise StepFailed(f"JSON body nested deeper than {MAX_DEPTH} levels")
    p = Parsed("json", obj)
    # One look at each of the object's keys (few) instead of probing every known name (many).
    found: dict[str, tuple[int, str]] = {}
    for k in obj:
        role = _KEY_ROLE.get(k)
        if role is not None and (role[0] not in found or role[1] < found[role[0]][0]):
            found[role[0]] = (role[1], k)
    if found:
        if "message" in found:
            k = found["message"][1]
            if isinstance(obj[k], str):
                p.message = obj.pop(k)
        if "level" in found:
            k = found["level"][1]
            v = obj[k]
            if isinstance(v, (str, int)) and not isinstance(v, bool):
                p.level = obj.pop(k)
        if "time" in found:
            k = found["time"][1]
            t = parse_time(obj[k])
            if t is not None:
                p.time_ns = t
                del obj[k]
    return p


# --- logfmt and key=value -------------------------------------------------------------------------

_PAIR = re.compile(r'([A-Za-z_][\w.\-/]*)=("(?:[^"\\]|\\.)*"|\S*)')


def _unquote(v: str) -> str:
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        v = v[1:-1]
        if "\\" in v:
            v = v.replace('\\"', '"').replace("\\\\", "\\")
    return v


def _pairs(text: str) -> dict[str, str]:
    return {k: _unquote(v) for k, v in _PAIR.findall(text)}


def parse_logfmt(text: str) -> Parsed | None:
    """A line made only of key=value pairs (``level=info msg="served" status=200``)."""
    if "=" not in text:
        return None
    pos, out = 0, {}
    n = len(text)
    while pos < n:
        while pos < n and text[pos] == " ":
            pos += 1
        if pos >= n:
            break
        m = _PAIR.match(text, pos)
        if not m:
            return None
        out[m.group(1)] = _unquote(m.group(2))
        pos = m.end()
    if len(out) < 2:
        return None
    p = Parsed("logfmt", out)
    _lift_common(p, out)
    return p


def parse_kv(text: str) -> Parsed | None:
    """key=value pairs anywhere in free text; the text stays the body."""
    if "=" not in text:
        return None
    out = _pairs(text)
    if not out:
        return None
    p = Parsed("kv", out)
    for k in LEVEL_KEYS:
        if k in out:
            p.level = out.pop(k)
            break
    return p


def _lift_common(p: Parsed, obj: dict) -> None:
    for k in MESSAGE_KEYS:
        if k in obj:
            p.message = obj.pop(k)
            break
    for k in LEVEL_KEYS:
        if k in obj:
            p.level = obj.pop(k)
            break
    for k in TIME_KEYS:
        if k in obj:
            t = parse_time(obj[k])
            if t is not None:
                p.time_ns = t
                del obj[k]
                break


# --- syslog ---------------------------------------------------------------------------------------

_RFC5424 = re.compile(
    r"<(\d{1,3})>(\d{1,2}) (\S+) (\S+) (\S+) (\S+) (\S+) (-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: (.*))?$", re.S
)
_RFC3164 = re.compile(
    r"(?:<(\d{1,3})>)?([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d):(\d\d):(\d\d) (\S+) ([^\s\[:]+)(?:\[(\w+)\])?: ?(.*)$", re.S
)
_SD_ELEMENT = re.compile(r'\[([^\s\]]+)((?: [^\s=\]]+="(?:[^"\\]|\\.)*")*)\]')
_SD_PARAM = re.compile(r'([^\s=\]]+)="((?:[^"\\]|\\.)*)"')


def parse_syslog(text: str) -> Parsed | None:
    """RFC 5424 (``<165>1 2003-10-11T22:14:15.003Z host app 123 ID47 [sd] msg``) or RFC 3164
    (``Jun 14 15:16:01 combo sshd(pam_unix)[19939]: msg``, with or without ``<PRI>``)."""
    if text.startswith("<"):
        m = _RFC5424.match(text)
        if m:
            pri, _ver, ts, host, app, procid, msgid, sd, msg = m.groups()
            fields: dict[str, Any] = {}
            for name, value in (
                ("host.name", host),
                ("process.executable.name", app),
                ("process.pid", procid),
                ("syslog.msgid", msgid),
            ):
                if value != "-":
                    fields[name] = value
            pri_n = int(pri)
            fields["syslog.facility"] = pri_n >> 3
            if sd != "-":
                for sd_id, params in _SD_ELEMENT.findall(sd):
                    for k, v in _SD_PARAM.findall(params):
                        fields[f"{sd_id}.{k}"] = v
            p = Parsed("syslog", fields, message=(msg or "").lstrip("\ufeff"), level=pri_n & 7)
            p.time_ns = parse_time(ts) if ts != "-" else None
            return p
    m = _RFC3164.match(text)
    if not m:
        return None
    pri, mon, day, hh, mm, ss, host, tag, pid, msg = m.groups()
    month = _MONTHS.get(mon.lower())
    if month is None:
        return None
    fields = {"host.name": host, "process.executable.name": tag}
    if pid is not None:
        fields["process.pid"] = pid
    p = Parsed("syslog", fields, message=msg)
    if pri is not None:
        fields["syslog.facility"] = int(pri) >> 3
        p.level = int(pri) & 7
    try:
        p.time_ns = epoch_ns(_year_for(month, int(day)), month, int(day), int(hh), int(mm), int(ss))
    except ValueError:
        pass
    return p


# --- plain application lines: leading timestamp and a level word -----------------------------------

_LEVEL_WORD = re.compile(
    r"(?<![\w.-])\[?(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|SEVERE|FATAL|CRITICAL|CRIT|PANIC|EMERG"
    r"|trace|debug|info|notice|warn|warning|error|fatal|critical|Info|Warning|Error|Debug)\]?(?![\w.-])"
)
_PLAIN_TIMES: list[tuple[re.Pattern, Callable[[re.Match], int]]] = [
    # 2015-07-29 17:41:44,747 / 2017-05-16T00:00:00.008Z (also after a prefix word, as OpenStack writes)
    (
        re.compile(r"(?:\S+ )?(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?)"),
        lambda m: parse_time(m.group(1)),
    ),
    # [Sun Dec 04 04:47:44 2005] (Apache error log)
    (
        re.compile(r"\[?(?:[A-Z][a-z]{2}) ([A-Z][a-z]{2}) (\d\d) (\d\d):(\d\d):(\d\d) (\d{4})\]?"),
        lambda m: epoch_ns(
            int(m.group(6)),
            _MONTHS[m.group(1).lower()],
            int(m.group(2)),
            int(m.group(3)),
            int(m.group(4)),
            int(m.group(5)),
        ),
    ),
    # 17/06/09 20:10:40 (Spark: yy/MM/dd)
    (
        re.compile(r"(\d\d)/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d)"),
        lambda m: epoch_ns(
            2000 + int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5)), int(m.group(6))
        ),
    ),
    # 081109 203615 (HDFS: yyMMdd HHmmss)
    (
        re.compile(r"(\d\d)(\d\d)(\d\d) (\d\d)(\d\d)(\d\d) "),
        lambda m: epoch_ns(
            2000 + int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5)), int(m.group(6))
        ),
    ),
    # 03-17 16:13:38.811 (Android logcat: no year)
    (
        re.compile(r"(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{3})"),
        lambda m: epoch_ns(
            _year_for(int(m.group(1)), int(m.group(2))),
            int(m.group(1)),
            int(m.group(2)),
            int(m.group(3)),
            int(m.group(4)),
            int(m.group(5)),
            m.group(6),
        ),
    ),
]
_LOGCAT_LEVEL = re.compile(r"\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\s+\d+\s+\d+ ([VDIWEF]) ")
_LEADING_LEVEL = re.compile(r"\[?(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|SEVERE|FATAL|CRITICAL)\]?[\s:]")


def parse_plain(text: str) -> Parsed | None:
    """A line that starts with a timestamp (several common shapes), with a level word early on, or
    one that starts with the level (``ERROR [billing] upstream timeout``)."""
    lead = _LEADING_LEVEL.match(text)
    if lead:
        return Parsed("plain", {}, level=lead.group(1))
    for rx, to_ns in _PLAIN_TIMES:
        m = rx.match(text)
        if m:
            try:
                t = to_ns(m)
            except (ValueError, KeyError, OverflowError):
                continue
            if t is None:
                continue
            p = Parsed("plain", {}, time_ns=t)
            head = text[m.end() : m.end() + 60]
            lv = _LEVEL_WORD.search(head)
            if lv:
                p.level = lv.group(1)
            else:
                lc = _LOGCAT_LEVEL.match(text)
                if lc:
                    p.level = lc.group(1)
            return p
    return None


# --- the step ---------------------------------------------------------------------------------------


class RegexPattern(Model):
    name: str = "regex"
    regex: str

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str) -> str:
        if not compile_regex(v).groupindex:
            raise ValueError("a parse regex needs named groups, e.g. (?P<status>\\d{3})")
        return v


Format = Literal["json", "logfmt", "syslog", "regex", "plain", "kv"]
_PARSERS: dict[str, Callable[[str], Parsed | None]] = {
    "json": parse_json,
    "logfmt": parse_logfmt,
    "syslog": parse_syslog,
    "plain": parse_plain,
    "kv": parse_kv,
}


class ParseConfig(StepConfig):
    formats: list[Format] = Field(
        default_factory=lambda: ["json", "syslog", "logfmt", "plain"],
        description="parsers tried in order; the first that understands the body wins",
    )
    patterns: list[RegexPattern] = Field(default_factory=list, description="for format 'regex': tried in order")
    keep_original: bool = Field(default=False, description="keep the raw text in attributes['log.original']")
    use_parsed_time: bool = Field(default=True, description="a timestamp in the text replaces the source's time")


@register("parse")
class Parse(Step):
    Config = ParseConfig

    def __init__(self, config: ParseConfig, ctx):
        super().__init__(config, ctx)
        regexes = [(p.name, re.compile(p.regex)) for p in config.patterns]

        def parse_regex(text: str) -> Parsed | None:
            for name, rx in regexes:
                m = rx.search(text)
                if m:
                    fields = {k: v for k, v in m.groupdict().items() if v is not None}
                    p = Parsed(name, fields)
                    _lift_common(p, fields)
                    return p
            return None

        self._chain = [parse_regex if f == "regex" else _PARSERS[f] for f in config.formats]
        self._parse = self._chain[0] if len(self._chain) == 1 else self.parse_text  # one format: no loop
        self.keep_original = config.keep_original
        self.use_parsed_time = config.use_parsed_time
        self.counts: dict[str, int] = {}

    def parse_text(self, text: str) -> Parsed | None:
        for parser in self._chain:
            p = parser(text)
            if p is not None:
                return p
        return None

    def process(self, event: dict) -> dict:
        body = event.get("body")
        if not isinstance(body, str) or not body:
            return event
        p = self._parse(body)
        fmt = p.format if p is not None else "none"
        self.counts[fmt] = self.counts.get(fmt, 0) + 1
        if p is None:
            return event
        attrs = event["attributes"]
        if p.fields:
            if attrs:
                for k, v in p.fields.items():
                    attrs.setdefault(k, v)
            else:
                event["attributes"] = attrs = p.fields
        if self.keep_original:
            attrs["log.original"] = body
        if p.message is not None:
            event["body"] = p.message
        if p.time_ns is not None and (self.use_parsed_time or event.get("time") is None):
            event["time"] = p.time_ns
        if p.level is not None:
            n = severity_number(p.level)
            if n:
                event["severity_number"] = n
                event["severity_text"] = p.level if isinstance(p.level, str) else _SYSLOG_TEXT[p.level]
        return event

    def end_batch(self) -> None:
        if self.counts:
            for fmt, n in self.counts.items():
                PARSED.labels(fmt).inc(n)
            self.counts.clear()

"""EventLogFile CSV → typed rows.

Salesforce describes each file's columns in LogFileFieldNames and LogFileFieldTypes (String, Id,
EscapedString, Number, Double, Boolean, DateTime, Date). Values are converted by type; one that does
not convert stays the original string (and is counted). Timestamps come as ``20231218054831.655``
(TIMESTAMP) or ISO 8601 (TIMESTAMP_DERIVED); both become ISO 8601 strings with milliseconds, UTC.

The CSV header of the file itself is the truth for column order: when it differs from
LogFileFieldNames the schema changed under us, which is reported, and types follow the names.
Quoted fields with commas, quotes, embedded newlines and NUL bytes are data; so is ``=cmd`` (formula
injection is a concern of spreadsheets, not of a log pipeline: nothing here evaluates it).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timezone
from functools import lru_cache
from typing import Iterator

csv.field_size_limit(64 * 1024 * 1024)

_TRUE = {"true", "1", "yes", "t"}
_FALSE = {"false", "0", "no", "f"}


@lru_cache(maxsize=8192)
def _epoch_seconds(head: str) -> int | None:
    """Unix seconds of ``YYYYmmddHHMMSS`` or ``YYYY-mm-ddTHH:MM:SS`` (UTC); rows share seconds, so cached."""
    try:
        if len(head) == 14:
            dt = datetime(int(head[:4]), int(head[4:6]), int(head[6:8]), int(head[8:10]), int(head[10:12]),
                          int(head[12:14]), tzinfo=timezone.utc)
        else:
            dt = datetime.fromisoformat(head + "+00:00")
    except ValueError:
        return None
    return int(dt.timestamp())


def parse_timestamp(value: str) -> int | None:
    """Unix nanoseconds of ``20231218054831.655`` or ISO 8601 (``2023-12-18T05:48:31.655Z``), else None."""
    if len(value) >= 14 and value[:14].isdigit():
        frac = value[15:] if len(value) > 14 else ""
        if len(value) > 14 and (value[14] != "." or not frac.isdigit()):
            return None
        secs = _epoch_seconds(value[:14])
        return None if secs is None else secs * 1_000_000_000 + int(frac[:9].ljust(9, "0") or 0)
    text = value.strip()
    if len(text) < 19 or text[4] != "-" or text[10] != "T":
        return None
    rest = text[19:]
    frac = ""
    if rest.startswith("."):
        i = 1
        while i < len(rest) and rest[i].isdigit():
            i += 1
        frac, rest = rest[1:i], rest[i:]
    if rest in ("", "Z", "+0000", "+00:00", "-00:00"):
        secs = _epoch_seconds(text[:19])
        return None if secs is None else secs * 1_000_000_000 + int(frac[:9].ljust(9, "0") or 0)
    if re.fullmatch(r"[+-]\d{4}", rest):
        rest = rest[:3] + ":" + rest[3:]  # Salesforce's +0100 → +01:00
    try:
        dt = datetime.fromisoformat(text[:19] + rest)
    except ValueError:
        return None
    return int(dt.timestamp()) * 1_000_000_000 + int(frac[:9].ljust(9, "0") or 0)


@lru_cache(maxsize=8192)
def _iso_seconds(secs: int) -> str:
    return datetime.fromtimestamp(secs, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def iso(ns: int) -> str:
    return f"{_iso_seconds(ns // 1_000_000_000)}.{(ns % 1_000_000_000) // 1_000_000:03d}Z"


def _number(value: str):
    try:
        return int(value)
    except ValueError:
        return float(value)


def _boolean(value: str):
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(value)


def _datetime(value: str):
    ns = parse_timestamp(value)
    if ns is None:
        raise ValueError(value)
    return iso(ns)


_CONVERTERS = {"number": _number, "double": float, "decimal": float, "float": float, "boolean": _boolean,
               "datetime": _datetime, "date": _datetime}


def converter(kind: str):
    """The function typing one column (None: keep text)."""
    return _CONVERTERS.get(kind.lower())


def split_list(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


class LogFileSchema:
    """Column names and types of one file, from its EventLogFile record."""

    def __init__(self, field_names: str | None, field_types: str | None):
        names, types = split_list(field_names), split_list(field_types)
        self.names = names
        self.types = dict(zip(names, types)) if len(names) == len(types) else {}
        self.declared_types_ok = len(names) == len(types)


class RowProblems:
    """Counts of what was odd in one file (reported as metrics and one log line per file)."""

    def __init__(self):
        self.bad_values = 0
        self.bad_rows = 0
        self.schema_changed = False


def typed_rows(stream: io.TextIOBase, schema: LogFileSchema, problems: RowProblems
               ) -> Iterator[tuple[int, dict]]:
    """(row number from 1, typed row) for each data row of a CSV stream."""
    reader = csv.reader(stream)
    header = None
    while header is None:
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error:
            problems.bad_rows += 1
    if schema.names and header != schema.names:
        problems.schema_changed = True
    converters = [converter(schema.types.get(name, "String")) for name in header]
    row_no = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error:
            problems.bad_rows += 1
            row_no += 1
            continue
        row_no += 1
        if not values:
            continue
        row: dict = {}
        for name, fn, value in zip(header, converters, values):
            if fn is None or value == "":
                row[name] = value if value != "" else None
                continue
            try:
                row[name] = fn(value)
            except ValueError:
                problems.bad_values += 1
                row[name] = value
        if len(values) != len(header):
            problems.bad_rows += 1
            row["_malformed"] = f"{len(values)} fields, header has {len(header)}"
            if len(values) > len(header):
                row["_extra"] = values[len(header):]
        yield row_no, row

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
from typing import Iterator

csv.field_size_limit(64 * 1024 * 1024)

_COMPACT_TS = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,9}))?$")
_TRUE = {"true", "1", "yes", "t"}
_FALSE = {"false", "0", "no", "f"}


def parse_timestamp(value: str) -> int | None:
    """Unix nanoseconds of ``20231218054831.655`` or ISO 8601 (``2023-12-18T05:48:31.655Z``), else None."""
    m = _COMPACT_TS.match(value)
    if m:
        y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
        frac = (m.group(7) or "").ljust(9, "0")
        try:
            secs = int(datetime(y, mo, d, h, mi, s, tzinfo=timezone.utc).timestamp())
        except ValueError:
            return None
        return secs * 1_000_000_000 + int(frac or 0)
    text = value.strip()
    if not text or not text[0].isdigit():
        return None
    text = text.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]  # Salesforce's +0000 → +00:00
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def iso(ns: int) -> str:
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{(ns % 1_000_000_000) // 1_000_000:03d}Z"


def convert(value: str, kind: str) -> tuple[object, bool]:
    """(typed value, ok). Empty stays None; a value that does not convert stays a string, ok=False."""
    if value == "":
        return None, True
    k = kind.lower()
    try:
        if k == "number":
            return (int(value) if re.fullmatch(r"[+-]?\d+", value) else float(value)), True
        if k in ("double", "decimal", "float"):
            return float(value), True
        if k == "boolean":
            v = value.strip().lower()
            if v in _TRUE:
                return True, True
            if v in _FALSE:
                return False, True
            return value, False
        if k in ("datetime", "date"):
            ns = parse_timestamp(value)
            return (iso(ns), True) if ns is not None else (value, False)
    except ValueError:
        return value, False
    return value, True


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
        for name, value in zip(header, values):
            typed, ok = convert(value, schema.types.get(name, "String"))
            if not ok:
                problems.bad_values += 1
            row[name] = typed
        if len(values) != len(header):
            problems.bad_rows += 1
            row["_malformed"] = f"{len(values)} fields, header has {len(header)}"
            if len(values) > len(header):
                row["_extra"] = values[len(header):]
        yield row_no, row

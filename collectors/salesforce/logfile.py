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
from collections.abc import Iterator

from logtide.timeutil import format_rfc3339, parse_rfc3339

csv.field_size_limit(64 * 1024 * 1024)

_TRUE = {"true", "1", "yes", "t"}
_FALSE = {"false", "0", "no", "f"}


def parse_timestamp(value: str) -> int | None:
    """Unix nanoseconds of ``20231218054831.655`` (UTC) or RFC 3339 (``2023-12-18T05:48:31.655Z``,
    ``2023-12-18T06:48:31.655+0100``), else None."""
    if len(value) >= 14 and value[:14].isdigit():
        v, frac = value[:14], value[15:]
        if len(value) > 14 and (value[14] != "." or not frac.isdigit()):
            return None
        value = f"{v[:4]}-{v[4:6]}-{v[6:8]}T{v[8:10]}:{v[10:12]}:{v[12:14]}.{frac or 0}Z"
    return parse_rfc3339(value)


def iso(ns: int) -> str:
    return format_rfc3339(ns, digits=3)


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


_CONVERTERS = {
    "number": _number,
    "double": float,
    "decimal": float,
    "float": float,
    "boolean": _boolean,
    "datetime": _datetime,
    "date": _datetime,
}


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


def typed_rows(stream: io.TextIOBase, schema: LogFileSchema, problems: RowProblems) -> Iterator[tuple[int, dict]]:
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
                row["_extra"] = values[len(header) :]
        yield row_no, row

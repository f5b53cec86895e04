"""logtide.timeutil: RFC 3339 <-> Unix ns, durations and command-line time expressions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, UTC

import pytest
from hypothesis import given, strategies as st

from logtide.timeutil import (
    NS,
    format_duration,
    format_rfc3339,
    is_relative,
    parse_duration,
    parse_rfc3339,
    parse_time_expr,
    require_rfc3339,
    scan_rfc3339,
)

T0 = 1714564800 * NS  # 2024-05-01T12:00:00Z


@pytest.mark.parametrize(
    "text,ns",
    [
        ("2024-05-01T12:00:00Z", T0),
        ("2024-05-01t12:00:00z", T0),
        ("2024-05-01 12:00:00Z", T0),
        ("2024-05-01T12:00:00", T0),  # naive: UTC
        ("2024-05-01T14:00:00+02:00", T0),
        ("2024-05-01T14:00:00+0200", T0),  # Salesforce writes +0100
        ("2024-05-01T14:00:00+02", T0),
        ("2024-05-01T07:30:00-04:30", T0),
        ("2024-05-01T12:00:00-00:00", T0),
        ("2024-05-01T12:00:00.5Z", T0 + 500_000_000),
        ("2024-05-01T12:00:00,5Z", T0 + 500_000_000),
        ("2024-05-01T12:00:00.123456789Z", T0 + 123_456_789),
        ("2024-05-01T12:00:00.1234567891234Z", T0 + 123_456_789),  # beyond ns: truncated
        ("2024-05-01T14:00:00.000000001+02:00", T0 + 1),
        ("  2024-05-01T12:00:00Z ", T0),
        ("2024-02-29T00:00:00Z", 1709164800 * NS),  # leap day
        ("2000-02-29T00:00:00Z", 951782400 * NS),  # 400-year leap day
        ("1969-12-31T23:59:59.5Z", -500_000_000),  # before the epoch
        ("0001-01-01T00:00:00Z", -62135596800 * NS),
        ("9999-12-31T23:59:59Z", 253402300799 * NS),
        ("2016-12-31T23:59:60Z", 1483228800 * NS),  # leap second: the next minute's first second
    ],
)
def test_parse_rfc3339(text, ns):
    assert parse_rfc3339(text) == ns


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2024-05-01",
        "2024-05-01T12:00Z",
        "2024-13-01T00:00:00Z",
        "2024-00-10T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2024-04-31T00:00:00Z",
        "2024-05-01T24:00:00Z",
        "2024-05-01T12:60:00Z",
        "2024-05-01T12:00:61Z",
        "2024-05-01T12:00:00+24:00",
        "2024-05-01T12:00:00+02:60",
        "0000-01-01T00:00:00Z",
        "2024-05-01T12:00:00.Z",
        "2024-05-01T12:00:00Zjunk",
        "20240501T120000Z",
        "not a time",
        "2024-05-01T12:00:00 UTC",
    ],
)
def test_not_a_stamp(text):
    assert parse_rfc3339(text) is None
    with pytest.raises(ValueError, match="RFC 3339"):
        require_rfc3339(text)


def test_require_refuses_non_strings():
    with pytest.raises(ValueError):
        require_rfc3339(17)


def test_scan_reads_a_leading_stamp():
    assert scan_rfc3339("2024-05-01T12:00:00Z GET /") == T0
    assert scan_rfc3339("2024-05-01T12:00:00.25 rest") == T0 + 250_000_000
    assert scan_rfc3339("GET / 2024-05-01T12:00:00Z") is None


@pytest.mark.parametrize(
    "digits,text",
    [
        (9, "2024-05-01T12:00:00.123456789Z"),
        (6, "2024-05-01T12:00:00.123456Z"),
        (3, "2024-05-01T12:00:00.123Z"),
        (0, "2024-05-01T12:00:00Z"),
    ],
)
def test_format_truncates_to_digits(digits, text):
    assert format_rfc3339(T0 + 123_456_789, digits) == text


def test_format_before_the_epoch_and_out_of_range():
    assert format_rfc3339(-1) == "1969-12-31T23:59:59.999999999Z"
    with pytest.raises(ValueError, match="out of range"):
        format_rfc3339(10**21)


ns_in_range = st.integers(min_value=-62135596800 * NS, max_value=253402300799 * NS + NS - 1)


@given(ns_in_range)
def test_format_then_parse_round_trips(ns):
    assert parse_rfc3339(format_rfc3339(ns)) == ns


@given(ns_in_range, st.integers(0, 9))
def test_fewer_digits_truncate_towards_the_past(ns, digits):
    back = parse_rfc3339(format_rfc3339(ns, digits))
    assert back <= ns < back + 10 ** (9 - digits)


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]),
    )
)
def test_agrees_with_datetime(dt):
    expected = (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
    assert parse_rfc3339(dt.isoformat()) == expected
    assert parse_rfc3339(dt.isoformat().replace("+00:00", "Z")) == expected


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("0", 0.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("1d", 86400.0),
        ("1w", 604800.0),
        ("1.5h", 5400.0),
        (" 10s ", 10.0),
        ("90", 90.0),
        (12, 12.0),
        (0.5, 0.5),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("value", ["", "-5s", "5x", "s", "5 m", "m5", True, None, -1, [1]])
def test_parse_duration_refuses(value):
    with pytest.raises(ValueError):
        parse_duration(value)


@given(st.integers(0, 10**7))
def test_format_duration_round_trips_whole_seconds(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    "text,ns",
    [
        ("now", 10**18),
        ("NOW", 10**18),
        ("-10m", 10**18 - 600 * NS),
        ("10m", 10**18 - 600 * NS),
        ("-1h30m", 10**18 - 5400 * NS),
        ("2h ago", 10**18 - 7200 * NS),
        ("-15 m", 10**18 - 900 * NS),
        ("-500ms", 10**18 - 500_000_000),
        ("2024-05-01T12:00:00Z", T0),
        ("2024-05-01T14:00:00.5+02:00", T0 + 500_000_000),
        ("2024-05-01T12:00", T0),
        ("2024-05-01T14:00+02:00", T0),
        ("2024-05-01", T0 - 12 * 3600 * NS),
        ("1714564800", T0),  # seconds
        ("1714564800.25", T0 + 250_000_000),
        ("1714564800000", T0),  # milliseconds
        ("1714564800000000000", T0),  # nanoseconds
    ],
)
def test_parse_time_expr(text, ns):
    assert parse_time_expr(text, now_ns=10**18) == ns


@pytest.mark.parametrize("text", ["yesterday", "-10x", "2024-13-01", "", "10m from now"])
def test_parse_time_expr_refuses_naming_the_forms(text):
    with pytest.raises(ValueError, match="RFC 3339.*now.*-15m"):
        parse_time_expr(text, now_ns=10**18)


def test_is_relative():
    assert all(map(is_relative, ["now", "-10m", "2h", "30m ago", "1h30m"]))
    assert not any(map(is_relative, [None, "2024-05-01T12:00:00Z", "1714564800"]))

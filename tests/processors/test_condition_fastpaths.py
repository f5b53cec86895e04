"""The processor's hot conditions have fast paths in logtide.condition; they must give the same
answers as the general comparison for every kind of value."""

from __future__ import annotations

import pytest

from logtide.condition import compile_condition


@pytest.mark.parametrize(
    "value,expected",
    [
        (17, True),
        (16, False),
        (17.5, True),
        (3.0, False),
        ("18", True),
        ("9", False),
        (None, False),
        (True, False),
        ("high", False),
        ([17], False),
    ],
)
def test_numeric_ordering(value, expected):
    pred = compile_condition("severity_number >= 17")
    assert pred({"severity_number": value}) is expected


@pytest.mark.parametrize(
    "value,expected",
    [
        ("auth", True),
        ("payments", True),
        ("shop", False),
        ("3", True),
        (3, True),
        (3.0, True),
        (True, False),
        (None, False),
        (["auth"], False),
    ],
)
def test_membership(value, expected):
    pred = compile_condition('resource["service.name"] in ["auth", "payments", 3]')
    assert pred({"resource": {"service.name": value}}) is expected

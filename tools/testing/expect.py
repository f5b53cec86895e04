"""Expectations of `logtide test` and the diff printed when one fails.

A field expectation is one of:

- a scalar or a list: the actual value must be equal (``severity_number: 17``);
- a mapping of operators: ``{absent: true}``, ``{present: true}``, ``{equals: X}``, ``{matches: REGEX}``
  (searched in the value as text), ``{contains: X}`` (substring, or list member), ``{one_of: [..]}``,
  ``{gt|gte|lt|lte: N}``; several operators must all hold;
- any other mapping: a subset match, recursively (``attributes: {user: "<email>"}`` checks that key
  and ignores the others).

Event expectations name fields by condition-language paths (``body``, ``attributes.user``,
``resource["k8s.pod.name"]``, ``service.name``), so the tests read like the pipeline's rules.
A list of expectations means exactly that many items, in any order; ``{count: N, contains: [...]}``
checks a count and/or that some items are among the actual ones.
"""

from __future__ import annotations

import difflib
import re
from typing import Any
from collections.abc import Callable

import orjson

from logtide.condition import ConditionError, field_getter, parse_field

OPERATORS = frozenset({"absent", "present", "equals", "matches", "contains", "one_of", "gt", "gte", "lt", "lte"})
MISSING = object()


class SpecError(ValueError):
    """An expectation that cannot be understood (bad regex, unknown operator …)."""


def is_operator_dict(v: Any) -> bool:
    return isinstance(v, dict) and bool(v) and set(v) <= OPERATORS


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    return orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode()


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return v


def check_value(expected: Any, actual: Any) -> str | None:
    """None when ``actual`` meets ``expected``, else a short reason."""
    if is_operator_dict(expected):
        for op, arg in expected.items():
            reason = _check_op(op, arg, actual)
            if reason:
                return reason
        return None
    if isinstance(expected, dict):
        if actual is MISSING or not isinstance(actual, dict):
            return f"expected a mapping, got {describe_actual(actual)}"
        for k, v in expected.items():
            reason = check_value(v, actual.get(k, MISSING))
            if reason:
                return f"[{k}] {reason}"
        return None
    if actual is MISSING or actual != expected or isinstance(actual, bool) != isinstance(expected, bool):
        return f"expected {describe_actual(expected)}, got {describe_actual(actual)}"
    return None


def _check_op(op: str, arg: Any, actual: Any) -> str | None:
    missing = actual is MISSING or actual is None
    if op == "absent":
        return (
            None
            if missing == bool(arg)
            else (f"expected absent, got {describe_actual(actual)}" if arg else "expected present, but it is absent")
        )
    if op == "present":
        return (
            None
            if (not missing) == bool(arg)
            else ("expected present, but it is absent" if arg else f"expected absent, got {describe_actual(actual)}")
        )
    if op == "equals":
        return (
            None
            if not missing and actual == arg or (arg is None and missing)
            else f"expected {describe_actual(arg)}, got {describe_actual(actual)}"
        )
    if missing:
        return f"expected {op} {describe_actual(arg)}, but it is absent"
    if op == "matches":
        try:
            ok = re.search(str(arg), _text(actual)) is not None
        except re.error as exc:
            raise SpecError(f"bad regex {arg!r}: {exc}") from None
        return None if ok else f"expected to match /{arg}/, got {describe_actual(actual)}"
    if op == "contains":
        ok = arg in actual if isinstance(actual, (list, dict)) else _text(arg) in _text(actual)
        return None if ok else f"expected to contain {describe_actual(arg)}, got {describe_actual(actual)}"
    if op == "one_of":
        if not isinstance(arg, list):
            raise SpecError("one_of takes a list")
        return None if actual in arg else f"expected one of {describe_actual(arg)}, got {describe_actual(actual)}"
    a, b = _num(actual), _num(arg)
    if b is None:
        raise SpecError(f"{op} takes a number, got {arg!r}")
    if a is None:
        return f"expected a number {op} {arg}, got {describe_actual(actual)}"
    ok = {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]
    return None if ok else f"expected {op} {arg}, got {a}"


def describe_actual(v: Any) -> str:
    if v is MISSING:
        return "(absent)"
    s = _text(v) if not isinstance(v, str) else repr(v)
    return s if len(s) <= 200 else s[:200] + "…"


def describe_expected(v: Any) -> str:
    if is_operator_dict(v):
        return " and ".join(f"{op} {describe_actual(arg)}" for op, arg in v.items())
    return describe_actual(v)


# --- items (events, alerts, notifications) ----------------------------------------------------------

Getter = Callable[[dict], Any]


def event_getter(path: str) -> Getter:
    """Condition-language path into an envelope; absent fields read as MISSING."""
    try:
        parts = parse_field(path)
    except ConditionError as exc:
        raise SpecError(f"bad field path {path!r}: {exc}") from None
    get = field_getter(parts)

    def getter(item: dict) -> Any:
        v = get(item)
        return MISSING if v is None else v

    return getter


def key_getter(path: str) -> Getter:
    """Plain key of a dict (alerts, notifications); nested expectations use nested mappings."""
    return lambda item: item.get(path, MISSING)


def item_mismatches(expectation: dict, item: dict, getter: Callable[[str], Getter]) -> list[tuple[str, str]]:
    out = []
    for path, expected in expectation.items():
        reason = check_value(expected, getter(path)(item))
        if reason:
            out.append((path, reason))
    return out


def check_items(expectation: Any, items: list[dict], getter: Callable[[str], Getter], what: str) -> list[str]:
    """Check a list-or-{count, contains} expectation; return failure lines (with diffs)."""
    if isinstance(expectation, dict) and set(expectation) <= {"count", "contains"}:
        lines = []
        if "count" in expectation and len(items) != expectation["count"]:
            lines.append(f"{what}: expected {expectation['count']} items, got {len(items)}")
            lines += _listing(items)
        if "contains" in expectation:
            lines += _match_all(expectation["contains"] or [], items, getter, what, exact=False)
        return lines
    if not isinstance(expectation, list):
        raise SpecError(f"{what}: expect a list of items, or a mapping with count/contains")
    return _match_all(expectation, items, getter, what, exact=True)


def _match_all(expectations: list, items: list[dict], getter, what: str, exact: bool) -> list[str]:
    lines: list[str] = []
    free = list(range(len(items)))
    failed: list[tuple[int, dict]] = []
    for i, exp in enumerate(expectations):
        if not isinstance(exp, dict):
            raise SpecError(f"{what}[{i}]: an item expectation is a mapping of field: expected")
        hit = next((j for j in free if not item_mismatches(exp, items[j], getter)), None)
        if hit is None:
            failed.append((i, exp))
        else:
            free.remove(hit)
    if exact and len(items) != len(expectations):
        lines.append(f"{what}: expected {len(expectations)} items, got {len(items)}")
    for i, exp in failed:
        if not free:
            lines.append(f"{what}[{i}]: no item left to match")
            lines += [f"    {line}" for line in _render(exp, None, getter)[0]]
            continue
        j = min(free, key=lambda k: len(item_mismatches(exp, items[k], getter)))
        lines.append(f"{what}[{i}]: no item matches; closest is item {j}:")
        for path, reason in item_mismatches(exp, items[j], getter):
            lines.append(f"    {path}: {reason}")
        expected_lines, actual_lines = _render(exp, items[j], getter)
        lines += [
            "    " + d
            for d in difflib.unified_diff(
                expected_lines, actual_lines, "expected", "actual", lineterm="", n=len(expected_lines)
            )
        ]
        free.remove(j)
    if exact and free and len(items) > len(expectations):
        lines.append(f"{what}: unexpected item(s):")
        lines += _listing([items[j] for j in free])
    return lines


def _render(exp: dict, item: dict | None, getter) -> tuple[list[str], list[str]]:
    expected = [f"{path}: {describe_expected(v)}" for path, v in exp.items()]
    actual = [] if item is None else [f"{path}: {_actual_for(v, getter(path)(item))}" for path, v in exp.items()]
    return expected, actual


def _actual_for(expected: Any, actual: Any) -> str:
    # Where the expectation holds, print it the same way so the diff shows only the differences.
    if check_value(expected, actual) is None:
        return describe_expected(expected)
    return describe_actual(actual)


def _listing(items: list[dict], limit: int = 10) -> list[str]:
    lines = []
    for item in items[:limit]:
        brief = {
            k: item[k]
            for k in ("id", "severity_text", "body", "rule", "state", "labels", "receiver", "status")
            if k in item
        }
        lines.append("    - " + _text(brief or item)[:300])
    if len(items) > limit:
        lines.append(f"    … {len(items) - limit} more")
    return lines

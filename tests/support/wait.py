"""Waiting for a condition with a deadline: every wait in the tests bounds its own time."""

from __future__ import annotations

import time
from typing import Any
from collections.abc import Callable


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 10.0,
    what: str = "condition",
    interval: float = 0.05,
    describe: Callable[[], Any] | None = None,
) -> Any:
    """Call ``predicate`` until it returns something truthy and return that; AssertionError naming
    ``what`` and the last value (or ``describe()``) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            state = describe() if describe else last
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {state!r})")
        time.sleep(interval)

"""Reading the process's Prometheus metrics (roles run in a thread of the test process)."""

from __future__ import annotations

from prometheus_client import REGISTRY


def metric(name: str, **labels) -> float:
    """The sample's value, 0.0 when it does not exist (yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def sample(name: str, **labels) -> float | None:
    """The sample's value, None when it does not exist (a series that must be gone)."""
    return REGISTRY.get_sample_value(name, labels)

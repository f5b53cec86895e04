"""Fixtures of the agent's tests."""

from __future__ import annotations

import pytest

from tests.agents.kube_api_double import KubeApiDouble


@pytest.fixture
def api():
    """A Kubernetes API server double (tests/agents/kube_api_double.py)."""
    double = KubeApiDouble()
    yield double
    double.close()

"""Fixtures for the alerting tests (helpers live in alert_helpers.py)."""

from alert_helpers import alertmanager, logtide, receiver  # noqa: F401  (fixtures)

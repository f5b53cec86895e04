"""Build the sink services a config names (kept for the callers of ``build_services``)."""

from logtide.processors.sinks.role import build_services

__all__ = ["build_services"]

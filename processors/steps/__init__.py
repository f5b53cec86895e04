"""Pipeline steps, found by name (``type: redact``) through ``base.REGISTRY``. Importing this package
registers every built-in step."""

from logtide.processors.steps import (  # noqa: F401 - imported to register
    aggregate,
    enrich,
    filter,
    normalize,
    parse,
    ratelimit,
    redact,
    route,
    sample,
)
from logtide.processors.steps.base import REGISTRY, Step, StepConfig, StepContext, StepFailed, register

__all__ = ["REGISTRY", "Step", "StepConfig", "StepContext", "StepFailed", "register"]

"""What every pipeline step shares: its config base, the registry that finds steps by name, and the
context a step gets (Kafka, the known sinks) when it needs more than the event in front of it.

A step is a small class with a pydantic ``Config`` and ``process(event)`` that returns the event
(possibly changed in place), a list of events, or None to drop it. Steps that keep state over time
(windows, lookup tables) use ``start``/``end_batch``/``close``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar
from collections.abc import Callable

from pydantic import Field, field_validator

from logtide.condition import compile_condition
from logtide.config import Model

Predicate = Callable[[dict], bool]


class StepConfig(Model):
    """Keys every step accepts next to its own."""

    type: str = Field(description="the step's registered name: parse, normalize, redact, filter, …")
    name: str | None = Field(default=None, description="label in metrics and DLQ headers (default: the type)")
    when: str | None = Field(default=None, description="condition: the step applies only to matching events")
    routes: list[str] | None = Field(
        default=None, description="apply only to the copies going to these sinks (place after a route step)"
    )

    @field_validator("when")
    @classmethod
    def _condition(cls, v: str | None) -> str | None:
        if v is not None:
            compile_condition(v)  # ConditionError is a ValueError: pydantic reports it with its line
        return v


@dataclass
class StepContext:
    """What a step may use besides the event: Kafka (lookups, aggregate output) and the sink names."""

    transport: Any = None
    producer: Any = None
    sinks: tuple[str, ...] = ()
    component: str = "processor"
    extra: dict[str, Any] = field(default_factory=dict)
    #: lookup tables given as they are (topic → key → row) instead of read from Kafka: `logtide test`
    lookups: dict[str, dict[str, dict]] = field(default_factory=dict)


class StepFailed(Exception):
    """An event a step cannot handle (bad input, not a bug): the record goes to the DLQ with this reason."""


class Step:
    Config: ClassVar[type[StepConfig]] = StepConfig
    type_name: ClassVar[str] = ""

    def __init__(self, config: StepConfig, ctx: StepContext):
        self.config = config
        self.ctx = ctx
        self.name = config.name or config.type

    def process(self, event: dict) -> dict | list[dict] | None:
        raise NotImplementedError

    def start(self) -> None:
        """Begin background work (lookup readers); called once before the first event."""

    def end_batch(self) -> None:
        """Called after each input batch: publish metrics counted locally, close due windows."""

    def close(self) -> None:
        """Stop background work; called once at shutdown."""


REGISTRY: dict[str, type[Step]] = {}


def register(name: str) -> Callable[[type[Step]], type[Step]]:
    """Class decorator: make a step findable by ``type: <name>`` in the config."""

    def deco(cls: type[Step]) -> type[Step]:
        if name in REGISTRY and REGISTRY[name] is not cls:
            raise ValueError(f"step type {name!r} registered twice")
        cls.type_name = name
        REGISTRY[name] = cls
        return cls

    return deco


def compile_regex(pattern: str) -> re.Pattern:
    """Compile a regex from the config; a bad one is a ValueError that pydantic reports with its line."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regex: {exc}") from None


def bounded_label(seen: set, value: Any, limit: int, overflow: str = "__overflow__") -> str:
    """A metric label value from data, with at most ``limit`` distinct values (then ``overflow``)."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    if text in seen:
        return text
    if len(seen) < limit:
        seen.add(text)
        return text
    return overflow

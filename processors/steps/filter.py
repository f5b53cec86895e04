"""filter: drop events by condition (``drop: <condition>``) or keep only matching ones (``keep:``)."""

from __future__ import annotations

from prometheus_client import Counter
from pydantic import field_validator, model_validator

from logtide.condition import compile_condition
from logtide.processors.steps.base import Step, StepConfig, register

DROPPED = Counter("logtide_processor_dropped_total", "Events dropped on purpose, by step", ["step"])


class FilterConfig(StepConfig):
    drop: str | None = None
    keep: str | None = None

    @field_validator("drop", "keep")
    @classmethod
    def _condition(cls, v):
        if v is not None:
            compile_condition(v)
        return v

    @model_validator(mode="after")
    def _one(self):
        if (self.drop is None) == (self.keep is None):
            raise ValueError("give exactly one of 'drop' or 'keep' (a condition)")
        return self


class DropCounting(Step):
    """Base for steps that drop events: counts drops locally and publishes them once per batch."""

    def __init__(self, config, ctx):
        super().__init__(config, ctx)
        self.dropped = 0

    def end_batch(self) -> None:
        if self.dropped:
            DROPPED.labels(self.name).inc(self.dropped)
            self.dropped = 0


@register("filter")
class Filter(DropCounting):
    Config = FilterConfig

    def __init__(self, config: FilterConfig, ctx):
        super().__init__(config, ctx)
        if config.drop is not None:
            self._drop = compile_condition(config.drop)
        else:
            keep = compile_condition(config.keep)
            self._drop = lambda e: not keep(e)

    def process(self, event: dict) -> dict | None:
        if self._drop(event):
            self.dropped += 1
            return None
        return event

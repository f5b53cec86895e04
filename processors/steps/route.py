"""route: choose the sinks of each event. Rules are tried in order; every matching rule adds its
sinks (``stop: true`` ends the search); an event no rule matched goes to ``default``. An event with
no sink at all is dropped (counted). Sink names are checked against the processor's sinks at load."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from logtide.condition import compile_condition
from logtide.config import Model
from logtide.processors.steps.base import StepConfig, register
from logtide.processors.steps.filter import DropCounting


def _known(sinks: list[str], info: ValidationInfo) -> list[str]:
    known = (info.context or {}).get("sinks")
    if known is not None:
        for s in sinks:
            if s not in known:
                raise ValueError(f"unknown sink {s!r} (known: {', '.join(known)})")
    return sinks


class RouteRule(Model):
    when: str = Field(description="condition")
    sinks: list[str] = Field(min_length=1)
    stop: bool = False

    @field_validator("when")
    @classmethod
    def _condition(cls, v: str) -> str:
        compile_condition(v)
        return v

    _sinks = field_validator("sinks")(_known)


class RouteConfig(StepConfig):
    rules: list[RouteRule] = Field(default_factory=list)
    default: list[str] = Field(default_factory=list, description="sinks of events no rule matched")

    _default = field_validator("default")(_known)


@register("route")
class Route(DropCounting):
    Config = RouteConfig

    def __init__(self, config: RouteConfig, ctx):
        super().__init__(config, ctx)
        self.rules = [(compile_condition(r.when), tuple(r.sinks), r.stop) for r in config.rules]
        self.default = list(config.default)

    def process(self, event: dict) -> dict | None:
        routes: list[str] = []
        for pred, sinks, stop in self.rules:
            if pred(event):
                for s in sinks:
                    if s not in routes:
                        routes.append(s)
                if stop:
                    break
        if not routes:
            routes = self.default[:]
            if not routes:
                self.dropped += 1
                return None
        event["routes"] = routes
        return event

"""The pipeline: ordered steps built from the YAML config, run on one event at a time.

A step returns the event, a list of events, or None (dropped). A step with ``routes: [...]`` applies
only to the copies of an event going to those sinks (e.g. hash e-mails for analytics, keep them for
audit): the event is copied at that point, once per distinct treatment. ``run`` returns the outputs
as ``(event, sinks)`` pairs; ``sinks`` is the event's own ``routes`` unless a per-route step split it.

Config errors (unknown step type, bad regex, bad condition, unknown sink) are raised as
``ConfigError`` naming ``file:line`` and the field, before anything connects.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Callable

import orjson
from pydantic import ValidationError

from logtide.config import ConfigError, format_validation_error
from logtide.condition import compile_condition
from logtide.processors.steps import REGISTRY, Step, StepContext, StepFailed

Output = tuple[dict, tuple[str, ...]]

#: A step failing on an event sends that record to the DLQ (with the step and the error class); the
#: processor never stops on a bad record, even one that trips a bug in a step.
_EVENT_ERRORS = (StepFailed, Exception)


class StepError(Exception):
    """An event failed in a step; ``stage`` names the step (for the DLQ headers)."""

    def __init__(self, stage: str, cause: BaseException):
        super().__init__(f"{stage}: {cause}")
        self.stage = stage
        self.cause = cause


def _line(node: Any) -> int | None:
    return getattr(node, "lines", {}).get("__self__")


def build_steps(
    entries: list[Any], ctx: StepContext, filename: str = "<config>", field: str = "pipeline"
) -> list[Step]:
    """Validate each entry with its step's own config model and build the steps."""
    steps = []
    for i, entry in enumerate(entries):
        where = f"{filename}:{_line(entry)}" if _line(entry) else filename
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: {field}[{i}] must be a mapping with a 'type'")
        kind = entry.get("type")
        cls = REGISTRY.get(kind) if isinstance(kind, str) else None
        if cls is None:
            line = getattr(entry, "lines", {}).get("type")
            at = f"{filename}:{line}" if line else where
            raise ConfigError(
                f"{at}: field '{field}.{i}.type': unknown step type {kind!r} (known: {', '.join(sorted(REGISTRY))})"
            )
        try:
            config = cls.Config.model_validate(entry, context={"sinks": ctx.sinks})
        except ValidationError as exc:
            msg = format_validation_error(exc, entry, filename, cls.Config)
            raise ConfigError(msg.replace("field '", f"field '{field}.{i}.")) from None
        if config.routes:
            for r in config.routes:
                if r not in ctx.sinks:
                    raise ConfigError(
                        f"{where}: field '{field}.{i}.routes': unknown sink {r!r} (known: {', '.join(ctx.sinks)})"
                    )
        steps.append(cls(config, ctx))
    return steps


def _guarded(step: Step) -> Callable[[dict], Any]:
    """The step's ``process``, restricted by its ``when`` condition if it has one."""
    process = step.process
    if step.config.when is None:
        return process
    when = compile_condition(step.config.when)
    return lambda e: process(e) if when(e) else e


def _apply(name: str, fn: Callable[[dict], Any], event: dict) -> list[dict]:
    """One step on one event, as a list of results (empty: dropped)."""
    try:
        r = fn(event)
    except _EVENT_ERRORS as exc:
        raise StepError(name, exc) from None
    if r is None:
        return []
    return [r] if r.__class__ is dict else list(r)


def _copy(event: dict) -> dict:
    return orjson.loads(orjson.dumps(event, option=orjson.OPT_NON_STR_KEYS))


class Pipeline:
    def __init__(self, steps: list[Step]):
        self.steps = steps
        self._fns = [(s.name, _guarded(s), frozenset(s.config.routes) if s.config.routes else None) for s in steps]
        self._simple = all(r is None for _, _, r in self._fns)

    @classmethod
    def from_config(cls, entries: list[Any], ctx: StepContext, filename: str = "<config>") -> Pipeline:
        return cls(build_steps(entries, ctx, filename))

    def start(self) -> None:
        for s in self.steps:
            s.start()

    def end_batch(self) -> None:
        for s in self.steps:
            s.end_batch()

    def close(self) -> None:
        for s in self.steps:
            try:
                s.close()
            except Exception:  # noqa: BLE001 - closing the rest matters more
                pass

    def run(self, event: dict) -> list[Output]:
        """Outputs of one event; raises StepError when a step fails on it."""
        if not self._simple:
            return self._run_split(event)
        # The common case, kept tight (``_apply`` inlined): one event through every step; only a step
        # that fans out (returns a list) hands the rest of the chain to the general loop.
        for i, (name, fn, _) in enumerate(self._fns):
            try:
                r = fn(event)
            except _EVENT_ERRORS as exc:
                raise StepError(name, exc) from None
            if r is None:
                return []
            if r.__class__ is not dict:
                return self._run_many(list(r), i + 1)
            event = r
        return [(event, tuple(event["routes"]))]

    def _run_many(self, events: list[dict], start: int) -> list[Output]:
        for name, fn, _ in self._fns[start:]:
            out = []
            for ev in events:
                out.extend(_apply(name, fn, ev))
            if not out:
                return []
            events = out
        return [(ev, tuple(ev["routes"])) for ev in events]

    def _run_split(self, event: dict) -> list[Output]:
        units: list[tuple[dict, tuple[str, ...] | None]] = [(event, None)]  # None: all of its routes
        for name, fn, only in self._fns:
            out: list[tuple[dict, tuple[str, ...] | None]] = []
            for ev, sinks in units:
                if only is not None:
                    current = sinks if sinks is not None else tuple(ev.get("routes") or ())
                    inside = tuple(s for s in current if s in only)
                    if not inside:
                        out.append((ev, sinks))
                        continue
                    outside = tuple(s for s in current if s not in only)
                    if outside:
                        out.append((ev, outside))
                        ev = _copy(ev)
                    sinks = inside
                for e in _apply(name, fn, ev):
                    out.append((e, sinks))
            units = out
            if not units:
                return []
        return [(ev, sinks if sinks is not None else tuple(ev.get("routes") or ())) for ev, sinks in units]

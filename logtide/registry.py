"""Components found by name from the YAML config: a role keeps one ``Registry`` (sinks, collectors),
each component registers itself in its own package, and the role's config model gets one optional
section per registered name. Adding a component touches no central list; an unknown section name is
a config error naming its file and line (the model refuses unknown keys)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from pydantic import BaseModel, Field, create_model


@dataclass(frozen=True)
class Component:
    name: str
    #: the pydantic model of the component's config section
    settings: type[BaseModel]
    #: builds the component; each role decides the arguments (imports its heavy clients lazily)
    build: Callable[..., Any]


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._components: dict[str, Component] = {}

    def register(self, name: str, settings: type[BaseModel]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator of the component's build function: ``@SINKS.register("audit", AuditSettings)``."""

        def deco(build: Callable[..., Any]) -> Callable[..., Any]:
            known = self._components.get(name)
            if known is not None and known.build is not build:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._components[name] = Component(name, settings, build)
            return build

        return deco

    def __getitem__(self, name: str) -> Component:
        try:
            return self._components[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r} (known: {', '.join(self.names())})") from None

    def names(self) -> list[str]:
        return list(self._components)

    def sections_model(self, base: type[BaseModel], name: str) -> type[BaseModel]:
        """``base`` plus one optional section per registered component, in registration order."""
        fields: dict[str, Any] = {
            n: (c.settings | None, Field(default=None, description=f"the {n} {self.kind} (runs when present)"))
            for n, c in self._components.items()
        }
        return create_model(name, __base__=base, __module__=base.__module__, **fields)

"""The routing tree, as Alertmanager's ``route``: an alert walks down from the root; at each level
the first child whose ``matchers`` all match takes it (and later siblings too when that child has
``continue: true``); where no child matches, the node itself routes it. Unset fields are inherited
from the parent. ``group_by: ["..."]`` groups by all labels.
"""

from __future__ import annotations

from pydantic import Field

from logtide.config import Model

from logtide.timeutil import Duration
from logtide.alerting.matchers import MatcherField, matches_all


class Route(Model):
    receiver: str | None = None
    group_by: list[str] | None = None
    matchers: list[MatcherField] = Field(default_factory=list)
    continue_: bool = Field(False, alias="continue")
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    mute_time_intervals: list[str] = Field(default_factory=list)
    active_time_intervals: list[str] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)

    model_config = {**Model.model_config, "populate_by_name": True}


class RouteNode:
    """A route with inherited settings resolved and its Alertmanager-style key."""

    def __init__(self, route: Route, parent: RouteNode | None = None, index: int = 0):
        self.route = route
        self.parent = parent
        inherit = lambda name, default: (
            getattr(route, name) if getattr(route, name) is not None else (getattr(parent, name) if parent else default)
        )
        self.receiver: str = inherit("receiver", None)
        self.group_by: list[str] = inherit("group_by", ["alertname"])
        self.group_wait: float = inherit("group_wait", 30.0)
        self.group_interval: float = inherit("group_interval", 300.0)
        self.repeat_interval: float = inherit("repeat_interval", 4 * 3600.0)
        self.matchers = route.matchers
        self.continue_ = route.continue_
        self.mute_time_intervals = route.mute_time_intervals
        self.active_time_intervals = route.active_time_intervals
        ms = "{" + ",".join(str(m) for m in route.matchers) + "}"
        self.key = ms if parent is None else f"{parent.key}/{ms}"
        self.id = "{}" if parent is None else f"{parent.id}/{index}"
        self.children = [RouteNode(r, self, i) for i, r in enumerate(route.routes)]

    def match(self, labels: dict[str, str]) -> list[RouteNode]:
        """The routes that take an alert with these labels."""
        if self.parent is not None and not matches_all(self.matchers, labels):
            return []
        out: list[RouteNode] = []
        for child in self.children:
            hit = child.match(labels)
            if hit:
                out.extend(hit)
                if not child.continue_:
                    break
        return out or [self]

    def group_labels(self, labels: dict[str, str]) -> dict[str, str]:
        if "..." in self.group_by:
            return dict(labels)
        return {k: labels[k] for k in self.group_by if k in labels}

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()


def labelset_string(labels: dict[str, str]) -> str:
    """Alertmanager's LabelSet.String(): ``{a="1", b="2"}``, sorted."""
    return "{" + ", ".join(f'{k}="{labels[k]}"' for k in sorted(labels)) + "}"


def check_tree(root: Route, receivers: set[str], intervals: set[str]) -> None:
    if root.receiver is None:
        raise ValueError("the root route needs a receiver")
    for node in RouteNode(root).walk():
        if node.receiver not in receivers:
            raise ValueError(f"route {node.key} uses receiver {node.receiver!r}, not defined in receivers")
        for name in node.mute_time_intervals + node.active_time_intervals:
            if name not in intervals:
                raise ValueError(f"route {node.key} uses time interval {name!r}, not defined in time_intervals")

"""Alertmanager label matchers: ``name="value"``, ``name!="v"``, ``name=~"re"``, ``name!~"re"``.

Used by routes, inhibition rules and silences. Regexes are anchored, as in Alertmanager. A matcher
may also be written as a mapping ``{name: ..., value: ..., isRegex: ..., isEqual: ...}`` (the API form).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator

_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|(\S*))\s*$')


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str  # one of = != =~ !~
    value: str

    def __post_init__(self):
        if self.op in ("=~", "!~"):
            try:
                object.__setattr__(self, "_rx", re.compile(f"^(?:{self.value})$"))
            except re.error as exc:
                raise ValueError(f"invalid regex in matcher {self.name}{self.op}{self.value!r}: {exc}") from None

    def matches(self, labels: dict[str, str]) -> bool:
        v = labels.get(self.name, "")
        if self.op == "=":
            return v == self.value
        if self.op == "!=":
            return v != self.value
        hit = self._rx.match(v) is not None  # type: ignore[attr-defined]
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'

    def api(self) -> dict:
        return {
            "name": self.name,
            "value": self.value,
            "isRegex": self.op in ("=~", "!~"),
            "isEqual": self.op in ("=", "=~"),
        }


def parse_matcher(value: Any) -> Matcher:
    if isinstance(value, Matcher):
        return value
    if isinstance(value, dict):
        try:
            regex, equal = bool(value.get("isRegex", False)), bool(value.get("isEqual", True))
            op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}[(regex, equal)]
            return Matcher(str(value["name"]), op, str(value["value"]))
        except KeyError as exc:
            raise ValueError(f"a matcher object needs 'name' and 'value' (missing {exc})") from None
    if not isinstance(value, str):
        raise ValueError('a matcher is a string like severity="critical" or team=~"db|infra"')
    m = _MATCHER.match(value)
    if not m:
        raise ValueError(f'invalid matcher {value!r} (write name="value", name!="v", name=~"re" or name!~"re")')
    raw = m.group(3) if m.group(3) is not None else (m.group(4) or "")
    raw = raw.replace('\\"', '"').replace("\\\\", "\\")
    return Matcher(m.group(1), m.group(2), raw)


def matches_all(matchers: list[Matcher], labels: dict[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


MatcherField = Annotated[Matcher, BeforeValidator(parse_matcher)]

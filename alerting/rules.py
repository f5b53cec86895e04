"""Alert rules: their YAML form, validation (file:line on any mistake) and loading.

A rules file is ``rules: [ ... ]``; each rule has a ``kind``:

- ``match``: any event matching ``condition`` (active for ``window`` after the last match);
- ``threshold``: at least ``count`` matching events within the sliding ``window``, per group key;
- ``ratio``: events matching ``errors`` / events matching ``condition`` over ``window`` above ``above``
  (only once at least ``min_total`` events were seen, so one error in two events does not page);
- ``spike``: the count in ``window`` against the count in the ``reference`` period just before it,
  scaled to the same length; fires when ``factor`` times higher (``direction: up``), lower (``down``)
  or either (``both``), once the reference has ``min_reference`` events;
- ``absence``: fewer than ``below`` events in ``window`` per key, for the keys listed in ``expected``
  and for the keys seen within ``expect_seen_within`` (default 1d), even ones never seen at all;
- ``new_term``: a value of ``field`` never seen before (per group key), after a ``learning`` period;
  at most ``max_terms`` values are remembered (least recently seen forgotten first).

Every rule also takes ``group_by`` (field paths; ``label=field`` renames the label), ``for``
(pending period), ``keep_firing_for``, ``severity``, ``labels``, ``annotations`` (Jinja2, sandboxed:
``{{ labels.service }}``, ``{{ value }}``), ``max_groups`` and ``partitioned`` (see engine.py).
Windows are driven by event timestamps, never by the wall clock of the evaluating machine (but no
event moves event time past it: see clock.py). Annotations are compiled when the file is loaded.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import orjson
from pydantic import AliasChoices, Field, field_validator, model_validator

from logtide.condition import ConditionError, Predicate, compile_condition, field_getter, parse_field
from logtide.config import ConfigError, Model, load_yaml, validate_config

from logtide.timeutil import Duration
from logtide.alerting.templates import Template

KINDS = ("match", "threshold", "ratio", "spike", "absence", "new_term")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_:\-]*$")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def label_name(path: str) -> str:
    """A Prometheus-valid label name for a field path: "resource.k8s.pod.name" → "k8s_pod_name"."""
    for prefix in ("resource.", "attributes."):
        if path.startswith(prefix):
            path = path[len(prefix) :]
    name = re.sub(r"[^A-Za-z0-9_]", "_", path.replace('["', ".").replace('"]', ""))
    return name if name and not name[0].isdigit() else "_" + name


def _check_condition(text: str) -> str:
    try:
        compile_condition(text)
    except ConditionError as exc:
        raise ValueError(f"broken condition: {exc}") from None
    return text


class GroupField:
    """One ``group_by`` entry: the label it becomes and how to read it from an event."""

    __slots__ = ("label", "path", "get")

    def __init__(self, spec: str):
        label, _, path = spec.partition("=") if "=" in spec and not spec.startswith("resource[") else ("", "", spec)
        path = path.strip()
        try:
            parts = parse_field(path)
        except ConditionError as exc:
            raise ValueError(f"bad field path {path!r} in group_by: {exc}") from None
        self.label = label.strip() or label_name(path)
        if not _LABEL.match(self.label):
            raise ValueError(f"label name {self.label!r} is not a valid Prometheus label name")
        self.path = path
        self.get = field_getter(parts)


class RuleBase(Model):
    name: str
    kind: str
    description: str = ""
    condition: str = "true"
    group_by: list[str] = Field(default_factory=list)
    window: Duration = 300.0
    for_: Duration = Field(0.0, alias="for")
    keep_firing_for: Duration = 0.0
    severity: str = "warning"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, Template] = Field(default_factory=dict)  # compiled at load: a broken one is refused
    #: groups this rule tracks at most (default: the config's limits.max_groups_per_rule); ``max_keys`` is the old name
    max_groups: int | None = Field(None, ge=1, validation_alias=AliasChoices("max_groups", "max_keys"))
    partitioned: bool | None = None

    model_config = {**Model.model_config, "populate_by_name": True}

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("a rule name is letters, digits, '_', ':' or '-' (it becomes the alertname label)")
        return v

    @field_validator("condition")
    @classmethod
    def _condition(cls, v: str) -> str:
        return _check_condition(v)

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, v: list[str]) -> list[str]:
        labels = [GroupField(s).label for s in v]
        if len(set(labels)) != len(labels):
            raise ValueError(f"group_by gives the same label twice: {labels}")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for k in v:
            if not _LABEL.match(k):
                raise ValueError(f"label name {k!r} is not a valid Prometheus label name")
        return v

    @field_validator("window")
    @classmethod
    def _window(cls, v: float) -> float:
        if v < 1:
            raise ValueError("window must be at least 1s")
        return v

    # --- compiled parts (built once per load) ---
    def model_post_init(self, _ctx: Any) -> None:
        self._predicate: Predicate = compile_condition(self.condition)
        self._group = [GroupField(s) for s in self.group_by]
        self._group_sig = tuple(self.group_by)

    @property
    def predicate(self) -> Predicate:
        return self._predicate

    @property
    def group_fields(self) -> list[GroupField]:
        return self._group

    def group_key(self, event: dict, cache: dict | None = None) -> tuple[str, ...]:
        """The group key of an event; ``cache`` (one dict per event) shares it between rules with
        the same group_by."""
        if cache is not None:
            key = cache.get(self._group_sig)
            if key is None:
                key = cache[self._group_sig] = self.group_key(event)
            return key
        out = []
        for g in self._group:
            v = g.get(event)
            out.append("" if v is None else (v if isinstance(v, str) else str(v)))
        return tuple(out)

    def group_labels(self, key: tuple[str, ...]) -> dict[str, str]:
        return {g.label: v for g, v in zip(self._group, key) if v != ""}

    #: the fields that decide what the windows count (an edit of any other field keeps them)
    WINDOW_FIELDS: ClassVar[tuple[str, ...]] = ("kind", "condition", "group_by", "window", "partitioned")

    def _hash(self, fields: set[str] | None = None) -> str:
        data = self.model_dump(by_alias=True, include=fields)
        return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]

    def signature(self) -> str:
        """Changes when anything in the definition changes."""
        return self._hash()

    def window_signature(self) -> str:
        """Changes when what the windows count changes: then they start afresh."""
        return self._hash(set(self.WINDOW_FIELDS))

    def labels_signature(self) -> str:
        """Changes when the alerts' label sets change (grouping, labels, severity): then the old
        alerts are resolved, as in Prometheus (an alert is its rule name and labels)."""
        return self._hash({"name", "group_by", "labels", "severity"})

    def is_partitioned(self, stream_key_fields: list[str]) -> bool:
        if self.partitioned is not None:
            return self.partitioned
        have = {g.path for g in self._group} | {g.label for g in self._group}
        return bool(stream_key_fields) and all(f in have or label_name(f) in have for f in stream_key_fields)


class MatchRule(RuleBase):
    kind: Literal["match"]


class ThresholdRule(RuleBase):
    kind: Literal["threshold"]
    count: int = Field(ge=1)


class RatioRule(RuleBase):
    kind: Literal["ratio"]
    WINDOW_FIELDS: ClassVar[tuple[str, ...]] = RuleBase.WINDOW_FIELDS + ("errors",)
    errors: str
    above: float = Field(gt=0, le=1)
    min_total: int = Field(10, ge=1)

    @field_validator("errors")
    @classmethod
    def _errors(cls, v: str) -> str:
        return _check_condition(v)

    def model_post_init(self, ctx: Any) -> None:
        super().model_post_init(ctx)
        self._errors_pred = compile_condition(self.errors)


class SpikeRule(RuleBase):
    kind: Literal["spike"]
    WINDOW_FIELDS: ClassVar[tuple[str, ...]] = RuleBase.WINDOW_FIELDS + ("reference",)
    reference: Duration = 3600.0
    factor: float = Field(3.0, gt=1)
    direction: Literal["up", "down", "both"] = "up"
    min_reference: int = Field(10, ge=1)


class AbsenceRule(RuleBase):
    kind: Literal["absence"]
    below: int = Field(1, ge=1)
    expected: list[str | dict[str, str]] = Field(default_factory=list)
    expect_seen_within: Duration | None = None

    @model_validator(mode="after")
    def _expected(self) -> AbsenceRule:
        n = len(self.group_by)
        for e in self.expected:
            if isinstance(e, str) and n != 1:
                raise ValueError(
                    "expected keys given as strings need exactly one group_by field; "
                    "use mappings {label: value} otherwise"
                )
            if isinstance(e, dict):
                labels = {GroupField(s).label for s in self.group_by}
                unknown = set(e) - labels
                if unknown:
                    raise ValueError(f"expected key names {sorted(unknown)} are not group_by labels {sorted(labels)}")
        return self

    def expected_keys(self) -> list[tuple[str, ...]]:
        out = []
        for e in self.expected:
            if isinstance(e, str):
                out.append((e,))
            else:
                out.append(tuple(str(e.get(g.label, "")) for g in self.group_fields))
        return out


class NewTermRule(RuleBase):
    kind: Literal["new_term"]
    WINDOW_FIELDS: ClassVar[tuple[str, ...]] = RuleBase.WINDOW_FIELDS + ("field", "learning", "max_terms")
    field: str
    learning: Duration = 3600.0
    max_terms: int = Field(100_000, ge=10)

    @field_validator("field")
    @classmethod
    def _field(cls, v: str) -> str:
        try:
            parse_field(v)
        except ConditionError as exc:
            raise ValueError(f"bad field path: {exc}") from None
        return v

    def model_post_init(self, ctx: Any) -> None:
        super().model_post_init(ctx)
        self._term = GroupField(self.field)

    def group_labels(self, key: tuple[str, ...]) -> dict[str, str]:
        """The group labels plus the new term itself (the last element of the key)."""
        labels = super().group_labels(key[:-1])
        labels[self._term.label] = key[-1]
        return labels


Rule = MatchRule | ThresholdRule | RatioRule | SpikeRule | AbsenceRule | NewTermRule
_BY_KIND: dict[str, type[RuleBase]] = {
    "match": MatchRule,
    "threshold": ThresholdRule,
    "ratio": RatioRule,
    "spike": SpikeRule,
    "absence": AbsenceRule,
    "new_term": NewTermRule,
}


def _line(node: Any, key: str | None = None) -> int | None:
    lines = getattr(node, "lines", {})
    return lines.get(key) if key and key in lines else lines.get("__self__")


def parse_rules(data: Any, filename: str) -> list[RuleBase]:
    """Validate a parsed rules document; every mistake is reported as ``file:line: ...``."""
    if data is None or (isinstance(data, dict) and not data):
        return []
    if not isinstance(data, dict):
        raise ConfigError(f"{filename}:1: a rules file is a mapping with a 'rules:' list")
    extra = set(data) - {"rules"}
    if extra:
        key = sorted(extra)[0]
        raise ConfigError(f"{filename}:{_line(data, key)}: unknown field '{key}' (a rules file has only 'rules:')")
    items = data.get("rules") or []
    if not isinstance(items, list):
        raise ConfigError(f"{filename}:{_line(data, 'rules')}: 'rules' must be a list")
    rules: list[RuleBase] = []
    errors: list[str] = []
    seen: dict[str, int | None] = {}
    for i, item in enumerate(items):
        where = _line(item) if isinstance(item, dict) else _line(data, "rules")
        if not isinstance(item, dict):
            errors.append(f"{filename}:{where}: rule {i + 1} must be a mapping")
            continue
        kind = item.get("kind")
        cls = _BY_KIND.get(kind) if isinstance(kind, str) else None
        if cls is None:
            errors.append(
                f"{filename}:{_line(item, 'kind')}: rule {item.get('name', i + 1)!s}: field 'kind': "
                f"must be one of {', '.join(KINDS)} (got {kind!r})"
            )
            continue
        try:
            rule = validate_config(item, cls, filename)
        except ConfigError as exc:
            errors.extend(f"{line} (rule {item.get('name', i + 1)})" for line in str(exc).splitlines())
            continue
        if rule.name in seen:
            errors.append(f"{filename}:{where}: rule name '{rule.name}' already used at line {seen[rule.name]}")
            continue
        seen[rule.name] = where
        rules.append(rule)
    if errors:
        raise ConfigError("\n".join(errors))
    return rules


def load_rules(paths: list[str | Path]) -> list[RuleBase]:
    """Load and validate rule files (names must be unique across them)."""
    out: list[RuleBase] = []
    names: dict[str, str] = {}
    for p in paths:
        for rule in parse_rules(load_yaml(p), str(p)):
            if rule.name in names:
                raise ConfigError(f"{p}: rule name '{rule.name}' already defined in {names[rule.name]}")
            names[rule.name] = str(p)
            out.append(rule)
    return out

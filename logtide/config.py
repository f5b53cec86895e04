"""Configuration: one YAML file, validated by pydantic, with errors that name file, line and field.

Secrets never sit in the file: a string value may be ``${ENV_VAR}`` (or ``${ENV_VAR:-default}``)
or ``file:/path/to/secret`` (a mounted Secret), resolved at load time and never logged.

Components declare their config as subclasses of ``Model`` (unknown keys are refused) and load it
with ``load_config(path, TheirModel)``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

T = TypeVar("T", bound=BaseModel)

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


class ConfigError(Exception):
    """A configuration problem a user can fix; the message says where and what."""


class Model(BaseModel):
    """Base for every config model: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


class _Located(dict):
    """A mapping that remembers the YAML line of each key (for error messages)."""

    lines: dict[str, int]


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict:
    mapping = _Located(loader.construct_mapping(node, deep=True))
    mapping.lines = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        mapping.lines[str(key)] = key_node.start_mark.line + 1
    mapping.lines["__self__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class ResolvedSecret(str):
    """A string that came from a ``${ENV}`` or ``file:`` reference (not written inline in the file)."""


#: Validation context of a config read from a file (``info.context``): secret-only fields can tell
#: an inline value from a reference.
FROM_FILE = {"source": "file"}


def resolve_secret(value: str, where: str = "") -> str:
    """Resolve ``${ENV}`` references and ``file:`` references in one string."""
    if value.startswith("file:"):
        path = Path(value[5:]).expanduser()
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read secret file {path}: {exc.strerror}") from None

    def env(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{where}: environment variable {name} is not set")

    return _ENV_REF.sub(env, value)


def _resolve(node: Any, filename: str, line: int | None = None, errors: list[str] | None = None) -> Any:
    """Resolve secret references everywhere; an error names the line of the key that holds it.
    With ``errors``, problems are collected there (every one, not only the first)."""
    if isinstance(node, str):
        if "${" in node or node.startswith("file:"):
            try:
                return ResolvedSecret(resolve_secret(node, f"{filename}:{line}" if line else filename))
            except ConfigError as exc:
                if errors is None:
                    raise
                errors.append(str(exc))
        return node
    if isinstance(node, dict):
        lines = getattr(node, "lines", {})
        out = _Located({k: _resolve(v, filename, lines.get(str(k), line), errors) for k, v in node.items()})
        out.lines = lines
        return out
    if isinstance(node, list):
        return [_resolve(v, filename, line, errors) for v in node]
    return node


def _line_of(data: Any, loc: tuple) -> int | None:
    """The YAML line of the deepest key of ``loc`` that exists in the document."""
    line = getattr(data, "lines", {}).get("__self__")
    node = data
    for part in loc:
        if isinstance(node, dict):
            lines = getattr(node, "lines", {})
            if str(part) in lines:
                line = lines[str(part)]
            if part not in node:
                break
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            line = getattr(node, "lines", {}).get("__self__", line)
        else:
            # pydantic adds union-member names and the like to loc; skip what is not in the data
            continue
    return line


line_of = _line_of


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The config models an annotation can hold (through Optional, list, dict, unions …)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _models_at(model: type[BaseModel], loc: tuple) -> list[type[BaseModel]]:
    """The models that may validate the mapping at ``loc`` (list indexes, dict keys and pydantic's
    union tags in ``loc`` are not fields: they keep the models found so far)."""
    current = [model]
    for part in loc:
        deeper = []
        for m in current:
            field = m.model_fields.get(part) if isinstance(part, str) else None
            if field is None and isinstance(part, str):
                field = next((f for f in m.model_fields.values() if f.alias == part), None)
            deeper.extend(_models_in(field.annotation) if field is not None else [m])
        current = deeper or current
    return current


def renamed_to(model: type[BaseModel] | None, loc: tuple) -> str | None:
    """The current name of a refused key that was renamed by the durations convention
    (``<name>_seconds``, a number): ``session_timeout_seconds`` → ``session_timeout_seconds``,
    ``timeout_seconds`` → ``timeout_seconds``, ``lateness_seconds`` → ``lateness_seconds``; None otherwise."""
    if model is None or not loc or not isinstance(loc[-1], str):
        return None
    key = loc[-1]
    candidates = [re.sub(r"_(ms|s)$", "_seconds", key), key + "_seconds"]
    for m in _models_at(model, loc[:-1]):
        for name in candidates:
            if name != key and name in m.model_fields:
                return name
    return None


def format_validation_error(
    exc: ValidationError, data: Any, filename: str, model: type[BaseModel] | None = None
) -> str:
    msgs = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        field = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(data, loc)
        where = f"{filename}:{line}" if line else filename
        if err["type"] == "extra_forbidden":
            new = renamed_to(model, loc)
            if new:
                unit = " (milliseconds are now seconds)" if str(loc[-1]).endswith("_ms") else ""
                msgs.append(f"{where}: unknown field '{field}': renamed '{new}', a number of seconds{unit}")
            else:
                msgs.append(f"{where}: unknown field '{field}'")
        else:
            msgs.append(f"{where}: field '{field}': {err['msg']}")
    return "\n".join(msgs)


def load_yaml(path: str | os.PathLike) -> Any:
    """Read a YAML file (with line numbers kept) and resolve secret references."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: config is not UTF-8 text (byte {exc.start})") from None
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark else str(p)
        raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        data = _Located()
        data.lines = {}
    try:
        errors: list[str] = []
        resolved = _resolve(data, str(p), errors=errors)
        if errors:
            raise ConfigError("\n".join(errors))
        return resolved
    except RecursionError:  # an alias inside its own anchor (`&a [*a]`) or absurd nesting
        raise ConfigError(f"{p}: YAML nested too deeply (a recursive alias?)") from None


def validate_config(data: Any, model: type[T], filename: str = "<config>", context: dict | None = None) -> T:
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, data, filename, model)) from None


def load_config(path: str | os.PathLike, model: type[T]) -> T:
    """Load and validate one YAML config file; raise ConfigError naming file:line and field."""
    return validate_config(load_yaml(path), model, str(path), FROM_FILE)

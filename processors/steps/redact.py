"""redact: remove personal data and secrets from bodies and attribute values.

Kinds: ``email``, ``card`` (13–19 digits that pass the Luhn check — a 16-digit order id that fails
it stays), ``bearer`` tokens, ``jwt``, ``aws_key`` (access key ids), ``password`` (the value of
``password=…``/``secret: …``, and of attributes whose key names a secret), ``ipv4``, ``ipv6``
(validated), plus custom named regexes.

Modes: ``mask`` (``<email>``) or ``hash``: a keyed HMAC-SHA256 (secret from ``${ENV}`` or
``file:``), so the same address always becomes the same token and joins still work without the
value. ``routes:`` limits a redact step to the copies going to some sinks.

Speed: all enabled kinds are one alternation compiled once; a string goes through it only when a
cheap pre-check says it may contain something (``@`` for e-mails, a digit for cards and IPs, …),
and strings without a match are not rebuilt.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from typing import Literal

from prometheus_client import Counter
from pydantic import Field, field_validator, model_validator

from logtide.config import Model
from processors.steps.base import Step, StepConfig, register

REDACTIONS = Counter("logtide_processor_redactions_total", "Values redacted, by kind", ["step", "kind"])

Kind = Literal["email", "card", "bearer", "jwt", "aws_key", "password", "ipv4", "ipv6"]
ALL_KINDS: tuple[str, ...] = ("email", "card", "bearer", "jwt", "aws_key", "password", "ipv4", "ipv6")

_SECRET_WORDS = r"password|passwd|pwd|passphrase|secret|client_secret|api[_-]?key|access[_-]?token|auth[_-]?token"

# Order matters where kinds overlap: a JWT after "Bearer " is a bearer token; a card before an IPv4.
PATTERNS: dict[str, str] = {
    "bearer": r"(?i:\bbearer)\s+(?P<bearer>[A-Za-z0-9\-._~+/]{8,}=*)",
    "jwt": r"(?P<jwt>\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*)",
    "aws_key": r"(?P<aws_key>\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b)",
    "password": r"(?i:\b(?:" + _SECRET_WORDS + r"))[\"']?\s*[=:]\s*(?P<password>\"[^\"]*\"|'[^']*'|[^\s,;&\"']+)",
    "email": r"(?P<email>[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})",
    "card": r"(?P<card>(?<![\d.-])\d(?:[ -]?\d){12,18}(?![\d-]))",
    "ipv4": r"(?P<ipv4>(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.]))",
    "ipv6": r"(?P<ipv6>(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:){1,7}(?::|(?::[0-9A-Fa-f]{1,4}){1,7}|[0-9A-Fa-f]{1,4})"
            r"(?:%\w+)?(?![\w:]))|(?P<ipv6b>(?<![\w:])::(?:[0-9A-Fa-f]{1,4}:){0,6}[0-9A-Fa-f]{1,4}(?![\w:]))",
}

#: Attribute keys whose whole value is a secret (compared lower-cased).
SECRET_KEYS = ("password", "passwd", "pwd", "secret", "token", "authorization", "api_key", "apikey",
               "access_token", "refresh_token", "client_secret", "cookie")

#: A pre-check per kind: the regex pass is skipped for a string none of whose enabled kinds could match.
_DIGIT = re.compile(r"\d").search
_SECRET_HINT = re.compile(r"(?i:pass|pwd|secret|api.?key|token)").search


def _precheck(kind: str):
    return {
        "email": lambda s: "@" in s,
        "card": lambda s: _DIGIT(s) is not None,
        "ipv4": lambda s: "." in s,
        "ipv6": lambda s: ":" in s,
        "bearer": lambda s: "earer" in s or "EARER" in s,
        "jwt": lambda s: "eyJ" in s,
        "aws_key": lambda s: "A" in s,
        "password": lambda s: _SECRET_HINT(s) is not None,
    }[kind]


def luhn_ok(digits: str) -> bool:
    total, alt = 0, False
    for ch in reversed(digits):
        d = ord(ch) - 48
        if alt:
            d *= 2
            if d > 9:
                d -= 9
        total += d
        alt = not alt
    return total % 10 == 0


class CustomPattern(Model):
    name: str = Field(description="kind name in the mask and the metrics")
    pattern: str = Field(description="regex; the whole match (or its group 'value' if present) is redacted")
    hint: str | None = Field(default=None, description="substring that must be present for the regex to run")

    @field_validator("name")
    @classmethod
    def _ident(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            raise ValueError("name must be an identifier (letters, digits, _)")
        return v

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            rx = re.compile(v)
        except re.error as exc:
            raise ValueError(f"invalid regex: {exc}") from None
        if rx.groupindex and set(rx.groupindex) != {"value"}:
            raise ValueError("a custom pattern may only name the group 'value'")
        return v


class RedactConfig(StepConfig):
    kinds: list[Kind] = Field(default_factory=lambda: list(ALL_KINDS), description="what to look for")
    custom: list[CustomPattern] = Field(default_factory=list)
    mode: Literal["mask", "hash"] = "mask"
    secret: str | None = Field(default=None, description="HMAC key for mode hash: ${ENV} or file:/path, never inline")
    fields: list[Literal["body", "attributes", "resource"]] = Field(default_factory=lambda: ["body", "attributes"])
    secret_keys: list[str] = Field(
        default_factory=lambda: list(SECRET_KEYS),
        description="attribute keys whose whole value is redacted (case-insensitive)")

    @model_validator(mode="after")
    def _secret_for_hash(self):
        if self.mode == "hash" and not self.secret:
            raise ValueError("mode 'hash' needs a secret (e.g. secret: ${LOGTIDE_REDACT_KEY})")
        if self.mode == "hash" and self.secret and len(self.secret) < 16:
            raise ValueError("the hash secret must be at least 16 characters")
        return self


class Redactor:
    """The redaction engine alone (no event shape): ``redact(text) -> text``; counts per kind."""

    def __init__(self, kinds: list[str], custom: list[CustomPattern] | None = None, mode: str = "mask",
                 secret: str | None = None, secret_keys: list[str] | None = None):
        custom = custom or []
        parts, checks = [], []
        self._group_kind: dict[str, str] = {}
        for kind in ALL_KINDS:
            if kind in kinds:
                parts.append(PATTERNS[kind])
                checks.append(_precheck(kind))
                for g in re.compile(PATTERNS[kind]).groupindex:
                    self._group_kind[g] = kind
        for i, c in enumerate(custom):
            group = f"c{i}_{c.name}"
            inner = c.pattern.replace("(?P<value>", f"(?P<{group}v>") if "(?P<value>" in c.pattern else c.pattern
            parts.append(f"(?P<{group}>{inner})")
            self._group_kind[group] = c.name
            self._group_kind[group + "v"] = c.name
            hint = c.hint
            checks.append((lambda s, h=hint: h in s) if hint else (lambda s: True))
        self.kinds = list(kinds) + [c.name for c in custom]
        self._rx = re.compile("|".join(parts)) if parts else None
        self._checks = tuple(checks)
        self._hashing = mode == "hash"
        self._key = (secret or "").encode()
        self._cache: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self.secret_keys = frozenset(k.lower() for k in (SECRET_KEYS if secret_keys is None else secret_keys))

    def token(self, kind: str, value: str) -> str:
        if not self._hashing:
            return f"<{kind}>"
        tok = self._cache.get(value)
        if tok is None:
            digest = hmac.new(self._key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:16]
            tok = f"<{kind}:{digest}>"
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[value] = tok
        return tok

    def _replace(self, m: re.Match) -> str:
        group = m.lastgroup
        # the value group of a kind (e.g. the token after "Bearer ") is the innermost named group
        for name, value in m.groupdict().items():
            if value is not None and name != group and name in self._group_kind:
                group = name
                break
        kind = self._group_kind[group]
        value = m.group(group)
        if kind == "card":
            digits = value.replace(" ", "").replace("-", "")
            if not 13 <= len(digits) <= 19 or not luhn_ok(digits):
                return m.group(0)
        elif kind == "ipv6":
            try:
                ipaddress.IPv6Address(value.split("%", 1)[0])
            except ValueError:
                return m.group(0)
        self.counts[kind] = self.counts.get(kind, 0) + 1
        whole = m.group(0)
        start, end = m.start(group) - m.start(0), m.end(group) - m.start(0)
        return whole[:start] + self.token(kind, value) + whole[end:]

    def redact(self, text: str) -> str:
        rx = self._rx
        if rx is None or not text:
            return text
        for check in self._checks:
            if check(text):
                break
        else:
            return text
        return rx.sub(self._replace, text)

    def redact_value(self, value, depth: int = 0):
        """Strings anywhere in a JSON-like value; a dict key that names a secret loses its whole value."""
        if isinstance(value, str):
            return self.redact(value)
        if depth > 64:
            return value
        if isinstance(value, dict):
            for k, v in value.items():
                if k.lower() in self.secret_keys and v not in (None, ""):
                    self.counts["password"] = self.counts.get("password", 0) + 1
                    value[k] = self.token("password", v if isinstance(v, str) else str(v))
                elif isinstance(v, str):
                    if v:
                        nv = self.redact(v)
                        if nv is not v:
                            value[k] = nv
                elif isinstance(v, (dict, list)):
                    self.redact_value(v, depth + 1)
            return value
        if isinstance(value, list):
            for i, v in enumerate(value):
                if isinstance(v, str):
                    value[i] = self.redact(v)
                elif isinstance(v, (dict, list)):
                    self.redact_value(v, depth + 1)
        return value


@register("redact")
class Redact(Step):
    Config = RedactConfig

    def __init__(self, config: RedactConfig, ctx):
        super().__init__(config, ctx)
        self.redactor = Redactor(config.kinds, config.custom, config.mode, config.secret, config.secret_keys)
        self.fields = tuple(config.fields)

    def process(self, event: dict) -> dict:
        r = self.redactor
        for f in self.fields:
            v = event.get(f)
            if v.__class__ is str:
                event[f] = r.redact(v)
            elif v:
                r.redact_value(v)
        return event

    def end_batch(self) -> None:
        counts = self.redactor.counts
        if counts:
            for kind, n in counts.items():
                REDACTIONS.labels(self.name, kind).inc(n)
            counts.clear()

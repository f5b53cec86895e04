"""redact: remove personal data and secrets from bodies and attribute values.

Kinds: ``email``, ``card`` (13–19 digits that pass the Luhn check — a 16-digit order id that fails
it stays), ``bearer`` tokens, ``jwt``, ``aws_key`` (access key ids), ``password`` (the value of
``password=…``/``secret: …``, and of attributes whose key names a secret), ``ipv4``, ``ipv6``
(validated), plus custom named regexes.

Modes: ``mask`` (``<email>``) or ``hash``: a keyed HMAC-SHA256 (secret from ``${ENV}`` or
``file:``), so the same address always becomes the same token and joins still work without the
value. ``routes:`` limits a redact step to the copies going to some sinks.

Speed: one regex pass per string, an alternation of only the kinds whose cheap pre-check passed
(``@`` for e-mails, a 4-digit run for cards, ``eyJ`` for JWTs …; compiled once per combination); a
string that passes no pre-check is not scanned, and strings without a match are not rebuilt. Every
pattern starts with a look-behind, so a match is only tried at the start of a token.
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
from logtide.processors.steps.base import Step, StepConfig, compile_regex, register

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
    # (written for speed, same matches as the readable forms in tests/processors/test_redact_prefilter.py: the
    # local part cannot hold "@", so it never gives back characters; an IPv4 is first checked to be 4 numbers)
    "email": r"(?P<email>(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]++@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})",
    "card": r"(?P<card>(?<![\d.-])\d(?:[ -]?\d){12,18}(?![\d-]))",
    "ipv4": r"(?P<ipv4>(?<![\d.])(?=\d{1,3}\.\d{1,3}\.\d{1,3}\.\d)(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
    r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.]))",
    "ipv6": r"(?P<ipv6>(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:){1,7}(?::|(?::[0-9A-Fa-f]{1,4}){1,7}|[0-9A-Fa-f]{1,4})"
    r"(?:%\w+)?(?![\w:]))|(?P<ipv6b>(?<![\w:])::(?:[0-9A-Fa-f]{1,4}:){0,6}[0-9A-Fa-f]{1,4}(?![\w:]))",
}

#: Attribute keys whose whole value is a secret (compared lower-cased).
SECRET_KEYS = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "authorization",
    "api_key",
    "apikey",
    "access_token",
    "refresh_token",
    "client_secret",
    "cookie",
)

#: Cheap pre-checks: a kind's regex joins the pass only for strings that may hold it (most log text
#: has no '@', no 4-digit run, no 'eyJ' …); a string that passes none is not scanned at all. Written
#: as one function of substring tests (C speed) rather than one regex or one call per kind.
_BIT = {kind: 1 << i for i, kind in enumerate(ALL_KINDS)}
#: Exact pre-conditions, much cheaper than the passes they guard (each pass is a scan of the whole
#: string): a card needs 13 digits with at most one space or dash between them (for ASCII text: 13
#: zeros in a row once digits map to "0", other bytes to "x" and spaces and dashes are deleted); an
#: IPv4 has 3 dots; an address ``ipaddress`` accepts has a "::" or 7 colons (times like 02:56:15
#: never reach the IPv6 pass).
_CARD_HINT = re.compile(r"\d(?:[ -]?\d){12}").search
_DIGITS_TO_ZERO = bytes(48 if 48 <= b <= 57 else 120 for b in range(256))
_CARD_RUN = b"0" * 13
_IPV4_HINT = re.compile(r"\d\.\d{1,3}\.").search
_IPV6_HINT = re.compile(r":(?::|[0-9A-Fa-f]{1,4}:)").search
_AWS_HINT = re.compile(r"A(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA)[A-Z0-9]{16}").search
_B_EMAIL, _B_CARD, _B_IPV4, _B_IPV6 = _BIT["email"], _BIT["card"], _BIT["ipv4"], _BIT["ipv6"]
_B_BEARER, _B_JWT, _B_AWS, _B_PASSWORD = _BIT["bearer"], _BIT["jwt"], _BIT["aws_key"], _BIT["password"]


#: Strings up to this length have their redacted form remembered (at most MEMO_ENTRIES of them).
MEMO_MAX_LEN = 64
MEMO_ENTRIES = 20_000

#: Kinds whose regex match is exactly the value and needs no further check (Luhn, address parsing).
_WHOLE_MATCH_KINDS = frozenset({"email", "jwt", "aws_key", "ipv4"})


def _may_hold_card(s: str) -> bool:
    if s.isascii():
        return _CARD_RUN in s.encode().translate(_DIGITS_TO_ZERO, b" -")
    return _CARD_HINT(s) is not None  # \d also matches other scripts' digits


def hint_mask(s: str, candidates: bool = False) -> int:
    """Bit set of the built-in kinds ``s`` may contain (false positives fine, false negatives not).

    ``candidates``: set a kind's bit whenever its regex may match, even where the check after the
    match (``ipaddress``) must refuse it: in one alternation a refused candidate still hides the text
    it spans from the other kinds, so leaving its regex out would change the result."""
    if s.isalnum():  # ids, words, numbers: only digits in a row (a card) or an AWS key id fit in those
        m = _B_CARD if _may_hold_card(s) else 0
        return m | _B_AWS if "A" in s and _AWS_HINT(s) is not None else m
    m = _B_EMAIL if "@" in s else 0
    if _may_hold_card(s):
        m |= _B_CARD
    if s.count(".") >= 3 and _IPV4_HINT(s) is not None:
        m |= _B_IPV4
    if ":" in s and (candidates or "::" in s or s.count(":") >= 7) and _IPV6_HINT(s) is not None:
        m |= _B_IPV6
    if "eyJ" in s:
        m |= _B_JWT
    if "earer" in s or "EARER" in s:
        m |= _B_BEARER
    if "A" in s and _AWS_HINT(s) is not None:
        m |= _B_AWS
    if "=" in s or ":" in s:
        low = s.lower()
        if "pass" in low or "pwd" in low or "secret" in low or "key" in low or "token" in low:
            m |= _B_PASSWORD
    return m


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
        rx = compile_regex(v)
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
        description="attribute keys whose whole value is redacted (case-insensitive)",
    )

    @model_validator(mode="after")
    def _secret_for_hash(self):
        if self.mode == "hash" and not self.secret:
            raise ValueError("mode 'hash' needs a secret (e.g. secret: ${LOGTIDE_REDACT_KEY})")
        if self.mode == "hash" and self.secret and len(self.secret) < 16:
            raise ValueError("the hash secret must be at least 16 characters")
        return self


class Redactor:
    """The redaction engine alone (no event shape): ``redact(text) -> text``; counts per kind."""

    def __init__(
        self,
        kinds: list[str],
        custom: list[CustomPattern] | None = None,
        mode: str = "mask",
        secret: str | None = None,
        secret_keys: list[str] | None = None,
    ):
        custom = custom or []
        #: regex source per bit: the built-in kinds at their _BIT, custom patterns after them
        self._sources: dict[int, str] = {}
        self._group_kind: dict[str, str] = {}
        self._enabled = 0
        for kind in ALL_KINDS:
            if kind in kinds:
                self._enabled |= _BIT[kind]
                self._sources[_BIT[kind]] = PATTERNS[kind]
                for g in re.compile(PATTERNS[kind]).groupindex:
                    self._group_kind[g] = kind
        self._custom_checks = []
        for i, c in enumerate(custom):
            group = f"c{i}_{c.name}"
            inner = c.pattern.replace("(?P<value>", f"(?P<{group}v>") if "(?P<value>" in c.pattern else c.pattern
            bit = 1 << (len(ALL_KINDS) + i)
            self._sources[bit] = f"(?P<{group}>{inner})"
            self._custom_checks.append((bit, c.hint))
            self._group_kind[group] = c.name
        self.kinds = list(kinds) + [c.name for c in custom]
        # Masking: one pass per kind whose pre-check passed, with a plain replacement string where the
        # whole match is the value and needs no check (no Python call per match). Hashing: one pass
        # over an alternation (a hash token holds hex digits a later card pass must never see).
        self._passes: list[tuple[int, re.Pattern, object, str]] = []
        if mode == "mask":
            for bit, src in sorted(self._sources.items()):
                rx = re.compile(src)
                group = next(iter(rx.groupindex))
                kind = self._group_kind[group]
                whole = kind in _WHOLE_MATCH_KINDS or (bit >= 1 << len(ALL_KINDS) and len(rx.groupindex) == 1)
                self._passes.append((bit, rx, f"<{kind}>" if whole else self._replace, kind))
        self._passes_for: dict[int, list] = {}  # bit set of kinds whose pre-check passed → their passes
        self._compiled: dict[int, re.Pattern] = {}  # bit set of kinds whose pre-check passed → alternation
        self._hashing = mode == "hash"
        self._key = (secret or "").encode()
        self._cache: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self.secret_keys = frozenset(k.lower() for k in (SECRET_KEYS if secret_keys is None else secret_keys))
        self._secret_key: dict[str, bool] = {}  # attribute key as written → is it a secret's name
        self._memo: dict[str, tuple[str, tuple]] = {}

    def _regex(self, mask: int) -> re.Pattern:
        rx = self._compiled.get(mask)
        if rx is None:
            rx = self._compiled[mask] = re.compile(
                "|".join(src for bit, src in sorted(self._sources.items()) if mask & bit)
            )
        return rx

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
        group = m.lastgroup  # the outermost named group that closed last: the kind's own group
        if group not in self._group_kind:
            return m.group(0)
        kind = self._group_kind[group]
        inner = group + "v"  # a custom pattern's (?P<value>…) part
        if inner in m.re.groupindex and m.group(inner) is not None:
            group = inner
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
        start, end = m.span(group)
        if (start, end) == m.span():
            return self.token(kind, value)
        whole, base = m.group(0), m.start()
        return whole[: start - base] + self.token(kind, value) + whole[end - base :]

    def redact(self, text: str) -> str:
        """``text`` with every enabled kind replaced. Short strings repeat a lot in logs (levels, user
        names, paths, messages): their results are remembered (bounded), counts included."""
        if len(text) > MEMO_MAX_LEN:
            mask = self._mask(text)
            return self._apply(text, mask) if mask else text
        hit = self._memo.get(text)
        if hit is not None:
            out, found = hit
            for kind, n in found:
                self.counts[kind] = self.counts.get(kind, 0) + n
            return out
        mask = self._mask(text)
        if not mask:
            out, found = text, {}
        else:
            outer, self.counts = self.counts, {}
            try:
                out = self._apply(text, mask)
            finally:
                found, self.counts = self.counts, outer
            for kind, n in found.items():
                outer[kind] = outer.get(kind, 0) + n
        if len(self._memo) >= MEMO_ENTRIES:
            self._memo.clear()
        self._memo[text] = (out, tuple(found.items()))
        return out

    def _mask(self, text: str) -> int:
        """The kinds whose pre-check ``text`` passes (0: nothing to do)."""
        mask = hint_mask(text, self._hashing) & self._enabled if self._enabled else 0
        for bit, hint in self._custom_checks:
            if hint is None or hint in text:
                mask |= bit
        return mask

    def _apply(self, text: str, mask: int) -> str:
        """The passes of the kinds in ``mask``, in kind order (each sees the previous one's output)."""
        if not self._passes:
            return self._regex(mask).sub(self._replace, text)
        passes = self._passes_for.get(mask)
        if passes is None:
            passes = self._passes_for[mask] = [(rx, repl, kind) for bit, rx, repl, kind in self._passes if mask & bit]
        for rx, repl, kind in passes:
            if repl.__class__ is str:
                text, n = rx.subn(repl, text)
                if n:
                    self.counts[kind] = self.counts.get(kind, 0) + n
            else:
                text = rx.sub(repl, text)
        return text

    def _learn_key(self, key: str) -> bool:
        if len(self._secret_key) > 10_000:
            self._secret_key.clear()
        secret = self._secret_key[key] = key.lower() in self.secret_keys
        return secret

    def redact_value(self, value, depth: int = 0):
        """Strings anywhere in a JSON-like value; a dict key that names a secret loses its whole value."""
        if isinstance(value, str):
            return self.redact(value)
        if depth > 64:
            return value
        if isinstance(value, dict):
            secret_key = self._secret_key
            for k, v in value.items():
                is_secret = secret_key.get(k)
                if is_secret is None:
                    is_secret = self._learn_key(k)
                if is_secret and v not in (None, ""):
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

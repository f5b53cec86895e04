"""The condition language shared by filter and route steps and alert rules.

Parsed once and compiled to Python closures; user text is never passed to ``eval``.

    severity_number >= 17 and resource.service.name in ["checkout", "payments"]
    body contains "timeout" or attributes.status =~ "^5\\d\\d$"
    not exists attributes.user and source == "k8s"
    resource["k8s.namespace.name"] != "kube-system"

Grammar (keywords are case-insensitive)::

    expr    := and_ ("or" and_)*
    and_    := unary ("and" unary)*
    unary   := "not" unary | "(" expr ")" | "exists" field | "true" | "false" | test
    test    := field OP literal | field "in" list | field ("contains"|"startswith"|"endswith") string
               | field ("=~"|"!~"|"matches") string
    OP      := == != < <= > >=
    literal := "string" | 'string' | number | true | false | null
    field   := name ("." name | "[" string "]")*

Field paths: the first name is an envelope field (id, time, observed_time, ingest_time, severity_text,
severity_number, body, attributes, resource, source, routes); the rest walks into it, matching dotted
keys as OTel writes them (``resource.k8s.pod.name`` finds the key ``k8s.pod.name``). A path that
starts with another name is looked up in ``attributes`` first, then ``resource``
(``service.name`` finds ``resource["service.name"]``). A missing field compares as null: ``==`` is
false, ``!=`` is true, ordering comparisons are false.
"""

from __future__ import annotations

import re
from typing import Any
from collections.abc import Callable

from logtide.envelope import FIELDS

Predicate = Callable[[dict], bool]

ENVELOPE_FIELDS = frozenset(FIELDS)

MAX_LENGTH = 10_000
MAX_DEPTH = 50


class ConditionError(ValueError):
    """A condition that does not parse; ``position`` is the character offset of the problem."""

    def __init__(self, message: str, text: str = "", position: int | None = None):
        self.position = position
        self.text = text
        where = f" at column {position + 1}" if position is not None else ""
        super().__init__(f"{message}{where}: {text!r}" if text else message)


_TOKEN = re.compile(
    r"""
    \s*(?:
      (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w.])
    | (?P<op>==|!=|<=|>=|=~|!~|<|>|\(|\)|\[|\]|,|\.)
    | (?P<name>[A-Za-z_@$][\w\-@$]*)
    )""",
    re.VERBOSE,
)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}


def _unquote(s: str) -> str:
    body = s[1:-1]
    if "\\" not in body:
        return body
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            # Unknown escapes are kept as written so regexes like "\d" work without doubling.
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _tokenize(text: str) -> list[tuple[str, Any, int]]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ConditionError("unexpected character", text, len(text) - len(text[pos:].lstrip()))
        start = m.start(m.lastgroup)
        kind, raw = m.lastgroup, m.group(m.lastgroup)
        if kind == "string":
            tokens.append(("string", _unquote(raw), start))
        elif kind == "number":
            tokens.append(("number", float(raw) if any(c in raw for c in ".eE") else int(raw), start))
        elif kind == "op":
            tokens.append(("op", raw, start))
        else:
            tokens.append(("name", raw, start))
        pos = m.end()
    tokens.append(("end", None, len(text)))
    return tokens


# --- field access -----------------------------------------------------------------------------


def _walk(node: Any, parts: tuple[str, ...]) -> Any:
    """Walk ``parts`` into nested dicts, trying dotted keys (longest first) at each level."""
    i, n = 0, len(parts)
    while i < n:
        if isinstance(node, dict):
            for j in range(n, i, -1):
                key = parts[i] if j == i + 1 else ".".join(parts[i:j])
                if key in node:
                    node = node[key]
                    i = j
                    break
            else:
                return None
        elif isinstance(node, list) and parts[i].isdigit() and int(parts[i]) < len(node):
            node = node[int(parts[i])]
            i += 1
        else:
            return None
    return node


def field_getter(parts: tuple[str, ...]) -> Callable[[dict], Any]:
    """A fast accessor for a field path (see the module doc for the lookup rules)."""
    head, rest = parts[0], parts[1:]
    if head in ENVELOPE_FIELDS:
        if not rest:
            return lambda e: e.get(head)
        if len(rest) == 1:
            key = rest[0]
            return lambda e: (e.get(head) or {}).get(key) if isinstance(e.get(head), dict) else _walk(e.get(head), rest)
        return lambda e: _walk(e.get(head), rest)

    def shorthand(e: dict) -> Any:
        v = _walk(e.get("attributes"), parts)
        return v if v is not None else _walk(e.get("resource"), parts)

    return shorthand


def parse_field(path: str) -> tuple[str, ...]:
    """Split a field path as the language writes it (``a.b["c.d"]``) into its parts."""
    p = _Parser(path)
    parts = p.field()
    p.expect_end()
    return parts


# --- comparison helpers ---------------------------------------------------------------------------


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) is not isinstance(b, bool):
        return False  # Python says False == 0 and True == 1.0; a log's `false` is not the number 0
    if a == b:
        return True
    if isinstance(b, (int, float)) and not isinstance(b, bool):
        na = _num(a)
        return na is not None and na == b
    if isinstance(b, str) and isinstance(a, (int, float)) and not isinstance(a, bool):
        return str(a) == b
    return False


def _ordered(op: str) -> Callable[[Any, Any], bool]:
    import operator

    fn = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}[op]

    def cmp(a: Any, b: Any) -> bool:
        if a is None:
            return False
        if isinstance(b, (int, float)):
            na = _num(a)
            return na is not None and fn(na, b)
        if isinstance(a, str) and isinstance(b, str):
            return fn(a, b)
        return False

    return cmp


def _member_key(v: Any) -> Any:
    """A set key under which True/False do not collide with 1/0."""
    return ("bool", v) if isinstance(v, bool) else v


def _text(v: Any) -> str | None:
    if v is None:
        return None
    return v if isinstance(v, str) else str(v)


# --- parser ---------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str):
        if len(text) > MAX_LENGTH:
            raise ConditionError(f"condition longer than {MAX_LENGTH} characters")
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> tuple[str, Any, int]:
        return self.tokens[self.i]

    def take(self) -> tuple[str, Any, int]:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def error(self, msg: str, tok: tuple | None = None) -> ConditionError:
        tok = tok or self.peek()
        return ConditionError(msg, self.text, tok[2])

    def keyword(self, word: str) -> bool:
        kind, val, _ = self.peek()
        if kind == "name" and val.lower() == word:
            self.i += 1
            return True
        return False

    def op(self, sym: str) -> bool:
        kind, val, _ = self.peek()
        if kind == "op" and val == sym:
            self.i += 1
            return True
        return False

    def expect_end(self) -> None:
        if self.peek()[0] != "end":
            raise self.error("unexpected text")

    def parse(self) -> Predicate:
        if self.peek()[0] == "end":
            raise ConditionError("empty condition", self.text, 0)
        pred = self.expr()
        self.expect_end()
        return pred

    def expr(self) -> Predicate:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"nesting deeper than {MAX_DEPTH}")
        parts = [self.and_()]
        while self.keyword("or"):
            parts.append(self.and_())
        self.depth -= 1
        if len(parts) == 1:
            return parts[0]
        if len(parts) == 2:
            a, b = parts
            return lambda e: a(e) or b(e)
        return lambda e: any(p(e) for p in parts)

    def and_(self) -> Predicate:
        parts = [self.unary()]
        while self.keyword("and"):
            parts.append(self.unary())
        if len(parts) == 1:
            return parts[0]
        if len(parts) == 2:
            a, b = parts
            return lambda e: a(e) and b(e)
        return lambda e: all(p(e) for p in parts)

    def unary(self) -> Predicate:
        if self.keyword("not"):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.error(f"nesting deeper than {MAX_DEPTH}")
            inner = self.unary()
            self.depth -= 1
            return lambda e: not inner(e)
        if self.op("("):
            inner = self.expr()
            if not self.op(")"):
                raise self.error("expected ')'")
            return inner
        if self.keyword("exists"):
            get = field_getter(self.field())
            return lambda e: get(e) is not None
        kind, val, _ = self.peek()
        nkind, nval, _ = self.tokens[min(self.i + 1, len(self.tokens) - 1)]
        # A bare true/false is a constant condition, unless it starts a test (a field named "true").
        if (
            kind == "name"
            and val.lower() in ("true", "false")
            and (
                nkind == "end" or (nkind == "op" and nval == ")") or (nkind == "name" and nval.lower() in ("and", "or"))
            )
        ):
            self.i += 1
            const = val.lower() == "true"
            return lambda e: const
        return self.test()

    def field(self) -> tuple[str, ...]:
        kind, val, _ = self.take()
        if kind != "name" or val.lower() in ("and", "or", "not", "in", "exists"):
            raise self.error("expected a field name", self.tokens[self.i - 1])
        parts = [val]
        while True:
            if self.op("."):
                kind, val, _ = self.take()
                if kind == "name":
                    parts.append(val)
                elif kind == "number" and isinstance(val, int):
                    parts.append(str(val))
                else:
                    raise self.error("expected a name after '.'", self.tokens[self.i - 1])
            elif self.op("["):
                kind, val, _ = self.take()
                if kind not in ("string", "number"):
                    raise self.error("expected a quoted key inside [ ]", self.tokens[self.i - 1])
                parts.append(str(val))
                if not self.op("]"):
                    raise self.error("expected ']'")
            else:
                return tuple(parts)

    def literal(self) -> Any:
        kind, val, _ = self.take()
        if kind in ("string", "number"):
            return val
        if kind == "name" and val.lower() in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[val.lower()]
        raise self.error('expected a value ("string", number, true, false, null)', self.tokens[self.i - 1])

    def string(self, what: str) -> str:
        kind, val, _ = self.take()
        if kind != "string":
            raise self.error(f"{what} needs a quoted string", self.tokens[self.i - 1])
        return val

    def regex(self) -> re.Pattern:
        tok = self.peek()
        pattern = self.string("a regex match")
        try:
            return re.compile(pattern)
        except re.error as exc:
            raise ConditionError(f"invalid regex ({exc})", self.text, tok[2]) from None

    def test(self) -> Predicate:
        get = field_getter(self.field())
        kind, val, pos = self.peek()
        if kind == "op" and val in ("==", "!="):
            self.i += 1
            lit = self.literal()
            if val == "==":
                return lambda e: _eq(get(e), lit)
            return lambda e: not _eq(get(e), lit)
        if kind == "op" and val in ("<", "<=", ">", ">="):
            self.i += 1
            lit = self.literal()
            if not isinstance(lit, (int, float, str)) or isinstance(lit, bool):
                raise self.error(f"'{val}' compares with a number or a string", self.tokens[self.i - 1])
            cmp = _ordered(val)
            if isinstance(lit, (int, float)):
                # Fast path for the common case (a number field against a number), same result.
                import operator

                op_fn = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}[val]

                def numeric(e: dict) -> bool:
                    v = get(e)
                    if v.__class__ is int or v.__class__ is float:
                        return op_fn(v, lit)
                    return cmp(v, lit)

                return numeric
            return lambda e: cmp(get(e), lit)
        if (kind == "op" and val in ("=~", "!~")) or (kind == "name" and val.lower() == "matches"):
            self.i += 1
            rx = self.regex()
            search = rx.search
            if val == "!~":
                return lambda e: (t := _text(get(e))) is None or search(t) is None
            return lambda e: (t := _text(get(e))) is not None and search(t) is not None
        if kind == "name" and val.lower() == "contains":
            self.i += 1
            needle = self.literal()

            def contains(e: dict) -> bool:
                v = get(e)
                if isinstance(v, (list, tuple, dict)):
                    return needle in v
                t = _text(v)
                return t is not None and str(needle) in t

            return contains
        if kind == "name" and val.lower() in ("startswith", "endswith"):
            self.i += 1
            s = self.string(val)
            if val.lower() == "startswith":
                return lambda e: (t := _text(get(e))) is not None and t.startswith(s)
            return lambda e: (t := _text(get(e))) is not None and t.endswith(s)
        if kind == "name" and val.lower() == "in":
            self.i += 1
            if not self.op("["):
                raise self.error('\'in\' needs a list like ["a", "b"]')
            items = []
            if not self.op("]"):
                while True:
                    items.append(self.literal())
                    if self.op("]"):
                        break
                    if not self.op(","):
                        raise self.error("expected ',' or ']'")
            # Bools are kept apart from numbers (Python's True == 1), and only scalars can be members.
            hashable = frozenset(_member_key(i) for i in items)
            texts = frozenset(str(i) for i in items if isinstance(i, (int, float)) and not isinstance(i, bool))

            def member(e: dict) -> bool:
                v = get(e)
                if v.__class__ is str:  # fast path for the common case, same result
                    return v in hashable or v in texts
                if not (v is None or isinstance(v, (str, int, float))):
                    return False
                return (
                    _member_key(v) in hashable
                    or (isinstance(v, str) and v in texts)
                    or (isinstance(v, (int, float)) and not isinstance(v, bool) and str(v) in texts)
                )

            return member
        raise self.error("expected an operator (==, !=, <, <=, >, >=, =~, !~, in, contains, startswith, endswith)")


def compile_condition(text: str) -> Predicate:
    """Compile a condition to a predicate over an event dict; raise ConditionError on bad text."""
    if not isinstance(text, str):
        raise ConditionError(f"a condition must be a string, got {type(text).__name__}")
    return _Parser(text).parse()


def check(text: str) -> str:
    """Validate a condition (for pydantic validators); return it unchanged or raise ConditionError."""
    compile_condition(text)
    return text

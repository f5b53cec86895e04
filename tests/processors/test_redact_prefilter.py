"""The redaction pre-checks (``hint_mask``) only skip work: they never change what is redacted.

Mask mode runs one pass per kind in kind order, so a skipped pass must be one that would have
changed nothing; hash mode runs one alternation, where even a refused candidate (a time like
02:56:15 looks like IPv6 to the regex) hides its text from the other kinds, so there a kind's regex
must join whenever it can match at all. Checked on the Loghub corpus and on generated strings built
from overlapping and adjacent pieces of every kind.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from logtide.processors.steps.redact import _BIT, ALL_KINDS, PATTERNS, Redactor, hint_mask

PIECES = [
    "4111 1111 1111 1111",
    "4111111111111111",
    "1234567812345678",
    "378282246310005",
    "5555-5555-5555-4444",
    "a@b.co",
    "x.y+z@ex-ample.com",
    "10.0.0.1",
    "256.1.1.1",
    "1.2.3.4.5",
    "::1",
    "fe80::1%eth0",
    "2001:db8::8a2e:370:7334",
    "1:2:3:4:5:6:7:8",
    "02:56:15",
    "::ffff:1.2.3.4",
    "Bearer abcdefgh123",
    "bearer eyJabcd.efgh.ijk",
    "eyJhbGciOi.eyJzdWIi.sig",
    "AKIAABCDEFGHIJKLMNOP",
    "password=hunter2",
    "Secret: 'x y'",
    'api-key="q"',
    " ",
    "-",
    ".",
    ":",
    "@",
    "=",
    "1",
    "0",
    "x",
    "٣٤٥٦",
    "４１１１",
    "é",
    "token:",
]


def generated(n: int, seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        out.append("".join(rng.choice(PIECES) for _ in range(rng.randint(1, 6))))
        out.append("".join(rng.choice("0123456789 -.:@aAbeEyJ=f%") for _ in range(rng.randint(1, 40))))
    return out


@pytest.fixture
def texts(corpus_dir) -> list[str]:
    lines = []
    for path in sorted(Path(corpus_dir).glob("*.log")):
        lines += path.read_text(errors="replace").splitlines()[:500]
    return lines + generated(4000)


def test_mask_mode_skips_only_passes_that_change_nothing(texts):
    fast, every = Redactor(list(ALL_KINDS)), Redactor(list(ALL_KINDS))
    all_bits = sum(_BIT.values())
    for t in texts:
        assert fast.redact(t) == every._apply(t, all_bits), t
    assert fast.counts == every.counts


def test_hash_mode_alternation_sees_every_kind_that_can_match(texts):
    regexes = {kind: re.compile(PATTERNS[kind]) for kind in ALL_KINDS if kind not in ("bearer", "password")}
    for t in texts:  # (bearer and password keep their cased word hints; one-colon IPv6 candidates were never sought)
        mask = hint_mask(t, candidates=True)
        for kind, rx in regexes.items():
            if any(kind != "ipv6" or m.group().count(":") >= 2 for m in rx.finditer(t)):
                assert mask & _BIT[kind], (kind, t)


#: The plain forms of the regexes that PATTERNS writes for speed (possessive local part, IPv4 guard).
READABLE = {
    "email": r"(?P<email>(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})",
    "ipv4": r"(?P<ipv4>(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
    r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.]))",
}


@pytest.mark.parametrize("kind", sorted(READABLE))
def test_fast_regexes_match_what_their_readable_forms_match(texts, kind):
    fast, plain = re.compile(PATTERNS[kind]), re.compile(READABLE[kind])
    extra = [
        "a@b.co",
        "x@@y.com",
        "a.b@c.d.ef",
        "-@x.io",
        "1.2.3.4",
        "01.2.3.4",
        "255.255.255.255",
        "256.1.1.1",
        "1.2.3",
        "1.2.3.4.5",
        "999.1.1.1 8.8.8.8",
        "1.1.1.1a",
    ]
    for t in texts + extra:
        assert [m.span() for m in fast.finditer(t)] == [m.span() for m in plain.finditer(t)], t
        for pos in range(0, len(t), 7):  # also from inside the text, as an alternation reaches it
            fm, pm = fast.match(t, pos), plain.match(t, pos)
            assert (fm and fm.span()) == (pm and pm.span()), (t, pos)


@pytest.mark.parametrize(
    "mode,text,expected",
    [
        # a time is an IPv6 candidate that ipaddress refuses: in one alternation it hides what it spans
        ("hash", "02:56:15a@b.co:", "02:56:15a@b.co:"),
        ("hash", "at 02:56:15 mail a@b.co", "at 02:56:15 mail <email:>"),
        ("mask", "02:56:15a@b.co:", "02:56:<email>:"),
        # a 17-digit run that fails Luhn hides the card inside it from the card pass (both modes)
        ("mask", "x 15 378282246310005", "x 15 378282246310005"),
        ("mask", "x: 378282246310005", "x: <card>"),
        # kinds side by side
        ("mask", "10.0.0.1 a@b.co 4111111111111111 ::1", "<ipv4> <email> <card> <ipv6>"),
        ("mask", "4111 1111 1111 1111@example.com", "4111 1111 1111 <email>"),
    ],
)
def test_overlapping_and_adjacent_kinds(mode, text, expected):
    r = Redactor(list(ALL_KINDS), mode=mode, secret="k" * 20 if mode == "hash" else None)
    out = r.redact(text)
    if mode == "hash":
        out = re.sub(r"<(\w+):[0-9a-f]{16}>", r"<\1:>", out)
    assert out == expected

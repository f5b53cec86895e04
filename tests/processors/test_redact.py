"""Redaction: true positives, false positives (what must stay), hashing for joins, per-route copies."""

from __future__ import annotations

import pytest

from logtide.processors.pipeline import Pipeline, build_steps
from logtide.processors.steps import StepContext
from logtide.processors.steps.redact import ALL_KINDS, CustomPattern, Redactor, luhn_ok
from tests.processors.conftest import make_event


@pytest.fixture
def r():
    return Redactor(list(ALL_KINDS))


@pytest.mark.parametrize(
    "text,expected",
    [
        ("mail alice@example.com now", "mail <email> now"),
        ("to: bob.smith+tag@corp.example.co.uk,", "to: <email>,"),
        ("card 4111 1111 1111 1111 declined", "card <card> declined"),
        ("card 4111-1111-1111-1111", "card <card>"),
        ("amex 378282246310005 ok", "amex <card> ok"),
        ("Authorization: Bearer abcdef1234567890xyz", "Authorization: Bearer <bearer>"),
        (
            "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk end",
            "token <jwt> end",
        ),
        ("key AKIAIOSFODNN7EXAMPLE used", "key <aws_key> used"),
        ("login password=hunter2 user=bob", "login password=<password> user=bob"),
        ('db {"pwd": "s3 cr3t"} x', 'db {"pwd": <password>} x'),
        ("api_key: abc123def&next=1", "api_key: <password>&next=1"),
        ("from 10.1.2.3 to 192.168.0.254", "from <ipv4> to <ipv4>"),
        ("v6 2001:db8::8a2e:370:7334 and ::1 and fe80::1%eth0", "v6 <ipv6> and <ipv6> and <ipv6>"),
    ],
)
def test_true_positives(r, text, expected):
    assert r.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 1234567812345678 shipped",  # 16 digits that fail Luhn: an order id, kept
        "trace 4111111111111112",  # one digit off a test card
        "took 1234 ms at 10:20:30, version 1.2.3",  # times and versions are not IPs
        "build 1.2.3.4.5 and 999.1.1.1",  # not IPv4 addresses
        "ratio 3:4 and a::b::c",  # not IPv6
        "the bearer of bad news",  # the word without a token
        "user@localhost",  # no domain with a dot
        "passing tests: 12",  # 'pass' inside a word, no assignment
        "AKIA is a prefix",  # too short
        "uuid 550e8400-e29b-41d4-a716-446655440000",
    ],
)
def test_false_positives_stay(r, text):
    assert r.redact(text) == text


def test_luhn():
    assert luhn_ok("4111111111111111") and luhn_ok("79927398713")
    assert not luhn_ok("1234567812345678")


def test_hash_mode_is_stable_and_keyed():
    a = Redactor(["email"], mode="hash", secret="k" * 16)
    b = Redactor(["email"], mode="hash", secret="other-secret-key")
    x = a.redact("alice@example.com paid; alice@example.com again; bob@example.com")
    tokens = x.replace(";", "").split()
    assert tokens[0] == tokens[2] != tokens[4] and tokens[0].startswith("<email:")
    assert "alice" not in x
    assert b.redact("alice@example.com") != tokens[0]  # another key, another token
    assert a.redact("alice@example.com") == tokens[0]  # stable across calls


def test_attributes_nested_and_secret_keys(r):
    ev = make_event(1, body="ok")
    ev["attributes"] = {
        "user": {"email": "carol@example.org", "ips": ["10.0.0.1", "x"]},
        "Password": "hunter2",
        "token": 12345,
        "n": 4111111111111111,
    }
    r.redact_value(ev["attributes"])
    assert ev["attributes"] == {
        "user": {"email": "<email>", "ips": ["<ipv4>", "x"]},
        "Password": "<password>",
        "token": "<password>",
        "n": 4111111111111111,
    }


def test_custom_patterns_with_value_group():
    r = Redactor(
        [],
        custom=[
            CustomPattern(name="order_ref", pattern=r"ORD-\d{6}", hint="ORD-"),
            CustomPattern(name="ssn", pattern=r"ssn=(?P<value>\d{3}-\d\d-\d{4})"),
        ],
    )
    assert r.redact("ref ORD-123456 ssn=123-45-6789") == "ref <order_ref> ssn=<ssn>"
    assert r.counts == {"order_ref": 1, "ssn": 1}


def test_per_route_redaction_copies():
    steps = build_steps(
        [
            {"type": "route", "rules": [{"when": "true", "sinks": ["audit", "analytics"]}]},
            {
                "type": "redact",
                "routes": ["analytics"],
                "kinds": ["email"],
                "mode": "hash",
                "secret": "0123456789abcdef",
            },
        ],
        StepContext(sinks=("monitoring", "audit", "analytics")),
    )
    out = Pipeline(steps).run(make_event(7, body="signup dave@mail.example.net"))
    by_sink = {sinks: ev for ev, sinks in out}
    assert by_sink[("audit",)]["body"] == "signup dave@mail.example.net"
    assert by_sink[("analytics",)]["body"].startswith("signup <email:")
    assert by_sink[("audit",)]["id"] == by_sink[("analytics",)]["id"]
    assert by_sink[("analytics",)]["routes"] == ["audit", "analytics"]


def test_remembered_short_strings_count_every_time():
    r = Redactor(["email"])
    for _ in range(3):
        assert r.redact("by alice@example.com") == "by <email>"
    assert r.redact("x" * 100 + " bob@example.com") == "x" * 100 + " <email>"  # too long to remember
    assert r.counts == {"email": 4}


def test_corpus_ips_all_redacted(corpus_dir):
    import os
    import re

    r = Redactor(["ipv4", "ipv6"])
    with open(os.path.join(corpus_dir, "OpenSSH_2k.log"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    out = [r.redact(line) for line in lines]
    left = [line for line in out if re.search(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])", line)]
    assert left == []
    assert r.counts["ipv4"] >= 1500
    # the rest of the line is untouched: "Failed password for root from <ipv4> port 38926 ssh2"
    assert any(line.endswith("from <ipv4> port 38926 ssh2") or "from <ipv4> port" in line for line in out)

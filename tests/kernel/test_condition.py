"""The condition language of filters, routes and alert rules: parsed, never eval'd."""

from __future__ import annotations

import pytest

from logtide.condition import ConditionError, check, compile_condition, field_getter, parse_field

EVENT = {
    "id": "abc123",
    "time": 1_700_000_000_000_000_000,
    "observed_time": 1_700_000_000_100_000_000,
    "ingest_time": None,
    "severity_text": "ERROR",
    "severity_number": 17,
    "body": "payment provider timeout after 3000ms for alice@example.com",
    "attributes": {
        "status": "503",
        "latency_ms": 812,
        "user": {"id": 7, "email": "alice@example.com"},
        "tags": ["blue", "canary"],
        "http.method": "POST",
        "ok": False,
    },
    "resource": {
        "service.name": "payments",
        "k8s.namespace.name": "shop",
        "k8s.pod.name": "payments-7d9-x2",
        "cloud.region": "eu-west-1",
    },
    "source": "k8s",
    "routes": ["monitoring", "audit"],
    "schema": 1,
}


@pytest.mark.parametrize(
    "text",
    [
        "severity_number >= 17",
        "severity_number > 16.5",
        "severity_number == 17",
        "severity_number != 9",
        'severity_text == "ERROR"',
        "severity_text == 'ERROR'",
        'source == "k8s" and severity_number >= 13',
        'source == "cloudwatch" or severity_number >= 17',
        'not source == "cloudwatch"',
        'not (source == "cloudwatch" or source == "salesforce")',
        'resource.service.name in ["checkout", "payments"]',
        'resource["k8s.namespace.name"] != "kube-system"',
        'resource.k8s.pod.name startswith "payments-"',
        'resource.k8s.pod.name endswith "x2"',
        'service.name == "payments"',  # shorthand: resource
        "status == 503",  # shorthand: attributes; numeric text == number
        'attributes.status =~ "^5\\d\\d$"',
        'attributes.status matches "^5"',
        'attributes.status !~ "^2"',
        'body contains "timeout"',
        'body =~ "[a-z]+@example\\.com"',
        "attributes.latency_ms > 500 and attributes.latency_ms <= 812",
        "attributes.latency_ms < 1000.0",
        'attributes.latency_ms == "812"',
        "attributes.user.id == 7",
        'attributes.user.email endswith "@example.com"',
        'attributes.tags contains "canary"',
        'attributes.tags.1 == "canary"',
        'attributes["http.method"] == "POST"',
        'attributes.http.method == "POST"',
        "attributes.ok == false",
        "exists attributes.user",
        "not exists attributes.missing",
        'attributes.missing != "x"',  # missing compares as null
        "attributes.missing == null",
        'routes contains "audit"',
        "true",
        "TRUE and NOT false",
        "severity_number in [17, 18]",
        "attributes.status in [503, 504]",  # "503" in numbers
        'severity_number >= 13 AND (source == "k8s" OR source == "file")',
        "cloud.region == 'eu-west-1'",
        "attributes.ok in [false, null]",
        "attributes.missing in [null]",
        'severity_text > "DEBUG"',  # string ordering
    ],
)
def test_true_conditions(text):
    assert compile_condition(text)(EVENT) is True


@pytest.mark.parametrize(
    "text",
    [
        "severity_number < 17",
        "severity_number == 9",
        'source == "cloudwatch"',
        'source != "k8s"',
        'source == "k8s" and severity_number < 13',
        'source == "file" or severity_number < 13',
        "not severity_number >= 17",
        'resource.service.name in ["checkout", "catalog"]',
        "resource.service.name in []",
        'body contains "disk full"',
        'body startswith "disk"',
        'attributes.status =~ "^2"',
        'attributes.status !~ "^5"',
        'attributes.missing == "x"',
        "attributes.missing > 3",  # ordering with a missing field is false
        'attributes.missing =~ ".*"',
        'attributes.missing contains "a"',
        'attributes.user.email == "bob@example.com"',
        'attributes.tags contains "red"',
        'attributes.tags.5 == "x"',
        "exists attributes.nope",
        "exists resource.k8s.container.name",
        "false",
        "attributes.user > 3",  # a dict is not ordered against a number
        "body > 5",  # text that is not a number
        "attributes.ok == true",
        "attributes.ok == 0",  # a bool is not the number 0
        "attributes.ok in [0, 1]",
        'attributes.user in ["a", 7]',  # a dict is never a member (and does not raise)
        'attributes.tags in ["blue"]',
    ],
)
def test_false_conditions(text):
    assert compile_condition(text)(EVENT) is False


def test_events_with_missing_or_odd_fields_never_raise():
    pred = compile_condition('attributes.user.id == 7 or resource.service.name contains "x" or body =~ "a"')
    for e in (
        {},
        {"attributes": None},
        {"attributes": "text"},
        {"attributes": {"user": [1]}},
        {"body": {"nested": True}},
        {"body": 5},
    ):
        pred(e)


@pytest.mark.parametrize(
    "text,column,words",
    [
        ("severity_number >>= 3", 18, "expected a value"),
        ("source ==", 10, "expected a value"),
        ('source = "k8s"', 8, "unexpected character"),
        ('(source == "k8s"', 17, "expected ')'"),
        ('source == "k8s")', 16, "unexpected text"),
        ('source == "k8s" and', 20, "expected a field name"),
        ('source "k8s"', 8, "expected an operator"),
        ('attributes.status =~ "("', 22, "invalid regex"),
        ("body contains", 14, "expected a value"),
        ("body startswith 5", 17, "startswith needs a quoted string"),
        ('source in "k8s"', 11, "'in' needs a list"),
        ('source in ["a" "b"]', 16, "expected ',' or ']'"),
        ("severity_number > null", 19, "compares with a number or a string"),
        ('source == "unterminated', 11, "unexpected character"),
        ("resource[k8s] == 1", 10, "expected a quoted key"),
        ("attributes. == 1", 13, "expected a name after '.'"),
        ("source == k8s", 11, "expected a value"),
    ],
)
def test_errors_name_the_column(text, column, words):
    with pytest.raises(ConditionError) as exc:
        compile_condition(text)
    msg = str(exc.value)
    assert words in msg
    assert f"at column {column}" in msg, msg
    assert exc.value.position == column - 1


@pytest.mark.parametrize(
    "text",
    [
        '__import__("os").system("true")',
        "__import__('os')",
        'exec("x = 1")',
        "body.__class__ == 1",
        "lambda: True",
        'source == "k8s"; import os',
        'eval("1") == 1',
        "[x for x in ()]",
        "{} == {}",
    ],
)
def test_python_is_not_evaluated(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        pred = compile_condition(text)
    except ConditionError:
        return
    # anything that parses is a plain field test and has no effect
    pred(EVENT)
    assert list(tmp_path.iterdir()) == []


def test_dunder_paths_read_data_not_attributes_of_objects():
    assert compile_condition("body.__class__ == 1")(EVENT) is False
    assert compile_condition("exists attributes.__dict__")(EVENT) is False


def test_empty_too_long_and_non_string():
    with pytest.raises(ConditionError, match="empty condition"):
        compile_condition("   ")
    with pytest.raises(ConditionError, match="longer than"):
        compile_condition('source == "x" or ' * 1000 + "true")
    with pytest.raises(ConditionError, match="must be a string"):
        compile_condition(42)


def test_deep_nesting_is_an_error_not_a_crash():
    with pytest.raises(ConditionError, match="nesting deeper"):
        compile_condition("(" * 200 + "true" + ")" * 200)
    with pytest.raises(ConditionError, match="nesting deeper"):
        compile_condition("not " * 200 + "true")


def test_escapes_in_strings():
    assert compile_condition(r'body == "a\"b\\c\n"')({"body": 'a"b\\c\n'}) is True
    assert compile_condition(r"body == 'it\'s'")({"body": "it's"}) is True


def test_check_returns_text_or_raises():
    assert check('source == "k8s"') == 'source == "k8s"'
    with pytest.raises(ConditionError):
        check("source ==")


def test_field_getter_and_parse_field():
    assert parse_field('resource["k8s.pod.name"]') == ("resource", "k8s.pod.name")
    assert parse_field("attributes.user.id") == ("attributes", "user", "id")
    assert field_getter(parse_field('resource["k8s.pod.name"]'))(EVENT) == "payments-7d9-x2"
    assert field_getter(parse_field("resource.k8s.pod.name"))(EVENT) == "payments-7d9-x2"
    assert field_getter(parse_field("k8s.namespace.name"))(EVENT) == "shop"
    assert field_getter(parse_field("attributes.nope"))(EVENT) is None
    with pytest.raises(ConditionError):
        parse_field("a b")

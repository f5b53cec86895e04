"""Parsers on real logs (Loghub) and on the formats they claim: count what parses, check fields."""

from __future__ import annotations

import os
from collections import Counter
from datetime import datetime, UTC

import pytest

from logtide.processors.steps import StepContext
from logtide.processors.steps.parse import (
    Parse,
    ParseConfig,
    parse_json,
    parse_kv,
    parse_logfmt,
    parse_plain,
    parse_syslog,
)
from tests.processors.conftest import make_event

DEFAULT = ParseConfig(type="parse")


def lines(corpus_dir, name):
    with open(os.path.join(corpus_dir, f"{name}_2k.log"), encoding="utf-8", errors="replace") as f:
        return f.read().splitlines()


def parse_all(corpus_dir, name):
    step = Parse(DEFAULT, StepContext())
    results = [step.parse_text(line) for line in lines(corpus_dir, name)]
    return results, Counter(r.format if r else None for r in results)


def utc(ns):
    return datetime.fromtimestamp(ns / 1e9, UTC)


# (file, parser expected, at least this many of the 2000 lines)
EXPECTED = [
    ("Linux", "syslog", 1990),
    ("OpenSSH", "syslog", 2000),
    ("Mac", "syslog", 1850),
    ("Apache", "plain", 2000),
    ("HDFS", "plain", 2000),
    ("Zookeeper", "plain", 2000),
    ("Spark", "plain", 2000),
    ("Android", "plain", 2000),
    ("Windows", "plain", 2000),
    ("OpenStack", "plain", 2000),
    ("Hadoop", "plain", 2000),
]


@pytest.mark.parametrize("name,fmt,minimum", EXPECTED)
def test_loghub_corpus_parses(corpus_dir, name, fmt, minimum):
    results, counts = parse_all(corpus_dir, name)
    assert counts[fmt] >= minimum, counts
    # every parsed line has a timestamp
    assert all(r.time_ns for r in results if r is not None)


def test_loghub_fields_by_eye(corpus_dir):
    res, _ = parse_all(corpus_dir, "OpenSSH")
    # Dec 10 06:55:46 LabSZ sshd[24200]: reverse mapping checking getaddrinfo for ...
    first = res[0]
    assert first.fields == {"host.name": "LabSZ", "process.executable.name": "sshd", "process.pid": "24200"}
    assert first.message.startswith("reverse mapping checking getaddrinfo")
    t = utc(first.time_ns)
    assert (t.month, t.day, t.hour, t.minute, t.second) == (12, 10, 6, 55, 46)

    res, _ = parse_all(corpus_dir, "Linux")
    # Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; ...
    assert res[0].fields["process.executable.name"] == "sshd(pam_unix)"
    assert res[0].fields["process.pid"] == "19939"

    res, _ = parse_all(corpus_dir, "Zookeeper")
    # 2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/...
    assert utc(res[0].time_ns) == datetime(2015, 7, 29, 17, 41, 44, 747000, UTC)
    assert res[0].level == "INFO" and res[2].level == "WARN"

    res, counts = parse_all(corpus_dir, "Hadoop")
    levels = Counter(r.level for r in res)
    assert levels["ERROR"] > 100 and levels["FATAL"] >= 1

    res, _ = parse_all(corpus_dir, "Apache")
    # [Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok ...   /  [error] mod_jk child ...
    assert utc(res[0].time_ns) == datetime(2005, 12, 4, 4, 47, 44, tzinfo=UTC)
    assert (res[0].level, res[1].level) == ("notice", "error")

    res, _ = parse_all(corpus_dir, "HDFS")
    # 081109 203615 148 INFO dfs.DataNode$PacketResponder: ...
    assert utc(res[0].time_ns) == datetime(2008, 11, 9, 20, 36, 15, tzinfo=UTC)
    assert res[0].level == "INFO"

    res, _ = parse_all(corpus_dir, "Android")
    # 03-17 16:13:38.811  1702  2395 D WindowManager: ...
    assert res[0].level == "D"


def test_corpus_through_the_step_sets_severity(corpus_dir):
    step = Parse(DEFAULT, StepContext())
    sev = Counter()
    for i, line in enumerate(lines(corpus_dir, "Hadoop")):
        ev = step.process(make_event(i, body=line))
        sev[ev["severity_number"]] += 1
    assert sev[17] >= 100 and sev[13] >= 500 and sev[9] >= 1000 and sev[21] >= 1


def test_json_lifts_message_level_and_time():
    p = parse_json('{"level":"warn","msg":"slow query","ts":"2024-03-01T10:00:00.5Z","ms":812}')
    assert (p.message, p.level, p.fields) == ("slow query", "warn", {"ms": 812})
    assert utc(p.time_ns) == datetime(2024, 3, 1, 10, 0, 0, 500000, UTC)
    assert parse_json("{not json") is None
    assert parse_json("[1,2]") is None


def test_logfmt_and_kv():
    p = parse_logfmt('time=2024-03-01T10:00:00Z level=error msg="db down" retries=3 path=/api/x')
    assert (p.message, p.level, p.fields) == ("db down", "error", {"retries": "3", "path": "/api/x"})
    assert parse_logfmt("just some words = here") is None
    p = parse_kv("user logged in user=bob ip=10.0.0.1 level=info")
    assert p.fields == {"user": "bob", "ip": "10.0.0.1"} and p.level == "info"


def test_syslog_5424_with_structured_data():
    p = parse_syslog(
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        '[exampleSDID@32473 iut="3" eventSource="Application"] An application event'
    )
    assert p.message == "An application event"
    assert p.level == 5  # notice
    assert p.fields["host.name"] == "mymachine.example.com"
    assert p.fields["exampleSDID@32473.eventSource"] == "Application"
    assert p.fields["syslog.facility"] == 20
    assert utc(p.time_ns) == datetime(2003, 10, 11, 22, 14, 15, 3000, UTC)
    p = parse_syslog("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8")
    assert p.level == 2 and p.fields["process.executable.name"] == "su"


def test_regex_patterns_step():
    cfg = ParseConfig(
        type="parse",
        formats=["regex", "json"],
        patterns=[
            {
                "name": "access",
                "regex": r'^(?P<client>\S+) \S+ \S+ \[[^\]]+\] "(?P<method>\S+) (?P<path>\S+)[^"]*" '
                r"(?P<status>\d{3})",
            }
        ],
    )
    step = Parse(cfg, StepContext())
    ev = step.process(make_event(1, body='10.1.2.3 - - [01/Jan/2024:00:00:00 +0000] "GET /api/cart HTTP/1.1" 500 12'))
    assert ev["attributes"] == {"client": "10.1.2.3", "method": "GET", "path": "/api/cart", "status": "500"}
    ev = step.process(make_event(2))  # JSON still parsed after the regex did not match
    assert ev["body"] == "request 2"


def test_plain_leading_level_and_unparsed():
    assert parse_plain("ERROR [billing] upstream timeout").level == "ERROR"
    assert parse_plain("hello world") is None

"""Salesforce collector against an HTTPS server double: OAuth, SOQL paging, LogFile blobs, limits."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, UTC

import pytest

from logtide.transport import connect

from collect_helpers import metric, read_events, running_item, wait_for
from collect_sf_double import rsa_key_pair
from logtide.collectors.salesforce import logfile
from logtide.collectors.salesforce.collector import SalesforceCollector
from logtide.collectors.salesforce.config import SalesforceConfig

NAMES = "EVENT_TYPE,TIMESTAMP,REQUEST_ID,ORGANIZATION_ID,USER_ID,RUN_TIME,CPU_TIME,URI,SUCCESS,TIMESTAMP_DERIVED"
TYPES = "String,DateTime,String,Id,Id,Number,Number,String,Boolean,DateTime"


def sf_time(minutes_ago: float) -> str:
    t = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return t.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def login_csv(rows: int, tag: str) -> bytes:
    lines = [NAMES]
    for i in range(rows):
        lines.append(
            f'"Login","20231218054831.{i % 1000:03d}","{tag}-{i}","00D000000000001","005000000000001",'
            f'"{i}","{i * 2}","/home","1","2023-12-18T05:48:31.{i % 1000:03d}Z"'
        )
    return ("\n".join(lines) + "\n").encode()


def sf_collector(fast_kafka, double, topic: str, **overrides) -> SalesforceCollector:
    cfg = {
        "login_url": double.url,
        "ca_bundle": double.cert,
        "topic": topic,
        "poll_interval_seconds": 0.2,
        "start_days_ago": 1,
        "org_id": "00D000000000001",
        "limit_backoff_seconds": 0.3,
        "auth": {
            "kind": "password",
            "username": "collector@example.com",
            "password": "pw",
            "security_token": "TOKEN",
            "client_id": "cid",
            "client_secret": "csecret",
        },
        **overrides,
    }
    return SalesforceCollector(SalesforceConfig.model_validate(cfg), connect(fast_kafka))


def test_csv_typing_and_hostile_content():
    text = (
        "EVENT_TYPE,TIMESTAMP,RUN_TIME,SUCCESS,URI,EXTRA\n"
        '"Login","20231218054831.655","42","true","=cmd|\' /C calc\'!A0","x"\n'
        '"API","20231218054832","3.5","0","line1\nline2, ""quoted""","a\x00b"\n'
        '"API","not-a-time","NaN?","maybe","/x","y","surplus"\n'
    )
    schema = logfile.LogFileSchema("EVENT_TYPE,TIMESTAMP,RUN_TIME,SUCCESS,URI", "String,DateTime,Number,Boolean,String")
    problems = logfile.RowProblems()
    import io

    rows = list(logfile.typed_rows(io.StringIO(text, newline=""), schema, problems))
    assert [n for n, _ in rows] == [1, 2, 3]
    first, second, third = (r for _, r in rows)
    assert first == {
        "EVENT_TYPE": "Login",
        "TIMESTAMP": "2023-12-18T05:48:31.655Z",
        "RUN_TIME": 42,
        "SUCCESS": True,
        "URI": "=cmd|' /C calc'!A0",
        "EXTRA": "x",
    }
    assert second["URI"] == 'line1\nline2, "quoted"' and second["EXTRA"] == "a\x00b" and second["SUCCESS"] is False
    assert second["RUN_TIME"] == 3.5
    assert third["TIMESTAMP"] == "not-a-time" and third["_extra"] == ["surplus"]
    assert problems.schema_changed and problems.bad_rows == 1 and problems.bad_values == 3
    assert logfile.parse_timestamp("20231218054831.655") == 1702878511_655_000_000
    assert logfile.parse_timestamp("2023-12-18T05:48:31.000+0000") == 1702878511_000_000_000


@pytest.mark.timeout(60)
def test_hourly_log_files_paging_boundary_and_late_file(fast_kafka, new_topic, sf_double):
    t_same = sf_time(50)
    sf_double.add_log_file("0AT001", "Login", sf_time(55), login_csv(30, "a"), NAMES, TYPES)
    sf_double.add_log_file("0AT002", "Login", t_same, login_csv(20, "b"), NAMES, TYPES)
    sf_double.add_log_file("0AT003", "Login", t_same, login_csv(10, "c"), NAMES, TYPES)
    sf_double.add_log_file("0AT009", "API", t_same, login_csv(7, "other-type"), NAMES, TYPES)
    topic = new_topic(3)
    c = sf_collector(fast_kafka, sf_double, topic, event_types=["Login"])
    with running_item(c, "EventLogFile/Login/Hourly"):
        events = read_events(fast_kafka, topic, 60, timeout=30)
        assert len(events) == 60
        # A file that arrives late with the boundary's CreatedDate is still collected, the others not again.
        sf_double.add_log_file("0AT004", "Login", t_same, login_csv(5, "d"), NAMES, TYPES)
        events = read_events(fast_kafka, topic, 65, timeout=30, settle=1.0)
    assert len(events) == 65 and len({e["id"] for e in events}) == 65
    e = next(e for e in events if e["body"]["REQUEST_ID"] == "a-7")
    assert e["body"]["RUN_TIME"] == 7 and e["body"]["SUCCESS"] is True
    assert e["body"]["TIMESTAMP"] == "2023-12-18T05:48:31.007Z"
    assert e["time"] == 1702878511_007_000_000
    assert e["attributes"]["salesforce.log_file.id"] == "0AT001" and e["attributes"]["salesforce.log_file.row"] == 8
    assert e["resource"]["salesforce.org_id"] == "00D000000000001"
    cp = c.checkpoints.get("EventLogFile/Login/Hourly")
    assert sorted(cp["done"]) == ["0AT002", "0AT003", "0AT004"] and cp["partial"] is None
    c.close()


@pytest.mark.timeout(60)
def test_audit_objects_by_soql_paging_with_jwt(fast_kafka, new_topic, sf_double):
    pem, public = rsa_key_pair()
    sf_double.jwt_public_key = public
    for i in range(7):
        sf_double.add_record(
            "SetupAuditTrail",
            {
                "Id": f"0Ym{i:03d}",
                "Action": "changedPassword",
                "Section": "Users",
                "CreatedDate": sf_time(30 - i),
                "CreatedById": "005x",
                "Display": f"Changed password {i}",
                "DelegateUser": None,
            },
        )
    for i in range(5):
        sf_double.add_record(
            "LoginHistory",
            {
                "Id": f"0Ya{i:03d}",
                "UserId": "005x",
                "LoginTime": sf_time(20),
                "LoginType": "Application",
                "SourceIp": "10.0.0.1",
                "Status": "Success",
                "Application": "Browser",
                "Browser": "Chrome",
                "Platform": "Linux",
                "LoginUrl": "login.salesforce.com",
            },
        )
    topic = new_topic(1)
    c = sf_collector(
        fast_kafka,
        sf_double,
        topic,
        audit=["SetupAuditTrail", "LoginHistory"],
        auth={
            "kind": "jwt",
            "username": "collector@example.com",
            "client_id": "cid",
            "private_key": pem,
            "audience": sf_double.url,
        },
    )
    with running_item(c, "SetupAuditTrail"), running_item(c, "LoginHistory"):
        events = read_events(fast_kafka, topic, 12, timeout=30, settle=1.0)
    assert len(events) == 12 and len({e["id"] for e in events}) == 12
    audit = [e for e in events if e["attributes"]["salesforce.object"] == "SetupAuditTrail"]
    assert sorted(e["body"]["Display"] for e in audit) == [f"Changed password {i}" for i in range(7)]
    assert all("attributes" not in e["body"] for e in events)
    assert sf_double.logins >= 1
    assert len(c.checkpoints.get("LoginHistory")["done"]) == 5  # all five share one LoginTime
    c.close()


@pytest.mark.timeout(90)
def test_expired_session_5xx_storm_limits_and_hostile_csv(fast_kafka, new_topic, sf_double, caplog):
    hostile = (
        "EVENT_TYPE,TIMESTAMP,REQUEST_ID,URI,RUN_TIME\n"
        '"URI","20231218054831.100","h-1","=cmd|\' /C calc\'!A0","1"\n'
        '"URI","20231218054831.200","h-2","multi\nline ""quote""","2"\n'
        '"URI","20231218054831.300","h-3","nul\x00byte","abc"\n'
        '"URI","20231218054831.400","h-4","extra","4","surplus"\n'
    )
    sf_double.add_log_file("0AT101", "URI", sf_time(40), hostile.encode(), NAMES, TYPES)  # schema changed
    sf_double.add_log_file("0AT102", "URI", sf_time(39), login_csv(50, "big"), NAMES, TYPES)
    topic = new_topic(1)
    c = sf_collector(fast_kafka, sf_double, topic, event_types=["URI"], rows_per_checkpoint=10)
    errs = {
        k: metric("logtide_collector_errors_total", collector="salesforce", kind=k)
        for k in ("session_expired", "server", "schema_change", "csv_row", "sweep")
    }
    throttles = metric("logtide_collector_throttles_total", collector="salesforce")
    sf_double.api_used = sf_double.api_total - 10  # near the daily limit: the collector pauses
    with caplog.at_level(logging.WARNING, logger="collectors"):
        with running_item(c, "EventLogFile/URI/Hourly"):
            wait_for(lambda: metric("logtide_collector_throttles_total", collector="salesforce") > throttles)
            sf_double.api_used = 0
            sf_double.expire_sessions()
            sf_double.fail_next = [503, 500, 503]
            sf_double.break_blob = ("0AT102", 3000)  # the second file's download breaks mid-way
            events = read_events(fast_kafka, topic, 54, timeout=40, settle=1.0)
    by_req = {e["body"]["REQUEST_ID"]: e for e in events}
    assert len(by_req) == 54  # nothing missing
    assert len({e["id"] for e in events}) == len(by_req)  # re-read rows came with the same ids
    assert len(events) - len(by_req) < 20  # resumed mid-file, not from its first row
    assert by_req["h-1"]["body"]["URI"] == "=cmd|' /C calc'!A0"
    assert by_req["h-2"]["body"]["URI"] == 'multi\nline "quote"'
    assert by_req["h-3"]["body"]["URI"] == "nul\x00byte" and by_req["h-3"]["body"]["RUN_TIME"] == "abc"
    assert by_req["h-4"]["body"]["_extra"] == ["surplus"]
    after = {k: metric("logtide_collector_errors_total", collector="salesforce", kind=k) for k in errs}
    assert after["session_expired"] > errs["session_expired"] and after["server"] >= errs["server"] + 3
    assert after["schema_change"] > errs["schema_change"] and after["csv_row"] > errs["csv_row"]
    assert after["sweep"] > errs["sweep"]  # the broken download, resumed
    cp = c.checkpoints.get("EventLogFile/URI/Hourly")
    assert cp["done"] == ["0AT102"] and cp["partial"] is None
    msgs = " ".join(r.getMessage() for r in caplog.records)
    assert "session expired" in msgs and "pausing" in msgs and "secret" not in msgs
    c.close()


@pytest.mark.timeout(60)
def test_daily_log_files_cursor_on_log_date(fast_kafka, new_topic, sf_double):
    day = (datetime.now(UTC) - timedelta(hours=20)).strftime("%Y-%m-%dT00:00:00.000+0000")
    # Daily files for the same LogDate, created at different times; one hourly file must not be read here.
    sf_double.add_log_file(
        "0ATd01", "API", sf_time(10), login_csv(4, "d1"), NAMES, TYPES, interval="Daily", log_date=day
    )
    sf_double.add_log_file(
        "0ATd02", "API", sf_time(5), login_csv(3, "d2"), NAMES, TYPES, interval="Daily", log_date=day
    )
    sf_double.add_log_file("0ATh01", "API", sf_time(5), login_csv(2, "h"), NAMES, TYPES)
    topic = new_topic(1)
    c = sf_collector(fast_kafka, sf_double, topic, event_types=["API"], intervals=["Daily"])
    assert c.work_items() == ["EventLogFile/API/Daily"]
    with running_item(c, "EventLogFile/API/Daily"):
        events = read_events(fast_kafka, topic, 7, timeout=30, settle=1.0)
    assert sorted({e["attributes"]["salesforce.log_file.id"] for e in events}) == ["0ATd01", "0ATd02"]
    assert len(events) == 7
    cp = c.checkpoints.get("EventLogFile/API/Daily")
    assert cp["time"] == day[:10] + "T00:00:00Z" and sorted(cp["done"]) == ["0ATd01", "0ATd02"]
    c.close()


@pytest.mark.timeout(60)
def test_untrusted_certificate_names_the_reason_and_ca_bundle(fast_kafka, new_topic, sf_double, monkeypatch, caplog):
    """The double's certificate is self-signed (generated by the test double): without ca_bundle the
    login fails with one line saying why and what to set; with it, the same config logs in."""
    import contextlib
    import threading

    from logtide.collectors.base import Stopped

    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(var, raising=False)
    c = sf_collector(fast_kafka, sf_double, new_topic(1), ca_bundle=None)
    tls = metric("logtide_collector_errors_total", collector="salesforce", kind="tls")
    stop = threading.Event()
    with caplog.at_level(logging.WARNING, logger="collectors"):

        def login():
            with contextlib.suppress(Stopped):
                c.api._client(stop)

        t = threading.Thread(target=login, daemon=True)
        t.start()
        wait_for(lambda: metric("logtide_collector_errors_total", collector="salesforce", kind="tls") > tls)
        stop.set()
        t.join(10)
    lines = [r.getMessage() for r in caplog.records if "TLS to 127.0.0.1" in r.getMessage()]
    assert lines and "certificate verify failed" in lines[0] and "salesforce.ca_bundle" in lines[0], lines
    assert "self-signed certificate" in lines[0]
    c.close()
    fixed = sf_collector(fast_kafka, sf_double, new_topic(1))  # ca_bundle: the double's certificate
    fixed.api._client(threading.Event())
    assert fixed.api.logins == 1
    fixed.close()

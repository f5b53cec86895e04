"""logtide dlq list|show|replay: reasons from the logtide.error.* headers, event ids, replay to the origin;
for dead letters of records without headers and of older records with routing headers alike."""

from __future__ import annotations

import json

import pytest

from logtide import envelope
from logtide.dlq import DeadLetters
from logtide.transport import Record, connect

from logtide.tools.dlq import reason_id, reason_of
from tests.legacy_records import old_headers


def _dead_letter(fast_kafka, dlq: str, origin: str) -> list[dict]:
    """6 records a parse step refused (0-2 written with older records' routing headers, 3-5 without)
    and 3 undecodable ones, from two partitions of `origin`."""
    producer = connect(fast_kafka).producer(linger_ms=0)
    dead = DeadLetters(producer, "processor", topic=dlq)
    events = []
    for i in range(6):
        ev = envelope.new_event(id=envelope.make_id("dlq-test", origin, i), body=f"user={i} ok", source="k8s")
        events.append(ev)
        rec = Record(
            origin,
            i % 2,
            100 + i,
            f"key{i}".encode(),
            envelope.encode(ev),
            (old_headers(ev) if i < 3 else []) + [("trace", b"t%d" % i)],
            None,
        )
        dead.send(rec, "parse", ValueError(f"bad field at column {i}"))
    for i in range(3):
        dead.send(
            Record(origin, 0, 200 + i, None, b"{not json", [], None),
            "decode",
            envelope.EnvelopeError(f"invalid JSON: unexpected character: line 1 column {i + 1}"),
        )
    assert producer.flush(30) == 0
    producer.close()
    return events


def test_reasons_blank_out_numbers_so_one_bug_is_one_reason():
    a = reason_of({"stage": "parse", "class": "ValueError", "message": "bad field at column 3"})
    b = reason_of({"stage": "parse", "class": "ValueError", "message": "bad field at column 12"})
    assert a == b == ("parse", "ValueError", "bad field at column N")
    assert reason_id(a) != reason_id(("decode", "ValueError", "bad field at column N"))


def test_list_show_replay_round_trip(cli, fast_kafka, new_topic, read_all, monkeypatch):
    monkeypatch.setattr("logtide.tools.dlq.REPLAY_CHUNK", 4)  # 6 records: two acknowledged chunks
    dlq, origin = new_topic(1, prefix="dlq"), new_topic(2, prefix="origin")
    events = _dead_letter(fast_kafka, dlq, origin)

    listing = json.loads(cli("dlq", "list", "--topic", dlq, "--json", check_rc=0).stdout)
    assert listing["records"] == 9
    by_stage = {r["stage"]: r for r in listing["reasons"]}
    parse, decode = by_stage["parse"], by_stage["decode"]
    assert parse["count"] == 6 and parse["class"] == "ValueError" and parse["message"] == "bad field at column N"
    assert parse["origins"] == {origin: 6} and parse["components"] == {"processor": 6}
    assert decode["count"] == 3 and decode["replayed"] == 0
    text = cli("dlq", "list", "--topic", dlq, check_rc=0).stdout
    assert parse["reason"] in text and "bad field at column" in text

    shown = json.loads(cli("dlq", "show", "--topic", dlq, parse["reason"], "--limit", "6", "--json", check_rc=0).stdout)
    assert len(shown) == 1 and len(shown[0]["samples"]) == 6
    sample = shown[0]["samples"][0]
    assert sample["error"]["stage"] == "parse" and sample["error"]["message"].startswith("bad field at column")
    assert sample["event_id"] == events[0]["id"] and sample["origin"] == f"{origin}[0]@100"
    assert "logtide.error.stage" not in sample["headers"] and sample["headers"]["trace"] == "t0"
    assert [s["event_id"] for s in shown[0]["samples"]] == [e["id"] for e in events]  # old and new alike
    assert shown[0]["samples"][4]["headers"] == {"trace": "t4"}

    dry = json.loads(cli("dlq", "replay", "--topic", dlq, parse["reason"], "--dry-run", "--json", check_rc=0).stdout)
    assert dry == {
        "selected": 6,
        "skipped_already_replayed": 0,
        "to": {origin: 6},
        "dry_run": True,
        "replayed": 0,
        "taken_by_another_operator": 0,
    }
    assert read_all(origin) == []

    done = json.loads(cli("dlq", "replay", "--topic", dlq, parse["reason"], "--json", check_rc=0).stdout)
    assert done["replayed"] == 6
    back = read_all(origin)
    assert len(back) == 6
    ids = set()
    for rec in back:
        hdrs = dict(rec.headers)
        assert not any(k.startswith("logtide.error.") for k in hdrs)
        ev = envelope.decode(rec.value)
        i = int(rec.key.decode()[3:])
        assert ev["id"] == events[i]["id"] and "logtide.id" not in hdrs  # ids kept, in the value
        assert rec.partition == i % 2 and hdrs["trace"] == b"t%d" % i  # origin partition, own headers
        assert len(hdrs) == (5 if i < 3 else 1)  # an older record keeps its other routing headers
        ids.add(ev["id"])
    assert ids == {e["id"] for e in events}

    # Replayed once: a second replay sends nothing, list shows them as replayed; --again resends.
    again = cli("dlq", "replay", "--topic", dlq, parse["reason"], check_rc=0)
    assert "replayed 0 records" in again.stdout and "6 replayed before were skipped" in again.stdout
    listing = json.loads(cli("dlq", "list", "--topic", dlq, "--json", check_rc=0).stdout)
    assert {r["stage"]: r["replayed"] for r in listing["reasons"]} == {"parse": 6, "decode": 0}
    assert len(read_all(origin)) == 6


def test_replay_selection_and_errors(cli, fast_kafka, new_topic, read_all):
    dlq, origin = new_topic(1, prefix="dlq"), new_topic(2, prefix="origin")
    _dead_letter(fast_kafka, dlq, origin)
    r = cli("dlq", "replay", "--topic", dlq)
    assert r.returncode == 2 and r.stderr.strip() == (
        "logtide dlq: error: name the reason ids to replay (see `logtide dlq list`), or pass --all"
    )
    r = cli("dlq", "replay", "--topic", dlq, "deadbeef")
    assert r.returncode == 2 and "unknown reason id" in r.stderr
    r = cli("dlq", "list", "--topic", "no.such.dlq")
    assert r.returncode == 2 and "no dead letter topic" in r.stderr
    # --all narrowed to two DLQ offsets
    out = json.loads(cli("dlq", "replay", "--topic", dlq, "--all", "--offsets", "6-7", "--json", check_rc=0).stdout)
    assert out["replayed"] == 2
    assert [r.value for r in read_all(origin)] == [b"{not json", b"{not json"]


def test_offset_ranges_merge_and_parse():
    from logtide.tools.offset_ranges import OffsetRanges

    r = OffsetRanges()
    for o in (5, 3, 4, 10, 12, 11, 1):
        r.add(o)
    assert r.to_list() == [[1, 1], [3, 5], [10, 12]]
    assert 4 in r and 2 not in r and 13 not in r and len(r) == 7
    r.add_range(2, 9)
    assert r.to_list() == [[1, 12]]
    assert OffsetRanges.parse("3,7,10-20").to_list() == [[3, 3], [7, 7], [10, 20]]
    assert OffsetRanges([[10, 20], [0, 2], [3, 4]]).to_list() == [[0, 4], [10, 20]]
    with pytest.raises(ValueError):
        OffsetRanges.parse("9-3")


def _many_dead_letters(fast_kafka, dlq: str, origin: str, n: int) -> None:
    """n records of each of two reasons (parse and enrich), alternating."""
    producer = connect(fast_kafka).producer(linger_ms=5)
    dead = DeadLetters(producer, "processor", topic=dlq)
    for i in range(2 * n):
        ev = envelope.new_event(id=envelope.make_id("dlq-many", origin, i), body=f"line {i}", source="k8s")
        rec = Record(origin, 0, i, f"k{i}".encode(), envelope.encode(ev), [], None)
        dead.send(rec, ("parse", "enrich")[i % 2], ValueError("bad field"))
    assert producer.flush(30) == 0
    producer.close()


def _replayed_ids(read_all, origin) -> list[str]:
    return [envelope.decode(r.value)["id"] for r in read_all(origin)]


@pytest.mark.timeout(180)
def test_two_operators_replaying_at_once_send_each_record_once(cli, popen_cli, fast_kafka, new_topic, read_all):
    # Issue 17 (3): the ledger was read at start and written back whole (last writer wins): two
    # operators at once forgot each other's replays, and two `--all` each sent everything.
    n = 1500
    dlq, origin = new_topic(1, prefix="dlq"), new_topic(1, prefix="origin")
    _many_dead_letters(fast_kafka, dlq, origin, n)
    reasons = {
        r["stage"]: r["reason"]
        for r in json.loads(cli("dlq", "list", "--topic", dlq, "--json", check_rc=0).stdout)["reasons"]
    }

    procs = [popen_cli("dlq", "replay", "--topic", dlq, reasons[stage], "--json") for stage in ("parse", "enrich")]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [json.loads(o)["replayed"] for o, _ in outs] == [n, n]
    listing = json.loads(cli("dlq", "list", "--topic", dlq, "--json", check_rc=0).stdout)
    assert {r["stage"]: r["replayed"] for r in listing["reasons"]} == {"parse": n, "enrich": n}
    rest = json.loads(cli("dlq", "replay", "--topic", dlq, "--all", "--json", check_rc=0).stdout)
    assert rest["replayed"] == 0 and rest["skipped_already_replayed"] == 2 * n
    ids = _replayed_ids(read_all, origin)
    assert len(ids) == len(set(ids)) == 2 * n

    # two `--all` at once (on a DLQ never replayed): between them, every record exactly once
    dlq, origin = new_topic(1, prefix="dlq"), new_topic(1, prefix="origin")
    _many_dead_letters(fast_kafka, dlq, origin, n)
    procs = [popen_cli("dlq", "replay", "--topic", dlq, "--all", "--json") for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    results = [json.loads(o) for o, _ in outs]
    assert sum(r["replayed"] for r in results) == 2 * n, results
    ids = _replayed_ids(read_all, origin)
    assert len(ids) == len(set(ids)) == 2 * n


def test_purge_and_an_unreadable_ledger(cli, fast_kafka, new_topic, read_all):
    from logtide.tools.dlq_ledger import LEDGER

    dlq, origin = new_topic(1, prefix="dlq"), new_topic(2, prefix="origin")
    _dead_letter(fast_kafka, dlq, origin)
    reasons = {
        r["stage"]: r["reason"]
        for r in json.loads(cli("dlq", "list", "--topic", dlq, "--json", check_rc=0).stdout)["reasons"]
    }
    r = cli("dlq", "purge", "--topic", dlq, reasons["decode"], check_rc=0)
    assert "purged 3 records" in r.stdout
    listing = json.loads(cli("dlq", "list", "--topic", dlq, "--json", check_rc=0).stdout)
    assert {x["stage"]: (x["replayed"], x["purged"]) for x in listing["reasons"]} == {"parse": (0, 0), "decode": (0, 3)}
    done = json.loads(cli("dlq", "replay", "--topic", dlq, "--all", "--again", "--json", check_rc=0).stdout)
    assert done["replayed"] == 6 and done["skipped_already_replayed"] == 3  # purged: never replayed
    assert len(read_all(origin)) == 6

    producer = connect(fast_kafka).producer(linger_ms=0)
    producer.produce(LEDGER, b"\x00garbage", key=dlq.encode(), partition=0)
    assert producer.flush(30) == 0
    producer.close()
    for args in (("replay", "--all"), ("list",)):
        r = cli("dlq", *args, "--topic", dlq)
        assert r.returncode == 2 and "unreadable entry" in r.stderr and "replay ledger" in r.stderr, r.stderr
    assert len(read_all(origin)) == 6


def test_a_replay_that_died_holds_its_chunk_until_its_claim_expires(cli, fast_kafka, new_topic, read_all, monkeypatch):
    # A crashed operator's claim (no "done" after it): another replay leaves those records alone while
    # the claim may still be live, and sends them once it expired (the crash bound: one chunk).
    from logtide.tools import dlq_ledger
    from logtide.tools.dlq import dlq_ranges, scan

    dlq, origin = new_topic(1, prefix="dlq"), new_topic(2, prefix="origin")
    _dead_letter(fast_kafka, dlq, origin)
    transport = connect(fast_kafka)
    records = []
    scan(transport, dlq_ranges(transport, dlq), records.append)
    monkeypatch.setattr(dlq_ledger, "CLAIM_SECONDS", 10.0)
    import time

    expires = time.monotonic() + 10.0
    crashed = dlq_ledger.ReplayLedger(transport, dlq)
    _, won = crashed.claim(records[:4])
    crashed.close()  # and never finishes: killed after claiming
    assert len(won) == 4
    first = json.loads(cli("dlq", "replay", "--topic", dlq, "--all", "--json", check_rc=0).stdout)
    assert first["replayed"] == 5 and first["taken_by_another_operator"] == 4
    time.sleep(max(0.0, expires - time.monotonic()) + 0.5)
    second = json.loads(cli("dlq", "replay", "--topic", dlq, "--all", "--json", check_rc=0).stdout)
    assert second["replayed"] == 4 and second["skipped_already_replayed"] == 5
    assert len(read_all(origin)) == 9

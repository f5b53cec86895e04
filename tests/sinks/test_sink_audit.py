"""Audit archive: the chain verifies, and every kind of tampering is caught at the right record."""

from __future__ import annotations

import os
import subprocess
import time

import orjson
import pytest

from logtide.transport import Record
from logtide.processors.sinks.audit.storage import LocalArchive
from logtide.processors.sinks.audit.verify import verify_archive
from logtide.processors.sinks.audit.writer import AuditSink
from logtide.processors.sinks.config import AuditSettings
from logtide.processors.sinks.service import Item
from sinks_helpers import LOGTIDE, make_event

KEY = "audit-test-key-0123456789abcdef"


def items(a: int, b: int, partition: int = 0, topic: str = "logtide.route.audit", **over) -> list[Item]:
    return [Item(Record(topic, partition, i, None, None, [], None), make_event(i, **over)) for i in range(a, b)]


def sink(path, **kw) -> AuditSink:
    return AuditSink(AuditSettings(storage={"path": str(path)}, hmac_key=KEY, **kw))


@pytest.fixture
def archive(tmp_path):
    """Three segments of one chain (roll by size), 90 records."""
    s = sink(tmp_path, roll_bytes=4096)
    for a in range(0, 90, 10):
        s.write(items(a, a + 10))
    chain = tmp_path / "logtide.route.audit~0"
    segs = sorted(p for p in chain.iterdir() if p.name.startswith("seg-"))
    assert len(segs) >= 3
    return tmp_path, chain, segs


def report(path, key=KEY):
    reports = verify_archive(LocalArchive(path), key.encode() if key else None)
    assert len(reports) == 1
    return reports[0]


def writable(p):
    os.chmod(p, 0o640)
    return p


def test_intact_archive_verifies(archive):
    path, _, _ = archive
    r = report(path)
    assert r.ok, r.problems
    assert r.records == 90 and r.segments >= 3


def tamper(seg, edit) -> int:
    """Apply ``edit(lines)`` to a segment's lines in place; return the seq of line 3 before the edit."""
    lines = writable(seg).read_bytes().split(b"\n")
    seq = orjson.loads(lines[3])["seq"]
    edit(lines)
    seg.write_bytes(b"\n".join(lines))
    return seq


def first_problem(path) -> str:
    r = report(path)
    assert not r.ok
    return r.problems[0]


def test_flipped_byte_is_caught_at_its_record(archive):
    path, _, segs = archive

    def flip(lines):
        i = lines[3].index(b"GET /api/item")
        lines[3] = lines[3][:i] + b"P" + lines[3][i + 1 :]  # GET -> PET inside the body

    seq = tamper(segs[1], flip)
    problem = first_problem(path)
    assert f"record seq {seq}: hash mismatch" in problem and segs[1].name in problem


def test_deleted_record_is_caught(archive):
    path, _, segs = archive
    seq = tamper(segs[0], lambda lines: lines.pop(3))
    assert f"record seq {seq} missing" in first_problem(path)


def test_reordered_records_are_caught(archive):
    path, _, segs = archive

    def swap(lines):
        lines[3], lines[4] = lines[4], lines[3]

    seq = tamper(segs[1], swap)
    assert f"expected seq {seq}, found {seq + 1}" in first_problem(path)


def test_truncated_segment_is_caught(archive):
    path, _, segs = archive
    # mid-line: the cut is visible in the file itself
    seg = writable(segs[0])
    data = seg.read_bytes()
    seg.write_bytes(data[: len(data) - 40])
    r = report(path)
    assert not r.ok and "truncated" in r.problems[0]


def test_truncated_at_a_line_boundary_is_caught_by_the_manifest(archive):
    path, _, segs = archive
    seg = writable(segs[-1])  # the open segment: only the signed manifest knows its length
    lines = seg.read_bytes().split(b"\n")
    seg.write_bytes(b"\n".join(lines[:-3]) + b"\n")
    r = report(path)
    assert not r.ok
    assert "missing" in r.problems[0] and ("truncated" in r.problems[0])


def test_deleted_segment_is_caught(archive):
    path, _, segs = archive
    os.unlink(segs[1])
    r = report(path)
    assert not r.ok and "segment missing" in r.problems[0]


def test_rewritten_manifest_needs_the_key(archive):
    path, chain, _ = archive
    m = orjson.loads((chain / "manifest.json").read_bytes())
    m["segments"][0]["records"] += 1
    (chain / "manifest.json").write_bytes(orjson.dumps(m))
    assert "signature invalid" in report(path).problems[0]
    assert not report(path.parent / path.name, key="another-key").ok


def test_restart_drops_redelivered_records_and_cuts_a_partial_line(tmp_path):
    s = sink(tmp_path)
    s.write(items(0, 50))
    chain = tmp_path / "logtide.route.audit~0"
    seg = chain / "seg-00000001.jsonl"
    with open(seg, "ab") as f:  # a crash in the middle of an append: half a line, never acknowledged
        f.write(b'{"type":"record","seq":51,"pr')
    s2 = sink(tmp_path)  # restart: resumes from the tail
    s2.write(items(30, 80))  # Kafka redelivers 30..49 with the new 50..79
    r = report(tmp_path)
    assert r.ok, r.problems
    assert r.records == 80
    ids = [orjson.loads(line)["id"] for line in seg.read_bytes().splitlines()[1:]]
    assert len(ids) == len(set(ids)) == 80


def test_one_chain_per_partition_and_events_without_time(tmp_path):
    s = sink(tmp_path)
    s.write(
        items(0, 10, partition=0) + items(10, 20, partition=1, time=None) + items(20, 25, partition=1, time=2**62)
    )  # far future
    reports = verify_archive(LocalArchive(tmp_path), KEY.encode())
    assert [r.chain for r in reports] == ["logtide.route.audit~0", "logtide.route.audit~1"]
    assert all(r.ok for r in reports) and sum(r.records for r in reports) == 25
    recs = [
        orjson.loads(x)
        for x in (tmp_path / "logtide.route.audit~1" / "seg-00000001.jsonl").read_bytes().splitlines()[1:]
    ]
    assert all(rec["time"] == rec["event"]["observed_time"] for rec in recs)  # filed at observed time
    assert recs[-1]["event"]["time"] == 2**62  # the event itself is kept as it came


def _cli(*args, env=None):
    return subprocess.run(
        [*LOGTIDE, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def test_cli_verify_and_search(archive, tmp_path):
    path, _, segs = archive
    keyfile = tmp_path / "key"
    keyfile.write_text(KEY)
    ok = _cli("audit", "verify", str(path), "--key-file", str(keyfile))
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout and "90 records" in ok.stdout
    found = _cli(
        "audit",
        "search",
        str(path),
        "--where",
        'attributes.user == "u3" and severity_text == "ERROR"',
        "--since",
        "2025-11-21T04:40:00.010Z",
        env={"LOGTIDE_AUDIT_KEY": KEY},
    )
    assert found.returncode == 0, found.stderr
    hits = [orjson.loads(x) for x in found.stdout.splitlines()]
    expected = [i for i in range(10, 90) if i % 7 == 3 and i % 3 == 2]
    assert sorted(h["event"]["body"] for h in hits) == sorted(make_event(i)["body"] for i in expected)
    bad = _cli("audit", "search", str(path), "--where", "attributes.user ==")
    assert bad.returncode == 2 and "--where" in bad.stderr
    writable(segs[0]).write_bytes(segs[0].read_bytes().replace(b"item/3 ", b"item/4 "))
    broken = _cli("audit", "verify", str(path), "--key-file", str(keyfile))
    assert broken.returncode == 1
    assert "BROKEN" in broken.stdout and "record seq 4: hash mismatch" in broken.stdout


def test_crash_between_roll_and_manifest_write_recovers(tmp_path):
    s = sink(tmp_path, roll_seconds=0.2)
    s.write(items(0, 10))
    chain = tmp_path / "logtide.route.audit~0"
    stale_manifest = (chain / "manifest.json").read_bytes()  # segment 1 open
    time.sleep(0.3)
    s.write(items(10, 20))  # segment 1 is due by age: closed (sealed), segment 2 started
    assert (chain / "seg-00000002.jsonl").exists()
    assert not os.stat(chain / "seg-00000001.jsonl").st_mode & 0o200
    (chain / "manifest.json").write_bytes(stale_manifest)  # as if killed before the manifest write
    sink(tmp_path, roll_seconds=3600).write(items(15, 40))
    r = report(tmp_path)
    assert r.ok, r.problems
    assert r.records == 40 and r.segments == 2
    manifest = orjson.loads((chain / "manifest.json").read_bytes())
    assert [seg["closed"] for seg in manifest["segments"]] == [True, False]
    assert manifest["segments"][0]["sha256"]


# --- the archive-level signed index (issue 17: a deleted partition went unnoticed) ----------------


def indexed_archive(path):
    """Three partitions, an index, more records, a second index."""
    s = sink(path, roll_bytes=4096)
    for p in range(3):
        s.write(items(0, 40, partition=p))
    s.tick()  # the first tick writes an index
    for p in range(3):
        s.write(items(40, 60, partition=p))
    s.write_index()
    return s


def verify_cli(path, *extra):
    return subprocess.run(
        [*LOGTIDE, "audit", "verify", str(path), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LOGTIDE_AUDIT_KEY": KEY},
    )


def test_index_lists_every_partition_and_verifies(tmp_path):
    s = indexed_archive(tmp_path)
    s.write_index()  # nothing changed since: no file (the next one's span covers the idle time)
    assert sorted(os.listdir(tmp_path / "_index")) == ["index-00000001.json", "index-00000002.json"]
    second = orjson.loads((tmp_path / "_index" / "index-00000002.json").read_bytes())
    assert sorted(second["chains"]) == [f"logtide.route.audit~{p}" for p in range(3)]  # what changed only
    r = verify_cli(tmp_path)
    assert r.returncode == 0, r.stdout
    assert "OK     archive index: 2 index files" in r.stdout and r.stdout.count("OK ") == 4


def test_a_deleted_partition_directory_is_caught_and_named(tmp_path):
    import shutil

    indexed_archive(tmp_path)
    shutil.rmtree(tmp_path / "logtide.route.audit~2")
    r = verify_cli(tmp_path)
    assert r.returncode == 1, r.stdout
    assert f"problem: {tmp_path / 'logtide.route.audit~2'}: partition missing (records 1..60" in r.stdout


def test_a_deleted_index_file_segment_or_the_whole_index_is_caught(tmp_path):
    import shutil

    indexed_archive(tmp_path)
    chain = tmp_path / "logtide.route.audit~1"
    first = sorted(p for p in chain.iterdir() if p.name.startswith("seg-"))[0]
    first.unlink()
    (tmp_path / "_index" / "index-00000001.json").unlink()
    r = verify_cli(tmp_path)
    assert r.returncode == 1
    assert f"{tmp_path / '_index' / 'index-00000001.json'} missing: time span" in r.stdout
    assert f"{first}: segment missing (records 1.." in r.stdout
    shutil.rmtree(tmp_path / "_index")
    r = verify_cli(tmp_path)
    assert r.returncode == 1 and "archive index missing" in r.stdout


def test_a_truncated_segment_and_an_extra_partition_are_caught(tmp_path):
    s = indexed_archive(tmp_path)
    chain = tmp_path / "logtide.route.audit~0"
    last = sorted(p for p in chain.iterdir() if p.name.startswith("seg-"))[-1]
    lines = last.read_bytes().splitlines(keepends=True)
    writable(last).write_bytes(b"".join(lines[:-3]))  # three whole records cut at a line boundary
    # a partition someone slipped in, as if created an hour before the latest index
    fake = sink(tmp_path / "elsewhere")
    fake.write(items(0, 5, partition=7))
    fake_chain = tmp_path / "elsewhere" / "logtide.route.audit~7"
    seg = next(p for p in fake_chain.iterdir() if p.name.startswith("seg-"))
    head, rest = writable(seg).read_bytes().split(b"\n", 1)
    h = orjson.loads(head)
    h["created"] -= 3600 * 10**9
    seg.write_bytes(orjson.dumps(h, option=orjson.OPT_SORT_KEYS) + b"\n" + rest)
    os.rename(fake_chain, tmp_path / "logtide.route.audit~7")
    r = verify_cli(tmp_path)
    assert r.returncode == 1
    assert f"problem: {last}: truncated:" in r.stdout
    assert f"problem: {tmp_path / 'logtide.route.audit~7'}: extra partition" in r.stdout
    del s

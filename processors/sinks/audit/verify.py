"""`logtide audit verify`: walk every chain from its first record and report the first break.

Checks, in order: the manifest's HMAC (when the key is given), that every segment the manifest lists
exists, each segment header continues the chain, every record's seq follows the last (a gap is a
deleted record, a lower seq a reordered one), its ``prev`` is the previous hash and its own hash
matches its content (an altered byte), whole-file SHA-256 of closed segments, and that the chain
reaches the manifest's head (a truncated tail).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import orjson

from logtide.processors.sinks.audit.chain import GENESIS, MANIFEST, check_record, segment_number, signature_ok


@dataclass
class ChainReport:
    chain: str
    records: int = 0
    segments: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    last_hash: str = GENESIS

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {
            "chain": self.chain,
            "ok": self.ok,
            "records": self.records,
            "segments": self.segments,
            "first_problem": self.problems[0] if self.problems else None,
            "problems": self.problems,
            "warnings": self.warnings,
        }


def verify_chain(archive, chain: str, key: bytes | None) -> ChainReport:
    report = ChainReport(chain)
    raw = archive.read(chain, MANIFEST)
    manifest = None
    if raw is None:
        report.problems.append(f"{archive.location(chain, MANIFEST)}: manifest missing")
    else:
        try:
            manifest = orjson.loads(raw)
        except orjson.JSONDecodeError:
            report.problems.append(f"{archive.location(chain, MANIFEST)}: manifest is not JSON (altered)")
        if manifest is not None:
            if key is None:
                report.warnings.append(
                    "manifest signature not checked (no key: pass --key-file or set LOGTIDE_AUDIT_KEY)"
                )
            elif not signature_ok(manifest, key):
                report.problems.append(
                    f"{archive.location(chain, MANIFEST)}: manifest signature invalid (altered, or a different key)"
                )
    listed = {s["name"]: s for s in (manifest or {}).get("segments", [])}
    present = [n for n in archive.files(chain) if segment_number(n) is not None]
    names = sorted(set(listed) | set(present), key=segment_number)
    expected_seq, prev = 1, GENESIS
    for name in names:
        where = archive.location(chain, name)
        meta = listed.get(name)
        data = archive.read(chain, name) if name in present else None
        if data is None:
            span = f" (records {meta.get('first_seq')}..{meta.get('last_seq')})" if meta else ""
            report.problems.append(f"{where}: segment missing{span}; first missing record seq {expected_seq}")
            return report
        report.segments += 1
        if meta is None and manifest is not None:
            report.warnings.append(f"{where}: segment not in the manifest yet (written after its last update)")
        problem, expected_seq, prev = _check_segment(data, meta, expected_seq, prev, report)
        if problem is not None:
            report.problems.append(f"{where}: {problem}")
            return report
    head = (manifest or {}).get("head") or {}
    if head.get("seq", 0) >= expected_seq:
        report.problems.append(
            f"{archive.location(chain)}: chain ends at seq {expected_seq - 1} but the manifest "
            f"head is seq {head['seq']}: records {expected_seq}..{head['seq']} missing (truncated)"
        )
    elif head and head.get("seq") == expected_seq - 1 and head.get("hash") not in (None, prev):
        report.problems.append(f"{archive.location(chain)}: last record's hash differs from the manifest head")
    return report


def _check_segment(
    data: bytes, meta: dict | None, expected_seq: int, prev: str, report: ChainReport
) -> tuple[str | None, int, str]:
    """(first problem or None, next expected seq, last hash) for one segment's bytes."""
    problem = _walk_segment(data, meta, expected_seq, prev, report)
    return problem, report.records + 1, report.last_hash


def _walk_segment(data: bytes, meta: dict | None, expected_seq: int, prev: str, report: ChainReport) -> str | None:
    report.last_hash = prev
    if data and not data.endswith(b"\n"):
        complete = data.count(b"\n")
        return f"truncated: line {complete + 1} is cut short (first missing record seq {expected_seq + max(0, complete - 1)})"
    lines = data.splitlines()
    if not lines:
        return "empty segment (header missing)"
    try:
        header = orjson.loads(lines[0])
    except orjson.JSONDecodeError:
        return "line 1: header is not JSON (altered)"
    if header.get("type") != "header":
        return "line 1: header missing (the segment does not start with one)"
    if header.get("first_seq") != expected_seq or header.get("prev") != prev:
        return (
            f"line 1: header continues from seq {header.get('first_seq')} / hash {str(header.get('prev'))[:12]}… "
            f"but the chain is at seq {expected_seq} / hash {prev[:12]}…: records missing before this segment"
        )
    for lineno, line in enumerate(lines[1:], start=2):
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            return f"line {lineno}: not JSON (altered); record seq {expected_seq} broken"
        seq = rec.get("seq") if isinstance(rec, dict) else None
        if seq != expected_seq:
            if isinstance(seq, int) and seq > expected_seq:
                return f"line {lineno}: expected seq {expected_seq}, found {seq}: record seq {expected_seq} missing or reordered"
            return f"line {lineno}: expected seq {expected_seq}, found {seq}: record out of order, repeated or altered"
        if rec.get("prev") != prev:
            return f"line {lineno}: record seq {seq} does not continue the chain (prev hash mismatch)"
        why = check_record(rec)
        if why:
            return f"line {lineno}: record seq {seq}: {why}"
        prev = report.last_hash = rec["hash"]
        expected_seq += 1
        report.records += 1
    if meta is not None:
        if meta.get("last_seq") is not None and meta["last_seq"] > expected_seq - 1:
            return (
                f"truncated: the manifest lists records up to seq {meta['last_seq']}, the segment ends at "
                f"seq {expected_seq - 1}; first missing record seq {expected_seq}"
            )
        if meta.get("closed") and meta.get("sha256") and hashlib.sha256(data).hexdigest() != meta["sha256"]:
            return "SHA-256 of the closed segment differs from the manifest (altered)"
    return None


def verify_archive(archive, key: bytes | None) -> list[ChainReport]:
    """One report per chain present (see ``verify_archive_index`` for chains that are gone)."""
    return [verify_chain(archive, chain, key) for chain in archive.chains()]


def verify_archive_index(archive, key: bytes | None) -> ChainReport:
    """The archive against its signed index: missing or extra partitions, segments, time spans
    (``segments`` counts the index files)."""
    from logtide.processors.sinks.audit.index import verify_index

    report = ChainReport("(archive index)")
    verify_index(archive, key, report)
    return report

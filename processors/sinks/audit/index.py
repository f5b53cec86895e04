"""The archive-level signed index (in the spirit of CloudTrail's digest files).

A chain's manifest protects the chain, but not its own existence: deleting a partition's directory
(manifest and all) left `verify` with nothing to complain about. So the audit sink also writes, every
``index_seconds``, an index file for the whole archive::

    <root>/_index/index-00000001.json, index-00000002.json, ...

each listing what changed since the previous one — every chain (Kafka partition) that appeared and
every segment that appeared or grew (first/last seq, last hash, size) — the time span it covers (from
the previous index's end to its own), and the SHA-256 of the previous index file, signed with the
archive's HMAC key. Folded in order, the indexes list every partition and segment (a file per
period stays small however old the archive; an idle period writes none and the next index's span
covers it). Deleting or altering an index breaks the sequence or
the chain of hashes, so `logtide audit verify` names:

- a missing index (a time span no index covers) or one that does not follow its predecessor;
- a partition or segment the latest index lists that is gone, or shorter than listed (truncated);
- a partition or segment that exists but that the latest index should have listed and does not (extra).

Chain manifests written with an index say so (``"indexed": true``, under their signature), so deleting
the whole ``_index/`` directory is noticed too. Several sink replicas share the archive: an index file
is created exclusively (local: a hard link; S3: a conditional put, ``If-None-Match: *``, under Object
Lock like the segments), so two never overwrite each other. With S3, the index lists the segments
uploaded there (the open one reaches S3 when it rolls).
"""

from __future__ import annotations

import hashlib
import time

import orjson

from logtide import log

from logtide.processors.sinks.audit.chain import FORMAT, GENESIS, MANIFEST, numbered, segment_number, sign, signature_ok

_log = log.get("processors.sinks.audit.index")

INDEX_DIR = "_index"
INDEX_PREFIX = "index-"
INDEX_SUFFIX = ".json"
#: A partition whose first segment was created this little before an index may just have missed it
#: (another replica's chain between its first append and its first manifest).
RACE_NS = 60 * 10**9


def index_name(seq: int) -> str:
    return f"{INDEX_PREFIX}{seq:08d}{INDEX_SUFFIX}"


def index_seq(name: str) -> int | None:
    return numbered(name, INDEX_PREFIX, INDEX_SUFFIX)


def _segment_entry(seg: dict) -> dict:
    keys = (
        "name",
        "number",
        "first_seq",
        "last_seq",
        "last_hash",
        "bytes",
        "closed",
        "sha256",
        "created",
        "first_time",
        "last_time",
    )
    return {k: seg[k] for k in keys if k in seg}


def _ns(ns: int | None) -> str:
    from logtide.processors.sinks.eventtime import ns_to_iso

    return ns_to_iso(ns) or "?"


def fold(state: dict[str, dict[str, dict]], index: dict) -> None:
    """Apply one index's changes to ``state`` (chain → segment name → entry)."""
    for chain, entry in (index.get("chains") or {}).items():
        segments = state.setdefault(chain, {})
        for seg in entry.get("segments", []):
            segments[seg["name"]] = seg


class IndexWriter:
    """Writes the next index file of an archive (``local``: LocalArchive; ``remote``: S3Archive or None)."""

    def __init__(self, local, key: bytes, *, remote=None):
        self.local = local
        self.remote = remote
        self.key = key
        self.where = remote or local  # with S3, the indexes there (every pod's staging is its own)
        self._state: dict[str, dict[str, dict]] = {}  # every index folded, up to _seq
        self._seq = 0
        self._last: bytes | None = None

    def _catch_up(self) -> None:
        """Fold the index files written since (by this writer or another replica)."""
        for seq, name in sorted((s, n) for n in self.where.files(INDEX_DIR) if (s := index_seq(n)) is not None):
            if seq > self._seq:
                data = self.where.read(INDEX_DIR, name) or b"{}"
                fold(self._state, orjson.loads(data))
                self._seq, self._last = seq, data

    def chains(self) -> dict[str, list[dict]]:
        """Every chain of the archive and its segments as its manifest lists them now (with S3: the
        manifests there, which list the segments uploaded, whichever pod wrote them)."""
        out = {}
        for chain in self.where.chains():
            raw = self.where.read(chain, MANIFEST)
            if raw is not None:
                out[chain] = [
                    _segment_entry(s)
                    for s in orjson.loads(raw).get("segments", [])
                    if self.remote is None or s.get("uploaded")
                ]
        return out

    def write(self) -> bool:
        """Write the next index if anything changed; False when another writer took its number first."""
        self._catch_up()
        changes = {}
        for chain, segments in self.chains().items():
            known = self._state.get(chain)
            changed = [seg for seg in segments if known is None or known.get(seg["name"]) != seg]
            if changed or known is None:
                changes[chain] = {"segments": changed}
        if not changes and self._seq:
            return True  # nothing new: the next index's span will cover this period
        prev = orjson.loads(self._last) if self._last else None
        now = time.time_ns()
        body = {
            "format": FORMAT,
            "seq": self._seq + 1,
            "start": prev["end"] if prev else now,
            "end": now,
            "prev": hashlib.sha256(self._last).hexdigest() if self._last else GENESIS,
            "chains": changes,
        }
        data = orjson.dumps(sign(body, self.key), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        if not self.where.create(INDEX_DIR, index_name(self._seq + 1), data):
            return False  # another replica wrote this one first: ours comes next time, after it
        fold(self._state, body)
        self._seq, self._last = self._seq + 1, data
        return True


def verify_index(archive, key: bytes | None, report) -> None:
    """Check the archive against its index files; problems and warnings go to ``report`` (a ChainReport)."""
    names = sorted((s, n) for n in archive.files(INDEX_DIR) if (s := index_seq(n)) is not None)
    chains = [c for c in archive.chains() if not c.startswith("_")]
    if not names:
        indexed = [c for c in chains if (orjson.loads(archive.read(c, MANIFEST) or b"{}")).get("indexed")]
        if indexed:
            report.problems.append(
                f"{archive.location(INDEX_DIR)}: archive index missing, although the manifests "
                f"of {', '.join(indexed)} were written with one (deleted)"
            )
        else:
            report.warnings.append(
                "no archive index (written by sinks since logtide's issue 17): deleted partitions cannot be detected"
            )
        return
    prev_bytes: bytes | None = None
    prev: dict | None = None
    state: dict[str, dict[str, dict]] = {}
    expected = 1
    for seq, name in names:
        where = archive.location(INDEX_DIR, name)
        data = archive.read(INDEX_DIR, name) or b""
        try:
            index = orjson.loads(data)
        except orjson.JSONDecodeError:
            report.problems.append(f"{where}: not JSON (altered)")
            return
        if seq != expected:
            gap = f"{index_name(expected)}" + (f" .. {index_name(seq - 1)}" if seq - 1 > expected else "")
            span = f"{_ns(prev['end']) if prev else 'the start'} .. {_ns(index.get('start'))}"
            report.problems.append(
                f"{archive.location(INDEX_DIR, gap)} missing: time span {span} not covered by any index (deleted)"
            )
        elif prev_bytes is not None and index.get("prev") != hashlib.sha256(prev_bytes).hexdigest():
            report.problems.append(f"{where}: does not follow {index_name(seq - 1)} (that one was altered or replaced)")
        elif prev is not None and index.get("start") != prev.get("end"):
            report.problems.append(
                f"{where}: time span {_ns(prev.get('end'))} .. {_ns(index.get('start'))} missing between two indexes"
            )
        if key is not None and not signature_ok(index, key):
            report.problems.append(f"{where}: signature invalid (altered, or a different key)")
        fold(state, index)
        prev_bytes, prev, expected = data, index, seq + 1
    if key is None:
        report.warnings.append("index signatures not checked (no key: pass --key-file or set LOGTIDE_AUDIT_KEY)")
    latest = prev or {}
    latest_name = index_name(expected - 1)
    listed = state
    for chain, by_name in sorted(listed.items()):
        segs = sorted(by_name.values(), key=lambda seg: seg.get("number") or segment_number(seg["name"]) or 0)
        if chain not in chains:
            head = max((seg.get("last_seq", 0) for seg in segs), default=0)
            report.problems.append(
                f"{archive.location(chain)}: partition missing (records 1..{head}, "
                f"{len(segs)} segments in the index up to {latest_name})"
            )
            continue
        present = set(archive.files(chain))
        for seg in segs:
            where = archive.location(chain, seg["name"])
            if seg["name"] not in present:
                report.problems.append(
                    f"{where}: segment missing (records {seg.get('first_seq')}..{seg.get('last_seq')} "
                    f"in the index up to {latest_name})"
                )
                continue
            size = len(archive.read(chain, seg["name"]) or b"")
            if size < seg.get("bytes", 0):
                report.problems.append(
                    f"{where}: truncated: {size} bytes, the index up to {latest_name} lists "
                    f"{seg['bytes']} (records up to seq {seg.get('last_seq')})"
                )
        numbers = [seg.get("number") or segment_number(seg["name"]) or 0 for seg in segs]
        for name in sorted(present):
            n = segment_number(name)
            if n is not None and numbers and n < max(numbers) and n not in numbers:
                report.problems.append(
                    f"{archive.location(chain, name)}: extra segment: not in the index up to "
                    f"{latest_name}, which lists later ones of this partition"
                )
    for chain in chains:
        if chain in listed:
            continue
        first = min(
            (n for n in archive.files(chain) if segment_number(n) is not None), key=segment_number, default=None
        )
        header = (archive.read(chain, first) or b"").split(b"\n", 1)[0] if first else b""
        try:
            created = orjson.loads(header).get("created", 0) if header else 0
        except orjson.JSONDecodeError:
            created = 0
        if created and created + RACE_NS <= latest.get("end", 0):
            report.problems.append(
                f"{archive.location(chain)}: extra partition: created {_ns(created)}, before "
                f"{latest_name} ({_ns(latest.get('end'))}), and no index lists it"
            )
        else:
            report.warnings.append(f"{archive.location(chain)}: partition newer than the latest index {latest_name}")
    report.segments = len(names)

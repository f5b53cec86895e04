"""The archive-level signed index (in the spirit of CloudTrail's digest files).

A chain's manifest protects the chain, but not its own existence: deleting a partition's directory
(manifest and all) left `verify` with nothing to complain about. So the audit sink also writes, every
``index_seconds``, an index file for the whole archive::

    <root>/_index/index-00000001.json, index-00000002.json, ...

each listing every chain (Kafka partition) and every segment in it (first/last seq, last hash, size),
the time span it covers (from the previous index's end to its own), and the SHA-256 of the previous
index file, signed with the archive's HMAC key. Deleting or altering an index breaks the sequence or
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

from logtide.processors.sinks.audit.chain import (FORMAT, GENESIS, MANIFEST, numbered, segment_number, sign,
                                                  signature_ok)

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
    keys = ("name", "number", "first_seq", "last_seq", "last_hash", "bytes", "closed", "sha256", "created",
            "first_time", "last_time")
    return {k: seg[k] for k in keys if k in seg}


def _ns(ns: int | None) -> str:
    from logtide.processors.sinks.eventtime import ns_to_iso
    return ns_to_iso(ns) or "?"


class IndexWriter:
    """Writes the next index file of an archive (``archive``: LocalArchive; ``remote``: S3Archive or None)."""

    def __init__(self, local, key: bytes, *, remote=None):
        self.local = local
        self.remote = remote
        self.key = key

    def _latest(self) -> tuple[int, bytes | None]:
        where = self.remote or self.local  # with S3, the indexes there (every pod's staging is its own)
        names = sorted((s, n) for n in where.files(INDEX_DIR) if (s := index_seq(n)) is not None)
        if not names:
            return 0, None
        seq, name = names[-1]
        return seq, where.read(INDEX_DIR, name)

    def chains(self) -> dict[str, dict]:
        """Every chain of the archive as its manifest lists it now (with S3: the manifests there, which
        list the segments uploaded, whichever pod wrote them)."""
        where = self.remote or self.local
        out = {}
        for chain in where.chains():
            raw = where.read(chain, MANIFEST)
            if raw is None:
                continue
            segments = [s for s in orjson.loads(raw).get("segments", [])
                        if self.remote is None or s.get("uploaded")]
            out[chain] = {"segments": [_segment_entry(s) for s in segments],
                          "head": segments[-1].get("last_seq", 0) if segments else 0}
        return out

    def write(self) -> str | None:
        """Write the next index; return its name (None when another writer took that number first)."""
        seq, prev_bytes = self._latest()
        prev = orjson.loads(prev_bytes) if prev_bytes else None
        now = time.time_ns()
        body = {"format": FORMAT, "seq": seq + 1, "prev": hashlib.sha256(prev_bytes).hexdigest() if prev_bytes
                else GENESIS, "start": prev["end"] if prev else now, "end": now, "chains": self.chains()}
        data = orjson.dumps(sign(body, self.key), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        name = index_name(seq + 1)
        if not (self.remote or self.local).create(INDEX_DIR, name, data):
            return None  # another replica wrote this one first: ours comes next time, after it
        return name


def verify_index(archive, key: bytes | None, report) -> None:
    """Check the archive against its index files; problems and warnings go to ``report`` (a ChainReport)."""
    names = sorted((s, n) for n in archive.files(INDEX_DIR) if (s := index_seq(n)) is not None)
    chains = [c for c in archive.chains() if not c.startswith("_")]
    if not names:
        indexed = [c for c in chains if (orjson.loads(archive.read(c, MANIFEST) or b"{}")).get("indexed")]
        if indexed:
            report.problems.append(f"{archive.location(INDEX_DIR)}: archive index missing, although the manifests "
                                   f"of {', '.join(indexed)} were written with one (deleted)")
        else:
            report.warnings.append("no archive index (written by sinks since logtide's issue 17): deleted "
                                   "partitions cannot be detected")
        return
    prev_bytes: bytes | None = None
    prev: dict | None = None
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
            report.problems.append(f"{archive.location(INDEX_DIR, gap)} missing: time span {span} not covered "
                                   "by any index (deleted)")
        elif prev_bytes is not None and index.get("prev") != hashlib.sha256(prev_bytes).hexdigest():
            report.problems.append(f"{where}: does not follow {index_name(seq - 1)} (that one was altered or "
                                   "replaced)")
        elif prev is not None and index.get("start") != prev.get("end"):
            report.problems.append(f"{where}: time span {_ns(prev.get('end'))} .. {_ns(index.get('start'))} "
                                   "missing between two indexes")
        if key is not None and not signature_ok(index, key):
            report.problems.append(f"{where}: signature invalid (altered, or a different key)")
        prev_bytes, prev, expected = data, index, seq + 1
    if key is None:
        report.warnings.append("index signatures not checked (no key: pass --key-file or set LOGTIDE_AUDIT_KEY)")
    latest = prev or {}
    latest_name = index_name(expected - 1)
    listed = latest.get("chains", {})
    for chain, entry in sorted(listed.items()):
        segs = entry.get("segments", [])
        if chain not in chains:
            span = f"records 1..{entry.get('head', 0)}, {len(segs)} segments"
            report.problems.append(f"{archive.location(chain)}: partition missing ({span} in {latest_name})")
            continue
        present = set(archive.files(chain))
        for seg in segs:
            where = archive.location(chain, seg["name"])
            if seg["name"] not in present:
                report.problems.append(f"{where}: segment missing (records {seg.get('first_seq')}..{seg.get('last_seq')} "
                                       f"in {latest_name})")
                continue
            size = len(archive.read(chain, seg["name"]) or b"")
            if size < seg.get("bytes", 0):
                report.problems.append(f"{where}: truncated: {size} bytes, {latest_name} lists {seg['bytes']} "
                                       f"(records up to seq {seg.get('last_seq')})")
        numbers = [seg.get("number") or segment_number(seg["name"]) or 0 for seg in segs]
        for name in sorted(present):
            n = segment_number(name)
            if n is not None and numbers and n < max(numbers) and n not in numbers:
                report.problems.append(f"{archive.location(chain, name)}: extra segment: not in {latest_name}, "
                                       "which lists later ones of this partition")
    for chain in chains:
        if chain in listed:
            continue
        first = min((n for n in archive.files(chain) if segment_number(n) is not None), key=segment_number,
                    default=None)
        header = (archive.read(chain, first) or b"").split(b"\n", 1)[0] if first else b""
        try:
            created = orjson.loads(header).get("created", 0) if header else 0
        except orjson.JSONDecodeError:
            created = 0
        if created and created + RACE_NS <= latest.get("end", 0):
            report.problems.append(f"{archive.location(chain)}: extra partition: created {_ns(created)}, before "
                                   f"{latest_name} ({_ns(latest.get('end'))}), which does not list it")
        else:
            report.warnings.append(f"{archive.location(chain)}: partition newer than the latest index {latest_name}")
    report.segments = len(names)

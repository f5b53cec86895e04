"""The audit format: hash-chained JSON lines, segment headers and the signed manifest.

Each record line is canonical JSON (sorted keys, orjson) of::

    {"type": "record", "seq": N, "prev": <hash of record N-1>, "time": <filing time ns>,
     "id": <event id>, "event": {...}, "hash": sha256(prev + "\\n" + canonical(record without hash))}

so changing, removing or reordering any record breaks the next link, and ``seq`` names the first
missing one. The first line of every segment is a header (chain, segment number, first seq, the hash
it continues from). The manifest lists every segment (record count, first/last seq, last hash, and
for closed segments the SHA-256 of the whole file) plus the chain head, and is signed with HMAC-SHA256
under a key the archive readers never store: a rewritten chain needs the key to look valid.
"""

from __future__ import annotations

import hashlib
import hmac

import orjson

FORMAT = 1
GENESIS = "0" * 64
MANIFEST = "manifest.json"
SEGMENT_PREFIX = "seg-"
SEGMENT_SUFFIX = ".jsonl"


def canonical(obj: dict) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def link_hash(prev: str, body: dict) -> str:
    return hashlib.sha256(prev.encode() + b"\n" + canonical(body)).hexdigest()


def record_line(seq: int, prev: str, time_ns: int, event: dict) -> tuple[bytes, str]:
    """The line (with newline) of one record and its hash.

    The line is the hashed canonical JSON with ``"hash"`` appended as its last key (one serialization
    per record); readers re-serialize what they parsed, so key order in the line does not matter.
    """
    body = canonical({"type": "record", "seq": seq, "prev": prev, "time": time_ns, "id": event["id"], "event": event})
    h = hashlib.sha256(prev.encode() + b"\n" + body).hexdigest()
    return body[:-1] + b',"hash":"' + h.encode() + b'"}\n', h


def header_line(chain: str, segment: int, first_seq: int, prev: str, created_ns: int) -> bytes:
    return (
        canonical(
            {
                "type": "header",
                "format": FORMAT,
                "chain": chain,
                "segment": segment,
                "first_seq": first_seq,
                "prev": prev,
                "created": created_ns,
            }
        )
        + b"\n"
    )


def check_record(body: dict) -> str | None:
    """Why a parsed record line is not self-consistent (None when its hash matches its content)."""
    claimed = body.get("hash")
    rest = {k: v for k, v in body.items() if k != "hash"}
    if not isinstance(claimed, str) or not isinstance(body.get("prev"), str):
        return "record without hash/prev"
    if link_hash(body["prev"], rest) != claimed:
        return "hash mismatch (record altered)"
    return None


def segment_name(number: int) -> str:
    return f"{SEGMENT_PREFIX}{number:08d}{SEGMENT_SUFFIX}"


def numbered(name: str, prefix: str, suffix: str) -> int | None:
    """N of ``<prefix>N<suffix>`` (segments, index files); None for any other name."""
    if name.startswith(prefix) and name.endswith(suffix):
        digits = name[len(prefix) : -len(suffix)]
        if digits.isdigit():
            return int(digits)
    return None


def segment_number(name: str) -> int | None:
    return numbered(name, SEGMENT_PREFIX, SEGMENT_SUFFIX)


def chain_dir(topic: str, partition: int) -> str:
    return f"{topic}~{partition}"


def sign(manifest: dict, key: bytes) -> dict:
    body = {k: v for k, v in manifest.items() if k != "hmac"}
    return {**body, "hmac": hmac.new(key, canonical(body), hashlib.sha256).hexdigest()}


def signature_ok(manifest: dict, key: bytes) -> bool:
    claimed = manifest.get("hmac")
    body = {k: v for k, v in manifest.items() if k != "hmac"}
    return isinstance(claimed, str) and hmac.compare_digest(
        claimed, hmac.new(key, canonical(body), hashlib.sha256).hexdigest()
    )

"""The audit sink: appends each Kafka partition's events to its own hash chain.

Per batch and chain: drop ids already in the chain's tail → append the records to the open segment
and fsync → rewrite the signed manifest atomically → return (offsets commit). Roll to a new segment
by size or age; a closed segment is hashed into the manifest, made read-only, and with S3 uploaded as
a write-once object under Object Lock (then the S3 manifest), after which the staging copy goes.
A timer (``tick``) also rolls a segment that got old while no events came, and retries uploads.

Restart (or a new owner after a rebalance) resumes from the tail of the open segment: a partial last
line from a crash is cut (it was never acknowledged), the head and the tail's ids are reloaded, so a
redelivered batch adds no duplicate. Durability with S3: the open segment is fsync'd in the local
staging directory (keep it on a persistent volume) and reaches S3 when it rolls (size or age).
"""

from __future__ import annotations

import hashlib
import time
from collections import deque

import orjson
from prometheus_client import Counter, Gauge

from logtide import log
from logtide.consume import Retry
from logtide.transport import TopicPartition

from logtide.processors.sinks.audit.chain import (
    FORMAT,
    GENESIS,
    MANIFEST,
    chain_dir,
    header_line,
    record_line,
    segment_name,
    segment_number,
    sign,
)
from logtide.processors.sinks.audit.index import IndexWriter
from logtide.processors.sinks.audit.storage import LocalArchive, S3Archive, StorageError
from logtide.processors.sinks.eventtime import effective_time_ns
from logtide.processors.sinks.service import Item, SinkBase

_log = log.get("processors.sinks.audit")

SEGMENTS = Counter("logtide_sink_audit_segments_closed_total", "Audit segments closed (rolled)")
UPLOADS = Counter("logtide_sink_audit_uploads_total", "Closed audit segments uploaded to S3", ["result"])
PENDING = Gauge("logtide_sink_audit_pending_uploads", "Closed audit segments waiting for upload to S3")

#: Ids kept from a chain's tail: more than any batch that can be redelivered after a crash.
TAIL_IDS = 50_000


class ChainWriter:
    """One chain = one Kafka partition of the route topic."""

    def __init__(
        self,
        chain: str,
        local: LocalArchive,
        key: bytes,
        *,
        remote: S3Archive | None,
        roll_bytes: int,
        roll_seconds: float,
    ):
        self.chain = chain
        self.local = local
        self.key = key
        self.remote = remote
        self.roll_bytes = roll_bytes
        self.roll_seconds = roll_seconds
        self.segments: list[dict] = []
        self.next_seq = 1
        self.head = GENESIS
        self.tail_ids: deque[str] = deque(maxlen=TAIL_IDS)
        self.tail_set: set[str] = set()
        #: The S3 manifest lags behind segments already uploaded (its put failed, or a restart).
        self._remote_stale = remote is not None
        self._recover()

    # --- state -----------------------------------------------------------------------------
    @property
    def pending_uploads(self) -> int:
        return sum(1 for s in self.segments if s["closed"] and not s.get("uploaded")) if self.remote else 0

    @property
    def open(self) -> dict | None:
        return self.segments[-1] if self.segments and not self.segments[-1]["closed"] else None

    def _remember(self, event_id: str) -> None:
        if len(self.tail_ids) == self.tail_ids.maxlen:
            self.tail_set.discard(self.tail_ids[0])
        self.tail_ids.append(event_id)
        self.tail_set.add(event_id)

    def _recover(self) -> None:
        raw = self.local.read(self.chain, MANIFEST)
        if raw is not None:
            self.segments = orjson.loads(raw)["segments"]
        elif self.remote is not None:
            remote = self.remote.read(self.chain, MANIFEST)
            if remote is not None:
                self.segments = orjson.loads(remote)["segments"]
        known = {s["name"] for s in self.segments}
        # Segments created after the last manifest write (a crash in between).
        for name in self.local.files(self.chain):
            n = segment_number(name)
            if n is not None and name not in known and (not self.segments or n > self.segments[-1]["number"]):
                self.segments.append({"name": name, "number": n, "closed": False})
        # A crash between rolling and the manifest write leaves an earlier segment marked open.
        for seg in self.segments[:-1]:
            if not seg["closed"] and self.local.read(self.chain, seg["name"]) is not None:
                self._close(seg)
        if self.segments:
            last = self.segments[-1]
            data = self.local.read(self.chain, last["name"]) if not last["closed"] else None
            if data is not None:
                self._rescan_open(last, data)
            if self.segments:
                last = self.segments[-1]
                self.next_seq = last.get("last_seq", last.get("first_seq", 1) - 1) + 1
                self.head = last.get("last_hash") or last.get("prev") or GENESIS
                self._load_tail_ids()
        if self.segments:
            _log.info(
                "audit chain resumed",
                extra={"chain": self.chain, "next_seq": self.next_seq, "segments": len(self.segments)},
            )

    def _rescan_open(self, seg: dict, data: bytes) -> None:
        """Re-derive the open segment's figures from its bytes; cut a partial line left by a crash."""
        end = data.rfind(b"\n") + 1
        if end < len(data):
            _log.warning(
                "cutting unacknowledged partial record after a crash",
                extra={"chain": self.chain, "segment": seg["name"], "bytes": len(data) - end},
            )
            self.local.truncate(self.chain, seg["name"], end)
            data = data[:end]
        self.local.unseal(self.chain, seg["name"])  # it may have been sealed just before a crash
        lines = data.splitlines()
        if not lines:  # crashed before the header was durable
            self.local.remove(self.chain, seg["name"])
            self.segments.pop()
            return
        header = orjson.loads(lines[0])
        seg.update(
            first_seq=header["first_seq"],
            prev=header["prev"],
            created=header["created"],
            records=0,
            last_seq=header["first_seq"] - 1,
            last_hash=header["prev"],
            bytes=len(data),
        )
        for line in lines[1:]:
            rec = orjson.loads(line)
            seg["records"] += 1
            seg["last_seq"], seg["last_hash"] = rec["seq"], rec["hash"]
            seg.setdefault("first_time", rec["time"])
            seg["last_time"] = rec["time"]

    def _load_tail_ids(self) -> None:
        """Ids of the chain's last ``TAIL_IDS`` records (newest segments first; local, else from S3)."""
        chunks: list[list[str]] = []
        total = 0
        for seg in reversed(self.segments):
            if total >= TAIL_IDS:
                break
            data = self.local.read(self.chain, seg["name"])
            if data is None and self.remote is not None:
                try:
                    data = self.remote.read(self.chain, seg["name"])
                except StorageError:
                    data = None
            if data is None:
                break
            ids = [orjson.loads(line)["id"] for line in data.splitlines()[1:]]
            chunks.append(ids)
            total += len(ids)
        for ids in reversed(chunks):
            for i in ids:
                self._remember(i)

    # --- manifest --------------------------------------------------------------------------
    def _manifest(self, segments: list[dict]) -> bytes:
        last = segments[-1] if segments else None
        head = (
            {"segment": last["name"], "seq": last.get("last_seq", 0), "hash": last.get("last_hash", GENESIS)}
            if last
            else {"segment": None, "seq": 0, "hash": GENESIS}
        )
        body = {
            "format": FORMAT,
            "chain": self.chain,
            "segments": segments,
            "head": head,
            "updated": time.time_ns(),
            "indexed": True,
        }  # the archive index (index.py) lists this chain: deleting it is noticed
        return orjson.dumps(sign(body, self.key), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    def _save_manifest(self) -> None:
        self.local.replace(self.chain, MANIFEST, self._manifest(self.segments))

    # --- writing ---------------------------------------------------------------------------
    def _start_segment(self) -> dict:
        number = (self.segments[-1]["number"] + 1) if self.segments else 1
        now = time.time_ns()
        seg = {
            "name": segment_name(number),
            "number": number,
            "closed": False,
            "first_seq": self.next_seq,
            "prev": self.head,
            "created": now,
            "records": 0,
            "last_seq": self.next_seq - 1,
            "last_hash": self.head,
            "bytes": 0,
        }
        seg["bytes"] = self.local.append(
            self.chain, seg["name"], header_line(self.chain, number, self.next_seq, self.head, now)
        )
        self.segments.append(seg)
        return seg

    def _close(self, seg: dict) -> None:
        data = self.local.read(self.chain, seg["name"]) or b""
        seg.update(closed=True, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
        if self.remote is not None:
            seg["uploaded"] = False
        self.local.seal(self.chain, seg["name"])
        SEGMENTS.inc()

    def _due(self, seg: dict) -> bool:
        return seg["bytes"] >= self.roll_bytes or (time.time_ns() - seg["created"]) / 1e9 >= self.roll_seconds

    def upload_pending(self) -> None:
        """Upload closed segments to S3, then the S3 manifest; StorageError when S3 is unreachable.

        A staged copy is removed only once the S3 manifest that lists it is stored too.
        """
        if self.remote is None:
            return
        pending = [s for s in self.segments if s["closed"] and not s.get("uploaded")]
        for seg in pending:
            data = self.local.read(self.chain, seg["name"])
            if data is None:
                raise StorageError(f"staged segment {self.local.location(self.chain, seg['name'])} is gone")
            try:
                self.remote.put(self.chain, seg["name"], data)
            except StorageError:
                UPLOADS.labels("error").inc()
                raise
            seg["uploaded"] = True
            UPLOADS.labels("ok").inc()
            self._remote_stale = True
        if pending:
            self._save_manifest()
        if not self._remote_stale:
            return
        uploaded = [s for s in self.segments if s["closed"] and s.get("uploaded")]
        self.remote.put(self.chain, MANIFEST, self._manifest(uploaded))
        self._remote_stale = False
        for seg in uploaded:
            self.local.remove(self.chain, seg["name"])

    def write(self, items: list[Item]) -> int:
        """Append the items not already in the chain; return how many were appended."""
        fresh = []
        for it in items:
            if it.event["id"] not in self.tail_set:
                fresh.append(it)
        if not fresh:
            return 0
        seg = self.open
        if seg is None or self._due(seg):
            if seg is not None:
                self._close(seg)
            seg = self._start_segment()
        lines = []
        times = []
        seq, head = self.next_seq, self.head
        for it in fresh:
            t, _ = effective_time_ns(it.event)
            line, head = record_line(seq, head, t, it.event)
            lines.append(line)
            times.append(t)
            seq += 1
        seg["bytes"] = self.local.append(self.chain, seg["name"], b"".join(lines))
        # Only once the bytes are durable does the chain's state move on.
        seg["first_time"] = min(times + ([seg["first_time"]] if "first_time" in seg else []))
        seg["last_time"] = max(times + ([seg["last_time"]] if "last_time" in seg else []))
        seg["records"] += len(fresh)
        seg["last_seq"], seg["last_hash"] = seq - 1, head
        self.next_seq, self.head = seq, head
        if self._due(seg):
            self._close(seg)
        self._save_manifest()
        for it in fresh:
            self._remember(it.event["id"])
        return len(fresh)


class AuditSink(SinkBase):
    name = "audit"

    def __init__(self, settings):
        self.settings = settings
        self.key = settings.hmac_key.get_secret_value().encode()
        self.local = LocalArchive(settings.storage.path)
        self.remote = S3Archive.from_settings(settings.storage.s3) if settings.storage.s3 else None
        self.chains: dict[str, ChainWriter] = {}
        self._s3_ok = True
        self.index = IndexWriter(self.local, self.key, remote=self.remote)
        self._next_index = 0.0  # monotonic; the first tick writes one

    @property
    def tick_interval(self) -> float:
        # Often enough to roll on time within ~10% of roll_seconds, at most every 30 s.
        return min(30.0, max(0.05, self.settings.roll_seconds / 10))

    def ready(self) -> bool:
        return self._s3_ok

    def tick(self) -> None:
        """Roll segments that reached roll_seconds while no events came; retry pending S3 uploads."""
        for w in list(self.chains.values()):
            seg = w.open
            if seg is not None and seg["records"] > 0 and w._due(seg):
                w._close(seg)
                w._save_manifest()
            try:
                w.upload_pending()
                self._s3_ok = True
            except StorageError as exc:
                self._s3_ok = False
                _log.warning("audit upload to S3 failed; retrying", extra={"chain": w.chain, "error": str(exc)})
        PENDING.set(sum(w.pending_uploads for w in self.chains.values()))
        if time.monotonic() >= self._next_index:
            self.write_index()

    def write_index(self) -> None:
        """The next signed archive index; a failure is retried at the next tick (the chains are intact)."""
        try:
            if self.index.write():
                self._next_index = time.monotonic() + self.settings.index_seconds
        except (OSError, StorageError) as exc:
            _log.warning("writing the audit archive index failed; retrying", extra={"error": str(exc)})

    def close(self) -> None:
        if self.chains:
            self.write_index()  # what this process wrote, indexed before it stops

    def _chain(self, topic: str, partition: int) -> ChainWriter:
        name = chain_dir(topic, partition)
        w = self.chains.get(name)
        if w is None:
            w = ChainWriter(
                name,
                self.local,
                self.key,
                remote=self.remote,
                roll_bytes=self.settings.roll_bytes,
                roll_seconds=self.settings.roll_seconds,
            )
            self.chains[name] = w
        return w

    def revoked(self, parts: list[TopicPartition]) -> None:
        # A new owner resumes from the files; ours must not write into that chain any more.
        for tp in parts:
            self.chains.pop(chain_dir(tp.topic, tp.partition), None)

    def write(self, items: list[Item]) -> None:
        by_chain: dict[tuple[str, int], list[Item]] = {}
        for it in items:
            by_chain.setdefault((it.record.topic, it.record.partition), []).append(it)
        try:
            for (topic, partition), chain_items in by_chain.items():
                w = self._chain(topic, partition)
                w.upload_pending()  # S3 down: hold this batch (and the offsets) until it is back
                chain_items.sort(key=lambda it: it.record.offset)
                w.write(chain_items)
                try:
                    w.upload_pending()
                except StorageError:
                    pass  # the batch is durable in staging; the next batch waits for S3
            self._s3_ok = True
        except StorageError as exc:
            self._s3_ok = False
            raise Retry(str(exc)) from None
        finally:
            PENDING.set(sum(w.pending_uploads for w in self.chains.values()))
        if self._next_index == 0.0:
            self.write_index()  # the manifests now say "indexed": an index exists from the first batch on

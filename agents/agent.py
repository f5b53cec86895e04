"""The node agent's service: discover files, tail them, parse and merge lines, send events, and move
each file's checkpoint only after Kafka acknowledged everything before it.

One thread does the reading, parsing and producing (Python gains nothing from more, and one thread
keeps every file's order); the Kubernetes watch runs in its own threads (agents/pod_metadata.py).
The loop, each turn:

1. every ``scan_interval``: list the globs, open new files, notice rotated/deleted ones, refresh pod
   metadata and exclusions;
2. read a chunk from each file unless the queue of unacknowledged records is full (backpressure:
   the files are the buffer, memory stays bounded);
3. send what the mergers completed or timed out, serve Kafka's delivery callbacks;
4. finish rotated/deleted files that went quiet (read to the end, flush, wait for the acks);
5. every ``checkpoint_interval``: write the checkpoints that moved, in one SQLite transaction.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import deque

from agents import metrics
from agents.config import AgentConfig
from agents.discovery import Discovery, Found
from agents.exclusion import exclusion_reason
from agents.file_identity import FileIdentity, fingerprint
from agents.multiline import Record
from agents.parser.picker import parser_for
from agents.partial_merger import Line
from agents.path_info import pod_ref
from agents.pod_metadata import PodMetadata
from agents.rate_limit import TokenBucket
from agents.resource import k8s_resource
from agents.tailer import RawLine
from agents.tracked_file import TrackedFile
from logtide import envelope, log
from logtide.checkpoint import CheckpointError, SqliteCheckpoints
from logtide.sender import EventSender
from logtide.transport import Producer, TransportError

_log = log.get("agents.agent")

#: Rough per-event overhead over the body, for the queue's byte bound.
_EVENT_OVERHEAD = 400


def tune_gc() -> None:
    """For a process that is mostly this agent: fewer garbage-collector passes.

    Each record allocates a few dicts and tuples that die by reference counting, yet they trigger
    generation-0 collections that walk every record still waiting for its ack (tens of thousands of
    objects); with a 20 000-record queue that was ~40 % of the agent's CPU. Freeze what startup
    allocated and collect less often (cycles are rare here; memory stays bounded by the queue).
    """
    import gc

    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)


class Agent:
    name = "agent"

    def __init__(self, config: AgentConfig, producer: Producer, checkpoints: SqliteCheckpoints,
                 metadata: PodMetadata | None = None):
        self.config = config
        self.topic = config.topic_name()
        self.source = config.source_name()
        self.sender = EventSender(producer, "agent")
        self.checkpoints = checkpoints
        self.metadata = metadata
        self.discovery = Discovery(config.include_globs(), config.exclude)
        self.node = config.kubernetes.node_name or socket.gethostname()
        self.files: dict[str, TrackedFile] = {}
        self.saved: dict[str, dict] = dict(checkpoints.items())
        self.checkpoint_failing = False          # the last checkpoint write failed (disk full): logged once
        self.first_seen: dict[str, float] = {}
        self.excluded: dict[str, str] = {}             # inode key → reason, for files never opened
        self.buckets: dict[bytes, TokenBucket] = {}
        self.retry: deque = deque()                    # records Kafka refused, sent again (same id)
        self.retry_at = 0.0
        self.inflight_bytes = 0
        self.scans = 0
        self.produce_errors = 0
        self._turn = 0
        self.last_ack = time.monotonic()
        self.sent = self.acked = 0               # records handed to Kafka / acknowledged by it
        self._sent_counted = self._acked_counted = 0

    # --- the loop ---------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        cfg = self.config
        if self.metadata is not None:
            self.metadata.start()
        next_scan = next_checkpoint = next_expiry = 0.0
        try:
            while not stop.is_set():
                now = time.monotonic()
                if now >= next_scan:
                    self.scan(now)
                    next_scan = now + cfg.read.scan_interval_seconds
                if self.retry and now >= self.retry_at:
                    self.retry_at = now + 1.0        # a Kafka that keeps refusing is not hammered
                    for _ in range(len(self.retry)):
                        if self.queue_full():
                            break
                        self._send(*self.retry.popleft())
                read = self.read_round(now)
                if now >= next_expiry:
                    self.expire(now)
                    self.finish_quiet_files(now)
                    next_expiry = now + 0.1
                self.sender.poll(0)
                self._update_queue_metrics()
                if now >= next_checkpoint:
                    self.write_checkpoints()
                    next_checkpoint = now + cfg.checkpoint_interval_seconds
                if not read:
                    self.sender.poll(cfg.read.idle_poll_seconds)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Wait (bounded) for the acks of what was sent, checkpoint, close. Buffered merger content is
        not sent: the checkpoint stays before it, so the next start reads it again."""
        left = self.sender.flush(self.config.shutdown_timeout_seconds)
        self._update_queue_metrics()
        self.write_checkpoints()
        if self.metadata is not None:
            self.metadata.stop()
        try:
            self.sender.producer.close()
        except Exception:  # noqa: BLE001 - closing must not hide the stop
            pass
        for tf in self.files.values():
            tf.close()
        self.files.clear()
        self.checkpoints.close()
        _log.info("agent stopped", extra={"unacknowledged": left})

    def kafka_ok(self, stall_seconds: float = 60.0) -> bool:
        """For /readyz: nothing is waiting for Kafka, or Kafka acknowledged something recently."""
        return self.sender.inflight == 0 or time.monotonic() - self.last_ack < stall_seconds

    def queue_full(self) -> bool:
        q = self.config.queue
        return self.sender.inflight >= q.max_records or self.inflight_bytes >= q.max_bytes

    # --- discovery ---------------------------------------------------------------------------------

    def scan(self, now: float) -> None:
        found = self.discovery.scan()
        by_inode = {f"{f.dev}:{f.ino}": f for f in found.values()}
        for key, tf in self.files.items():
            f = by_inode.get(key)
            if f is not None:
                if f.path != tf.path:           # renamed to a name we also watch (e.g. app.log.1)
                    metrics.ROTATIONS.labels("rename").inc()
                    tf.path = f.path
                if not tf.finishing:
                    tf.detached = None          # watched again (renamed back, glob changed)
                continue
            if tf.detached is None:
                tf.detached = self._why_gone(tf)
                metrics.ROTATIONS.labels(tf.detached).inc()
        for key, f in by_inode.items():
            if key not in self.files:
                self.open_file(key, f, now)
        if self.scans == 0:
            self._resume_orphans(set(by_inode))
        self.scans += 1
        if self.metadata is not None:
            for tf in self.files.values():
                if tf.ref is not None and tf.metadata_version != self.metadata.version:
                    self._enrich(tf)
        metrics.FILES_TAILED.set(len(self.files))

    @staticmethod
    def _why_gone(tf: TrackedFile) -> str:
        try:
            st = os.stat(tf.path)
        except OSError:
            try:
                return "delete" if os.fstat(tf.fd).st_nlink == 0 else "rename"
            except OSError:
                return "delete"
        return "rename" if (st.st_dev, st.st_ino) != (tf.identity.dev, tf.identity.ino) else "unwatched"

    def open_file(self, key: str, f: Found, now: float) -> TrackedFile | None:
        cfg = self.config
        ref = pod_ref(f.path, f.real_path) if cfg.mode == "kubernetes" else None
        meta = None
        if ref is not None and self.metadata is not None:
            meta = self.metadata.pod(ref)
            if self.metadata.worth_waiting(meta is not None):
                # A new pod's first lines: give the watch a moment so exclusions and labels apply.
                first = self.first_seen.setdefault(key, now)
                if now - first < cfg.kubernetes.wait_for_metadata_seconds:
                    return None
            reason = exclusion_reason(ref, meta, self.metadata.namespace_annotations(ref.namespace), cfg.kubernetes)
            if reason:
                if self.excluded.get(key) != reason:
                    _log.info("container excluded", extra={"path": f.path, "reason": reason})
                self.excluded[key] = reason
                return None
        elif ref is not None:
            reason = exclusion_reason(ref, None, {}, cfg.kubernetes)
            if reason:
                self.excluded[key] = reason
                return None
        self.excluded.pop(key, None)
        saved = self.saved.pop(key, None) or self.checkpoints.get(key)
        if saved is None and f.size < cfg.read.fingerprint_bytes and time.time() - f.mtime < cfg.read.fingerprint_wait_seconds:
            return None  # too short to fingerprint yet; the writer is probably mid-line
        try:
            fd = os.open(f.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            metrics.BAD_INPUT.labels("file_vanished").inc()
            return None
        except OSError as exc:
            metrics.BAD_INPUT.labels("file_unreadable").inc()
            _log.warning("cannot open log file", extra={"path": f.path, "error": str(exc)})
            return None
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (f.dev, f.ino):
            os.close(fd)                          # replaced between listing and opening: next scan
            metrics.BAD_INPUT.labels("file_vanished").inc()
            return None
        identity, offset = self._identity(fd, f, saved, st.st_size)
        tf = TrackedFile(cfg, f.path, fd, identity, offset, ref)
        if not self._save_checkpoints({key: tf.state(offset)}):   # the identity must survive a crash from now on
            tf.close()                            # no space for it yet: the next scan tries again
            return None
        self._enrich(tf, meta)
        self.files[key] = tf
        self.first_seen.pop(key, None)
        tf.checkpointed = offset
        _log.info("tailing", extra={"path": f.path, "offset": offset, "identity": identity.name})
        return tf

    def _identity(self, fd: int, f: Found, saved: dict | None, size: int) -> tuple[FileIdentity, int]:
        fp_bytes = self.config.read.fingerprint_bytes
        if saved is not None:
            identity = FileIdentity.from_dict(saved["identity"])
            offset = int(saved.get("offset", 0))
            if not identity.matches(fd):
                # Same inode, different content: the inode was reused by a new file. Start it at 0.
                metrics.ROTATIONS.labels("inode_reuse").inc()
            elif size < offset:
                metrics.ROTATIONS.labels("truncate").inc()   # truncated while we were not running
                fp, n = fingerprint(fd, fp_bytes)
                return FileIdentity(f.dev, f.ino, fp, n, identity.generation + 1), 0
            else:
                return identity, offset
        fp, n = fingerprint(fd, fp_bytes)
        return FileIdentity(f.dev, f.ino, fp, n, 0), 0

    def _resume_orphans(self, found: set[str]) -> None:
        """At start: a checkpointed file renamed away while we were down (e.g. 0.log → 0.log.20240501)
        is looked for by inode in its directory and read to its end; otherwise its checkpoint goes."""
        for key, saved in list(self.saved.items()):
            if key in found or key in self.files:
                continue
            self.saved.pop(key)
            path = saved.get("path") or ""
            ident = saved.get("identity") or {}
            match = None
            try:
                for entry in os.scandir(os.path.dirname(path) or "."):
                    if entry.inode() == ident.get("ino") and entry.is_file(follow_symlinks=False):
                        match = entry.path
                        break
            except OSError:
                pass
            if match is None:
                try:
                    self.checkpoints.delete(key)
                except CheckpointError as exc:  # full disk at start: the stale entry is dropped next time
                    metrics.CHECKPOINT_ERRORS.inc()
                    _log.warning("cannot delete checkpoint of a vanished file", extra={"error": str(exc)})
                continue
            st = os.stat(match)
            tf = self.open_file(key, Found(match, match, st.st_dev, st.st_ino, st.st_size, st.st_mtime),
                                time.monotonic())
            if tf is not None:
                tf.detached = "rename"
                metrics.ROTATIONS.labels("rename").inc()

    def _enrich(self, tf: TrackedFile, meta=None) -> None:
        """Resource and attributes of a file's events (refreshed when pod metadata changes)."""
        cfg = self.config
        ref = tf.ref
        if ref is not None:
            if self.metadata is not None:
                meta = meta or self.metadata.pod(ref)
                tf.metadata_version = self.metadata.version
                reason = exclusion_reason(ref, meta, self.metadata.namespace_annotations(ref.namespace),
                                          cfg.kubernetes)
                if reason != tf.excluded:
                    _log.info("container exclusion changed", extra={"path": tf.path, "reason": reason})
                tf.excluded = reason
            tf.resource = k8s_resource(ref, meta, self.node if self.metadata is None else None,
                                       cfg.kubernetes.labels, cfg.kubernetes.annotations)
        else:
            tf.resource = {"host.name": self.node, "service.name": os.path.basename(tf.path).split(".")[0]}
        tf.attributes = {s: {"log.iostream": s, "log.file.path": tf.path} for s in ("stdout", "stderr")}

    # --- reading and sending -------------------------------------------------------------------------

    def read_round(self, now: float) -> bool:
        """One chunk from each file; False when no file had anything new."""
        chunk = self.config.read.chunk_bytes
        got = False
        files = list(self.files.values())
        if len(files) > 1:
            # start with another file each turn: under backpressure the first files must not starve the rest
            self._turn = (self._turn + 1) % len(files)
            files = files[self._turn:] + files[:self._turn]
        for tf in files:
            if tf.finishing or tf.excluded:
                continue
            if self.queue_full():
                waited = time.monotonic()
                self.sender.poll(0.05)
                metrics.BACKPRESSURE.inc(time.monotonic() - waited)
                return True
            lines, n = tf.tailer.read(chunk)
            if n:
                got = True
                tf.last_data = now
                metrics.BYTES_READ.inc(n)
                if lines:
                    self.process(tf, lines)
            elif tf.detached is None and tf.tailer.truncated():
                self.truncated(tf)
        self._update_queue_metrics()
        return got

    def process(self, tf: TrackedFile, lines: list[RawLine]) -> None:
        if self.metadata is not None and tf.ref is not None and tf.metadata_version != self.metadata.version:
            self._enrich(tf)   # labels/annotations changed since this file's resource was built
        parser = tf.parser
        if parser is None:
            parser = tf.parser = parser_for(self.config.format, lines[0].data)
        metrics.LINES_READ.labels(parser.name).inc(len(lines))
        observed = time.time_ns()
        now = time.monotonic()
        parse = parser.parse
        add = tf.partial.add
        for raw in lines:
            frag = parse(raw.data)
            if frag.problem is not None:
                metrics.BAD_INPUT.labels(frag.problem).inc()
            if raw.truncated:
                metrics.BAD_INPUT.labels("line_too_long").inc()
            line = add(raw.start, raw.end, frag.time, frag.stream, frag.partial, frag.message, raw.truncated)
            if line is not None:
                self.complete(tf, line, observed, now)

    def complete(self, tf: TrackedFile, line: Line, observed: int, now: float | None = None) -> None:
        message = line.message
        if isinstance(message, bytes):
            try:
                text = message.decode()
            except UnicodeDecodeError:
                text = message.decode("utf-8", "replace")
                metrics.BAD_INPUT.labels("invalid_utf8").inc()
        else:
            text = message
        if line.pieces > 1:
            metrics.PARTIAL_MERGES.inc()
        if line.unfinished:
            metrics.BAD_INPUT.labels("partial_unfinished").inc()
        for rec in tf.multiline.add(line, text, now):
            self.emit(tf, rec, observed)

    def emit(self, tf: TrackedFile, rec: Record, observed: int) -> None:
        limit = self.config.rate_limit
        if limit.lines_per_second is not None:
            bucket = self.buckets.get(tf.key)
            if bucket is None:
                bucket = self.buckets[tf.key] = TokenBucket(limit.lines_per_second, limit.burst)
            if not bucket.allow(time.monotonic()):
                metrics.DROPPED.labels("rate_limited").inc()
                return
        attributes = tf.attributes[rec.stream]
        text = rec.text
        truncated = rec.truncated
        if len(text) > self.config.max_event_bytes:
            text = text[:self.config.max_event_bytes]
            truncated = True
            metrics.BAD_INPUT.labels("record_too_long").inc()
        if rec.lines > 1 or truncated or rec.unfinished:
            attributes = dict(attributes)
            if rec.lines > 1:
                attributes["log.lines"] = rec.lines
                metrics.MULTILINE_MERGES.inc()
            if truncated:
                attributes["logtide.truncated"] = True
            if rec.unfinished:
                attributes["logtide.partial_unfinished"] = True
        event = envelope.new_event(
            id=tf.event_id(rec.start), body=text, source=self.source, time=rec.time,
            observed_time=observed, attributes=attributes, resource=tf.resource)
        tf.window.sent(rec.start)
        self._send(tf, tf.window, event, rec.start, len(text) + _EVENT_OVERHEAD)

    def _send(self, tf: TrackedFile, window, event: dict, start: int, size: int) -> None:
        self.inflight_bytes += size
        self.sent += 1

        def acked(_event, window=window, start=start, size=size):
            window.acked(start)
            self.inflight_bytes -= size
            self.acked += 1
            self.last_ack = time.monotonic()

        def failed(event, err, tf=tf, window=window, start=start, size=size):
            # Kafka refused or timed out: send it again (same id); the checkpoint waits for it.
            self.inflight_bytes -= size
            self.produce_errors += 1
            metrics.PRODUCE_RETRIES.inc()
            self.retry.append((tf, window, event, start, size))

        try:
            self.sender.send(self.topic, event, tf.key, on_ack=acked, on_error=failed)
        except TransportError as exc:
            if "too large" in str(exc).lower() and isinstance(event["body"], str) and len(event["body"]) > 16:
                # Escaping made the record larger than the broker takes: cut harder and try again.
                metrics.BAD_INPUT.labels("record_too_long").inc()
                event["body"] = event["body"][:len(event["body"]) // 4]
                event["attributes"] = {**event["attributes"], "logtide.truncated": True}
                failed(event, exc)
            else:
                _log.warning("produce failed; will retry", extra={"error": str(exc)})
                failed(event, exc)

    def _update_queue_metrics(self) -> None:
        # Per-record counters are kept as ints and added here, once per turn (prometheus' inc costs).
        if self.sent != self._sent_counted:
            metrics.RECORDS_SENT.inc(self.sent - self._sent_counted)
            self._sent_counted = self.sent
        if self.acked != self._acked_counted:
            metrics.RECORDS_PRODUCED.inc(self.acked - self._acked_counted)
            self._acked_counted = self.acked
        metrics.QUEUE_DEPTH.set(self.sender.inflight)
        metrics.QUEUE_BYTES.set(self.inflight_bytes)

    # --- timeouts, rotation, truncation -----------------------------------------------------------------

    def expire(self, now: float) -> None:
        """Send partial lines and multi-line records that waited too long for their next piece; only
        for files read to their end (a pause of ours, e.g. backpressure, must not split records)."""
        observed = time.time_ns()
        for tf in self.files.values():
            if not tf.buffered():
                continue
            try:
                if tf.tailer.position < tf.tailer.size():
                    continue
            except OSError:
                pass
            for line in tf.partial.expired(now):
                self.complete(tf, line, observed)
            for rec in tf.multiline.expired(now):
                self.emit(tf, rec, observed)

    def flush_file(self, tf: TrackedFile) -> None:
        """Send everything buffered for a file (it was finished or truncated)."""
        observed = time.time_ns()
        tail = tf.tailer.pending_tail()
        if tail is not None:
            self.process(tf, [tail])
        for line in tf.partial.expired(everything=True):
            self.complete(tf, line, observed)
        for rec in tf.multiline.expired(everything=True):
            self.emit(tf, rec, observed)

    def truncated(self, tf: TrackedFile) -> None:
        """copytruncate: what was buffered goes out under the old generation; reading restarts at 0."""
        metrics.ROTATIONS.labels("truncate").inc()
        self.flush_file(tf)
        fp, n = fingerprint(tf.fd, self.config.read.fingerprint_bytes)
        old = tf.identity
        tf.set_identity(FileIdentity(old.dev, old.ino, fp, n, old.generation + 1))
        tf.window = type(tf.window)()   # acks of the old generation land in the old window
        tf.tailer.reset(0)
        self.checkpoints.put(tf.inode_key, tf.state(0))
        tf.checkpointed = 0
        _log.info("file truncated; reading from the start", extra={"path": tf.path, "generation": old.generation + 1})

    def finish_quiet_files(self, now: float) -> None:
        wait = self.config.read.rotate_wait_seconds
        for key, tf in list(self.files.items()):
            if tf.detached is None or now - tf.last_data < wait:
                continue
            if not tf.finishing and tf.excluded:
                tf.finishing = True                # an excluded container's rotated file is not read
            if not tf.finishing:
                try:
                    if tf.tailer.position < tf.tailer.size():
                        continue                   # not read to its end yet (backpressure): read_round goes on
                except OSError:
                    pass
                self.flush_file(tf)
                tf.finishing = True
            if len(tf.window) == 0 and not any(r[0] is tf for r in self.retry):
                tf.close()
                del self.files[key]
                try:
                    self.checkpoints.delete(key)
                except Exception as exc:  # noqa: BLE001 - a stale entry is dropped at the next start
                    metrics.CHECKPOINT_ERRORS.inc()
                    _log.warning("cannot delete checkpoint of finished file", extra={"error": str(exc)})
                metrics.FILES_FINISHED.inc()
                try:
                    metrics.CHECKPOINT_LAG.remove(tf.metric_label)
                except KeyError:
                    pass
                _log.info("finished rotated file", extra={"path": tf.path, "why": tf.detached})

    # --- checkpoints -------------------------------------------------------------------------------------

    def write_checkpoints(self) -> None:
        updates = {}
        for key, tf in self.files.items():
            offset = tf.checkpoint_offset()
            try:
                size = os.fstat(tf.fd).st_size
            except OSError:
                size = tf.tailer.position
            metrics.CHECKPOINT_LAG.labels(tf.metric_label).set(max(0, size - offset))
            if offset != tf.checkpointed:
                updates[key] = tf.state(offset)
        if updates and self._save_checkpoints(updates):
            for key, state in updates.items():
                self.files[key].checkpointed = state["offset"]
            metrics.CHECKPOINT_WRITES.inc()

    def _save_checkpoints(self, updates: dict[str, dict]) -> bool:
        """Write checkpoints; a full or failing disk is reported (log + metric) and retried later, the
        store keeping its last good state (one SQLite transaction: all or none)."""
        try:
            self.checkpoints.put_many(updates)
        except CheckpointError as exc:
            metrics.CHECKPOINT_ERRORS.inc()
            if not self.checkpoint_failing:
                _log.error("cannot write checkpoints; reading goes on, lines after the last good checkpoint "
                           "will be sent again after a restart", extra={"error": str(exc)})
            self.checkpoint_failing = True
            return False
        if self.checkpoint_failing:
            _log.warning("checkpoints written again")
            self.checkpoint_failing = False
        return True

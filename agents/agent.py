"""The node agent's service: discover files, tail them, parse and merge lines, send events, and move
each file's checkpoint only after Kafka acknowledged everything before it.

One thread does the reading, parsing and producing (Python gains nothing from more, and one thread
keeps every file's order); the Kubernetes watch runs in its own threads (agents/pod_metadata.py).
The loop, each turn:

1. every ``scan_interval``: list the globs, open new files, notice rotated/deleted ones, refresh pod
   metadata and exclusions;
2. read a chunk from each file unless the queue of unacknowledged records is full (backpressure:
   the files are the buffer, memory stays bounded);
3. send what the mergers completed or timed out (failed records are sent again, same bytes);
4. finish rotated/deleted files that went quiet (read to the end, flush, wait for the acks);
5. every ``checkpoint_interval``: drain (wait until Kafka acknowledged everything sent so far, as
   Kafka Connect's source tasks do), then write the checkpoints that moved, in one SQLite transaction.

Acknowledgements are learned at those drains, not per record (logtide/sender.py ``DrainingSender``):
a file's checkpoint is what had been sent of it when a drain completed. The hot path (``process``)
makes no object per line beyond the event's bytes: at 100k lines/s every allocation and call shows.
"""

from __future__ import annotations

import os
import socket
import threading
import time

from logtide.agents import line_path, metrics
from logtide.agents.config import AgentConfig, MultilineSettings
from logtide.agents.discovery import Discovery, Found
from logtide.agents.exclusion import exclusion_reason
from logtide.agents.file_identity import FileIdentity, fingerprint
from logtide.agents.multiline import MultilineMerger, Record
from logtide.agents.parser.picker import parser_for
from logtide.agents.partial_merger import Line
from logtide.agents.path_info import PodRef, pod_ref
from logtide.agents.pod_metadata import PodMeta, PodMetadata, SourceAnnotations, source_annotations
from logtide.agents.rate_limit import TokenBucket
from logtide.agents.resource import k8s_resource
from logtide.agents.tailer import RawLine
from logtide.agents.tracked_file import TrackedFile
from logtide import envelope, log
from logtide.checkpoint import CheckpointError, SqliteCheckpoints
from logtide.sender import DrainingSender
from logtide.transport import Producer

_log = log.get("agents.agent")
_NATIVE = line_path.NATIVE

#: How long a checkpoint's drain may stop reading to wait for Kafka before the loop goes on; doubled
#: after each drain that timed out (a slow Kafka still gets checkpoints), back to the first on success.
_DRAIN_SECONDS = (0.1, 2.0)
#: When the queue is full: how long to wait for Kafka before looking again (no callback wakes us).
_BACKPRESSURE_WAIT = 0.001


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

    def __init__(
        self,
        config: AgentConfig,
        producer: Producer,
        checkpoints: SqliteCheckpoints,
        metadata: PodMetadata | None = None,
    ):
        self.config = config
        self.topic = config.topic_name()
        self.source = config.source_name()
        self.sender = DrainingSender(producer, "agent", self.topic, shrink=self._shrink)
        self._rate_limit = config.rate_limit.lines_per_second
        self._max_event_bytes = config.max_event_bytes
        self.checkpoints = checkpoints
        self.metadata = metadata
        self.discovery = Discovery(config.include_globs(), config.exclude, config.read.unmatched_warning_seconds)
        self.node = config.kubernetes.node_name or socket.gethostname()
        self.files: dict[str, TrackedFile] = {}
        self.saved: dict[str, dict] = dict(checkpoints.items())
        self.checkpoint_failing = False  # the last checkpoint write failed (disk full): logged once
        self.first_seen: dict[str, float] = {}
        self.excluded: dict[str, str] = {}  # inode key → reason, for files never opened
        self.buckets: dict[bytes, TokenBucket] = {}
        self.scans = 0
        self._turn = 0
        self.last_ack = time.monotonic()
        self.drained = 0  # sender.accepted at the last completed drain
        self._sent_counted = self._acked_counted = self._failures_counted = 0
        self._annotation_errors: set[tuple] = set()  # (pod or namespace, container, error) already logged

    # --- the loop ---------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        cfg = self.config
        if self.metadata is not None:
            self.metadata.start()
        next_scan = next_checkpoint = next_expiry = 0.0
        drain_wait = _DRAIN_SECONDS[0]
        clean = False
        try:
            while not stop.is_set():
                now = time.monotonic()
                if now >= next_scan:
                    self.scan(now)
                    next_scan = now + cfg.read.scan_interval_seconds
                read = self.read_round(now)
                if now >= next_expiry:
                    self.expire(now)
                    self.finish_quiet_files(now)
                    next_expiry = now + 0.1
                self.sender.poll(0)
                self._update_queue_metrics()
                if now >= next_checkpoint:
                    if self.drain(drain_wait):
                        self.write_checkpoints()
                        drain_wait = _DRAIN_SECONDS[0]
                    else:
                        drain_wait = min(2 * drain_wait, _DRAIN_SECONDS[1])
                    next_checkpoint = time.monotonic() + cfg.checkpoint_interval_seconds
                if not read:
                    self.sender.poll(cfg.read.idle_poll_seconds)
            clean = True
        finally:
            self.shutdown(checkpoint=clean)

    def shutdown(self, checkpoint: bool = True) -> None:
        """Wait (bounded) for the acks of what was sent, checkpoint, close. Buffered merger content is
        not sent: the checkpoint stays before it, so the next start reads it again. After an error
        (``checkpoint`` False) the loop may have stopped mid-chunk, with lines read but never sent:
        the checkpoints of the last drain stay."""
        if self.drain(self.config.shutdown_timeout_seconds) and checkpoint:
            self.write_checkpoints()  # else the checkpoints of the last drain stay: resent from there
        left = self.sender.in_flight
        self._update_queue_metrics()
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
        return self.sender.in_flight == 0 or time.monotonic() - self.last_ack < stall_seconds

    def queue_bytes(self, in_flight: int) -> int:
        """Bytes of the records in flight (for the gauge), estimated from the mean record size; the
        bound itself is exact: the Kafka client's buffer holds at most ``queue.max_bytes``."""
        sender = self.sender
        return in_flight * sender.sent_bytes // sender.sent if sender.sent else 0

    def queue_full(self) -> bool:
        # records waiting for room in the client's buffer: its byte bound is reached
        return bool(self.sender.waiting) or self.sender.in_flight >= self.config.queue.max_records

    def drain(self, timeout: float) -> bool:
        """Wait until Kafka acknowledged everything sent; then every file's checkpoint may move."""
        if not self.sender.drain(timeout):
            return False
        self.drained = self.sender.accepted
        return True

    # --- discovery ---------------------------------------------------------------------------------

    def scan(self, now: float) -> None:
        found = self.discovery.scan()
        by_inode = {f"{f.dev}:{f.ino}": f for f in found.values()}
        for key, tf in self.files.items():
            f = by_inode.get(key)
            if f is not None:
                if f.path != tf.path:  # renamed to a name we also watch (e.g. app.log.1)
                    metrics.ROTATIONS.labels("rename").inc()
                    tf.path = f.path
                if not tf.finishing:
                    tf.detached = None  # watched again (renamed back, glob changed)
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
        ref = pod_ref(f.path, f.real_path)  # the kubelet's layout, whatever the mode and glob
        if ref is not None and cfg.mode != "kubernetes" and ref.restart is None and ref.container_id is None:
            ref = None  # outside kubernetes mode: only the kubelet's exact file names
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
        if (
            saved is None
            and f.size < cfg.read.fingerprint_bytes
            and time.time() - f.mtime < cfg.read.fingerprint_wait_seconds
        ):
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
            os.close(fd)  # replaced between listing and opening: next scan
            metrics.BAD_INPUT.labels("file_vanished").inc()
            return None
        identity, offset = self._identity(fd, f, saved, st.st_size)
        fmt, multiline = self.source_settings(f.path, f.real_path, ref, meta)
        tf = TrackedFile(cfg, f.path, fd, identity, offset, ref, f.real_path, fmt, multiline)
        if not self._save_checkpoints({key: tf.state(offset)}):  # the identity must survive a crash from now on
            tf.close()  # no space for it yet: the next scan tries again
            return None
        self._enrich(tf, meta)
        self.files[key] = tf
        self.first_seen.pop(key, None)
        tf.checkpointed = offset
        _log.info("tailing", extra={"path": f.path, "offset": offset, "identity": identity.name})
        return tf

    def source_settings(
        self, path: str, real_path: str | None, ref: PodRef | None, meta: PodMeta | None
    ) -> tuple[str, MultilineSettings]:
        """A file's format and multi-line settings, each from the first that gives it: the pod's
        annotations (logtide.io/parser, logtide.io/multiline), its namespace's, the first ``sources``
        entry matching its path, the top level."""
        fmt, multiline = self.config.source_settings(path, real_path)
        if ref is None or meta is None:
            return fmt, multiline
        pod = meta.source_annotations(ref.container)
        ns = (
            source_annotations(self.metadata.namespace_annotations(ref.namespace), ref.container)
            if self.metadata is not None
            else SourceAnnotations(None, None, None)
        )
        for ann, where in ((pod, f"{ref.namespace}/{ref.pod}"), (ns, ref.namespace)):
            if ann.error and (where, ref.container, ann.error) not in self._annotation_errors:
                self._annotation_errors.add((where, ref.container, ann.error))
                metrics.BAD_INPUT.labels("bad_annotation").inc()
                _log.warning("annotation ignored", extra={"on": where, "error": ann.error})
        chosen = pod.multiline if pod.multiline is not None else ns.multiline
        if chosen is not None:
            multiline = MultilineSettings.model_validate({**multiline.model_dump(), **chosen})
        return pod.format or ns.format or fmt, multiline

    def _identity(self, fd: int, f: Found, saved: dict | None, size: int) -> tuple[FileIdentity, int]:
        fp_bytes = self.config.read.fingerprint_bytes
        if saved is not None:
            identity = FileIdentity.from_dict(saved["identity"])
            offset = int(saved.get("offset", 0))
            if not identity.matches(fd):
                # Same inode, different content: the inode was reused by a new file. Start it at 0.
                metrics.ROTATIONS.labels("inode_reuse").inc()
            elif size < offset:
                metrics.ROTATIONS.labels("truncate").inc()  # truncated while we were not running
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
            tf = self.open_file(
                key, Found(match, match, st.st_dev, st.st_ino, st.st_size, st.st_mtime), time.monotonic()
            )
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
                reason = exclusion_reason(ref, meta, self.metadata.namespace_annotations(ref.namespace), cfg.kubernetes)
                if reason != tf.excluded:
                    _log.info("container exclusion changed", extra={"path": tf.path, "reason": reason})
                tf.excluded = reason
            tf.resource = k8s_resource(
                ref,
                meta,
                self.node if self.metadata is None else None,
                cfg.kubernetes.labels,
                cfg.kubernetes.annotations,
            )
            if meta is not None:
                self._apply_source_settings(tf, meta)
        else:
            tf.resource = {"host.name": self.node, "service.name": os.path.basename(tf.path).split(".")[0]}
        tf.attributes = {s: {"log.iostream": s, "log.file.path": tf.path} for s in ("stdout", "stderr")}
        tf.templates = {
            s: envelope.EventTemplate(source=self.source, attributes=a, resource=tf.resource)
            for s, a in tf.attributes.items()
        }

    def _apply_source_settings(self, tf: TrackedFile, meta: PodMeta) -> None:
        """Annotations that came or changed after the file was opened apply from its next line (when
        nothing is buffered in its mergers; else at the next metadata refresh)."""
        fmt, multiline = self.source_settings(tf.path, tf.real_path, tf.ref, meta)
        if fmt == tf.format and multiline == tf.multiline_settings:
            return
        if tf.buffered():
            tf.metadata_version = -1
            return
        if fmt != tf.format:
            tf.format, tf.parser = fmt, None
        if multiline != tf.multiline_settings:
            tf.multiline_settings = multiline
            tf.multiline = MultilineMerger.from_settings(multiline)

    # --- reading and sending -------------------------------------------------------------------------

    def read_round(self, now: float) -> bool:
        """One chunk from each file; False when no file had anything new."""
        chunk = self.config.read.chunk_bytes
        got = False
        files = list(self.files.values())
        if len(files) > 1:
            # start with another file each turn: under backpressure the first files must not starve the rest
            self._turn = (self._turn + 1) % len(files)
            files = files[self._turn :] + files[: self._turn]
        for tf in files:
            if tf.finishing or tf.excluded or tf.failed:
                continue
            if self.queue_full():
                waited = time.monotonic()
                self.sender.poll(_BACKPRESSURE_WAIT)
                metrics.BACKPRESSURE.inc(time.monotonic() - waited)
                return True
            head, start, lines, n = tf.tailer.read(chunk)
            if n:
                got = True
                tf.last_data = now
                metrics.BYTES_READ.inc(n)
                if head is not None or lines:
                    try:
                        self.process(tf, head, start, lines)
                    except Exception as exc:  # noqa: BLE001 - one file's failure must not stop the others
                        self.fail_file(tf, exc)
            elif tf.detached is None and tf.tailer.truncated():
                self.truncated(tf)
        self._update_queue_metrics()
        return got

    def process(self, tf: TrackedFile, head: RawLine | None, start: int, lines: list[bytes]) -> None:
        """Parse, merge and send complete lines: ``head`` (may be None), then ``lines`` from byte ``start``."""
        if self.metadata is not None and tf.ref is not None and tf.metadata_version != self.metadata.version:
            self._enrich(tf)  # labels/annotations changed since this file's resource was built
        parser = tf.parser
        if parser is None:
            parser = tf.parser = parser_for(
                tf.format, head.data if head is not None else lines[0], tf.path, tf.real_path
            )
        metrics.LINES_READ.labels(parser.name).inc(len(lines) + (head is not None))
        observed = time.time_ns()
        now = time.monotonic()
        if head is not None:
            self.piece(tf, head.start, head.end, head.data, head.truncated, observed, now)
        # The common case inline: a complete, well-formed line (framed for the whole chunk at once,
        # natively when the native line path is on) while no partial line is pending goes straight to
        # the multi-line merger; anything else takes piece().
        partial_pending = tf.partial.pending
        add = tf.multiline.add
        emit = self.emit
        pos = start
        for data, framed in zip(lines, line_path.frame(parser, lines, self.config.read.max_line_bytes)):
            begin = pos
            pos += len(data) + 1
            if partial_pending or framed is None:
                self.piece(tf, begin, pos, data, False, observed, now)
                continue
            rec = add(begin, pos, framed[0], framed[1], framed[2], False, False, now)
            if rec is not None:
                emit(tf, rec, observed)

    def piece(
        self, tf: TrackedFile, start: int, end: int, data: bytes, truncated: bool, observed: int, now: float
    ) -> None:
        """One raw line, every case: cut if too long, parse, count bad input, merge partial pieces."""
        limit = self.config.read.max_line_bytes
        if len(data) > limit:
            data, truncated = data[:limit], True
        frag = tf.parser.parse(data)
        if frag.problem is not None:
            metrics.BAD_INPUT.labels(frag.problem).inc()
        if truncated:
            metrics.BAD_INPUT.labels("line_too_long").inc()
        if frag.problem == "bad_format":
            self.unparsed(tf, start, end, data, truncated, observed, now)
            return
        message = frag.message
        if type(message) is str:  # docker: pieces are joined as bytes, whatever each piece was
            message = message.encode("utf-8", "surrogatepass")
        line = tf.partial.add(start, end, frag.time, frag.stream, frag.partial, message, truncated)
        if line is not None:
            self.complete(tf, line, observed, now)

    def unparsed(
        self, tf: TrackedFile, start: int, end: int, data: bytes, truncated: bool, observed: int, now: float
    ) -> None:
        """A line not in its file's format (garbage in a CRI or docker file): what is in progress in the
        file ends first (sent as it is; a partial line flagged unfinished), then the line goes alone, as
        text, flagged ``logtide.parse_error``. It never joins a partial line or a multi-line record."""
        for line in tf.partial.expired(everything=True):
            self.complete(tf, line, observed, now)
        for rec in tf.multiline.expired(everything=True):
            self.emit(tf, rec, observed)
        self.emit(
            tf,
            Record(start, end, None, "stdout", self._text(data), 1, truncated, False),
            observed,
            problem="bad_format",
        )

    @staticmethod
    def _text(message: bytes) -> str:
        try:
            return message.decode()
        except UnicodeDecodeError:
            metrics.BAD_INPUT.labels("invalid_utf8").inc()
            return message.decode("utf-8", "replace")

    def complete(self, tf: TrackedFile, line: Line, observed: int, now: float | None = None) -> None:
        message = line.message
        text = self._text(message) if isinstance(message, bytes) else message
        if line.pieces > 1:
            metrics.PARTIAL_MERGES.inc()
        if line.unfinished:
            metrics.BAD_INPUT.labels("partial_unfinished").inc()
        rec = tf.multiline.add(line.start, line.end, line.time, line.stream, text, line.truncated, line.unfinished, now)
        if rec is not None:
            self.emit(tf, rec, observed)

    def emit(self, tf: TrackedFile, rec: Record, observed: int, problem: str | None = None) -> None:
        start, _end, time_ns, stream, text, lines, truncated, unfinished = rec
        if self._rate_limit is not None:
            bucket = self.buckets.get(tf.key)
            if bucket is None:
                bucket = self.buckets[tf.key] = TokenBucket(self._rate_limit, self.config.rate_limit.burst)
            if not bucket.allow(time.monotonic()):
                metrics.DROPPED.labels("rate_limited").inc()
                return
        if len(text) > self._max_event_bytes:
            text = text[: self._max_event_bytes]
            truncated = True
            metrics.BAD_INPUT.labels("record_too_long").inc()
        if lines == 1 and not truncated and not unfinished and problem is None:
            template = tf.templates[stream]
            if _NATIVE is not None:
                _eid, value = _NATIVE.record(
                    tf.id_prefix, start, time_ns, observed, time.time_ns(), text, template.tail
                )
            else:
                value = template.record(tf.event_id(start), time_ns, observed, time.time_ns(), text)
        else:
            eid = tf.event_id(start)
            attributes = dict(tf.attributes[stream])
            if lines > 1:
                attributes["log.lines"] = lines
                metrics.MULTILINE_MERGES.inc()
            if truncated:
                attributes["logtide.truncated"] = True
            if unfinished:
                attributes["logtide.partial_unfinished"] = True
            if problem is not None:
                attributes["logtide.parse_error"] = problem
            event = envelope.new_event(
                id=eid,
                body=text,
                source=self.source,
                time=time_ns,
                observed_time=observed,
                attributes=attributes,
                resource=tf.resource,
            )
            event["ingest_time"] = time.time_ns()
            value = envelope.encode(event)
        sender = self.sender
        sender.send(value, tf.key)
        tf.last_sent = sender.accepted  # (a record waiting for room in the client's buffer counts too)

    @staticmethod
    def _shrink(value: bytes) -> bytes:
        """Kafka refused a record as too large (JSON escaping grew it past the limit): cut the body
        to a quarter and flag it; the id stays, so it is still the same event."""
        metrics.BAD_INPUT.labels("record_too_long").inc()
        event = envelope.decode(value, check_depth=False)
        body = event["body"]
        if isinstance(body, str) and len(body) > 16:
            event["body"] = body[: len(body) // 4]
        event["attributes"] = {**event["attributes"], "logtide.truncated": True}
        return envelope.encode(event)

    def _update_queue_metrics(self) -> None:
        # Per-record counters are kept as ints and added here, once per turn (prometheus' inc costs).
        sender = self.sender
        if sender.sent != self._sent_counted:
            metrics.RECORDS_SENT.inc(sender.sent - self._sent_counted)
            self._sent_counted = sender.sent
        if sender.failures != self._failures_counted:  # each failure is sent again
            metrics.PRODUCE_RETRIES.inc(sender.failures - self._failures_counted)
            self._failures_counted = sender.failures
        acked = sender.acked
        if acked > self._acked_counted:
            metrics.RECORDS_PRODUCED.inc(acked - self._acked_counted)
            self._acked_counted = acked
            self.last_ack = time.monotonic()
        in_flight = sender.in_flight
        metrics.QUEUE_DEPTH.set(in_flight)
        metrics.QUEUE_BYTES.set(self.queue_bytes(in_flight))

    # --- timeouts, rotation, truncation -----------------------------------------------------------------

    def expire(self, now: float) -> None:
        """Send partial lines and multi-line records that waited too long for their next piece; only
        for files read to their end (a pause of ours, e.g. backpressure, must not split records)."""
        observed = time.time_ns()
        for tf in self.files.values():
            if tf.failed or not tf.buffered():
                continue
            try:
                if tf.tailer.position < tf.tailer.size():
                    continue
            except OSError:
                pass
            try:
                for line in tf.partial.expired(now):
                    self.complete(tf, line, observed)
                for rec in tf.multiline.expired(now):
                    self.emit(tf, rec, observed)
            except Exception as exc:  # noqa: BLE001 - as in read_round
                self.fail_file(tf, exc)

    def fail_file(self, tf: TrackedFile, exc: Exception) -> None:
        """An unexpected error in one file's lines (a bug): that file stops here, its checkpoint stays
        at the last one written (lines read but maybe not sent are read again after a restart), and the
        other files go on."""
        tf.failed = f"{type(exc).__name__}: {exc}"
        metrics.FILES_FAILED.inc()
        _log.exception(
            "error processing a log file; it is not read further until the agent restarts, from its last checkpoint",
            extra={"path": tf.path, "checkpoint": tf.checkpointed},
        )

    def flush_file(self, tf: TrackedFile) -> None:
        """Send everything buffered for a file (it was finished or truncated)."""
        observed = time.time_ns()
        try:
            tail = tf.tailer.pending_tail()
            if tail is not None:
                self.process(tf, tail, tail.end, [])
            for line in tf.partial.expired(everything=True):
                self.complete(tf, line, observed)
            for rec in tf.multiline.expired(everything=True):
                self.emit(tf, rec, observed)
        except Exception as exc:  # noqa: BLE001 - as in read_round
            self.fail_file(tf, exc)

    def truncated(self, tf: TrackedFile) -> None:
        """copytruncate: what was buffered goes out under the old generation; reading restarts at 0."""
        metrics.ROTATIONS.labels("truncate").inc()
        self.flush_file(tf)
        fp, n = fingerprint(tf.fd, self.config.read.fingerprint_bytes)
        old = tf.identity
        tf.set_identity(FileIdentity(old.dev, old.ino, fp, n, old.generation + 1))
        tf.tailer.reset(0)
        self.checkpoints.put(tf.inode_key, tf.state(0))
        tf.checkpointed = 0
        _log.info("file truncated; reading from the start", extra={"path": tf.path, "generation": old.generation + 1})

    def finish_quiet_files(self, now: float) -> None:
        wait = self.config.read.rotate_wait_seconds
        for key, tf in list(self.files.items()):
            if tf.detached is None or now - tf.last_data < wait or tf.failed:
                continue  # (a failed file keeps its checkpoint, and its fd, until the restart)
            if not tf.finishing and tf.excluded:
                tf.finishing = True  # an excluded container's rotated file is not read
            if not tf.finishing:
                try:
                    if tf.tailer.position < tf.tailer.size():
                        continue  # not read to its end yet (backpressure): read_round goes on
                except OSError:
                    pass
                self.flush_file(tf)
                if tf.failed:
                    continue  # its checkpoint stays: read again after a restart
                tf.finishing = True
            if tf.last_sent <= self.drained:  # everything sent of it was acknowledged
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
            if tf.failed:
                continue
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
                _log.error(
                    "cannot write checkpoints; reading goes on, lines after the last good checkpoint "
                    "will be sent again after a restart",
                    extra={"error": str(exc)},
                )
            self.checkpoint_failing = True
            return False
        if self.checkpoint_failing:
            _log.warning("checkpoints written again")
            self.checkpoint_failing = False
        return True

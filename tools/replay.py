"""`logtide replay`: re-produce the records of a time window of one topic into another topic.

The window's start offsets come from offsets_for_times on every partition and its end is fixed when
the job starts (exact end offsets), so records arriving meanwhile are not chased. Each record's own
timestamp is checked too: some brokers (the embedded one) answer offsets_for_times per batch, not
per record. Timestamps only roughly grow with offsets (producers' clocks differ), so a partition is
closed at the first record stamped ``--grace`` past ``--to``, not at the first one past ``--to``: an
in-window record written a little later by a producer whose clock is behind is still copied; only
records in [--from, --to) are ever copied. Key, value and headers are kept (so event ids are kept); a
record keeps its partition number when both topics have the same partition count, else the key chooses.

A job is named by its topics, its window as typed, the cluster id and both topics' ids (a topic
deleted and created again gets a new id), so the same command against another cluster, or after a
topic was recreated, is a new job, never "already done".

Resumable: the job's progress per partition is written to a small state file after each batch is
acknowledged by Kafka (in order; a few batches are in flight at once). Ctrl-C (or SIGTERM) waits for
the batches in flight and saves; running the same command again continues where it stopped. A kill -9
replays at most the unsaved batches in flight again (at-least-once: sinks drop duplicates by event id).
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections import deque

from logtide.cli import UsageError
from logtide.envelope import make_id
from logtide.role import install_signal_handlers
from logtide.topics import RangeReader
from logtide.timeutil import parse_duration
from logtide.transport import TopicPartition, TransportError

from logtide.tools.common import (
    add_kafka_arguments,
    connect_args,
    format_ms,
    is_relative,
    parse_time_ms,
    print_json,
    state_dir,
    topic_partitions,
    write_json_atomic,
)
from logtide.tools.progress import progress_bar

EPILOG = """examples:
  logtide replay --topic logtide.raw.k8s --from 2024-05-01T12:00:00Z --to 2024-05-01T12:30:00Z \\
      --to-topic logtide.raw.k8s.replay
  logtide replay --topic logtide.route.audit --from 2h --to-topic audit.backfill --create-topic --rate 5000

Interrupt with Ctrl-C at any time; run the same command again to resume (--restart starts over).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="re-produce a time window of a topic into another topic (resumable)",
        description="Re-produce the records of TOPIC whose timestamps fall in [--from, --to) into "
        "--to-topic, keeping key, value and headers. Safe to interrupt and resume.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--topic", required=True, help="topic to read")
    p.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="TIME",
        help="window start: ISO 8601, Unix s/ms, now, or a time ago: 2h, 30m ago (or --from=-2h)",
    )
    p.add_argument("--to", dest="end", metavar="TIME", help="window end, exclusive (default: the end of the topic now)")
    p.add_argument(
        "--to-topic", required=True, metavar="TOPIC", help="topic to write (must exist, unless --create-topic)"
    )
    p.add_argument(
        "--create-topic", action="store_true", help="create --to-topic when missing, with as many partitions as --topic"
    )
    p.add_argument(
        "--grace",
        default="60s",
        metavar="DURATION",
        help="read this far past --to before closing a partition, for in-window records written "
        "late by producers with slow clocks (default 60s; records past --to are never copied)",
    )
    p.add_argument(
        "--state",
        metavar="FILE",
        help="progress file (default: <state dir>/replay-<job>.json; state dir: $LOGTIDE_STATE_DIR, "
        "else $XDG_STATE_HOME/logtide, else /var/lib/logtide if writable, else "
        "~/.local/state/logtide)",
    )
    p.add_argument("--restart", action="store_true", help="ignore saved progress and start the window over")
    p.add_argument("--rate", type=float, metavar="N", help="at most N records per second (spare the cluster)")
    p.add_argument("--batch", type=int, default=1000, metavar="N", help="records per acknowledged batch (default 1000)")
    p.add_argument("--json", action="store_true", help="print the final summary as JSON")
    add_kafka_arguments(p)
    p.set_defaults(func=run)


def job_id(identity: dict) -> str:
    return make_id(
        "replay",
        identity["topic"],
        identity["from"],
        identity["to"],
        identity["to_topic"],
        identity.get("cluster"),
        identity.get("topic_id"),
        identity.get("to_topic_id"),
    )[:12]


def identity_of(args: argparse.Namespace, admin) -> dict:
    """What names a job: the topics and the window *as typed* (re-running a command with a relative
    window, --from 2h, resumes it instead of starting a window two hours before now), the cluster and
    both topics' ids (another cluster, or a recreated topic, is another job)."""
    ids = admin.topic_ids([args.topic, args.to_topic])
    return {
        "topic": args.topic,
        "to_topic": args.to_topic,
        "from": args.start,
        "to": args.end,
        "cluster": admin.cluster_id(),
        "topic_id": ids.get(args.topic),
        "to_topic_id": ids.get(args.to_topic),
    }


class ReplayJob:
    """One replay window and where each partition of it stands; saved after every acked batch."""

    def __init__(self, path: str, state: dict):
        self.path = path
        self.state = state
        self.copied_now = 0  # by this run (state["copied"]: by every run of the job)

    @classmethod
    def plan(cls, path: str, consumer, identity: dict, start_ms: int, end_ms: int | None) -> ReplayJob:
        from logtide.topics import exact_end_offsets

        topic = identity["topic"]
        parts = topic_partitions(consumer, topic)
        ends = exact_end_offsets(consumer, parts)
        found = consumer.offsets_for_times({tp: start_ms for tp in parts})
        partitions = {}
        for tp in parts:
            first = found.get(tp)
            end = ends.get(tp, 0)
            start = end if first is None else min(first, end)
            partitions[str(tp.partition)] = {"next": start, "end": end}
        state = {
            "job": {**identity, "from_ms": start_ms, "to_ms": end_ms},
            "partitions": partitions,
            "copied": 0,
            "skipped": 0,
            "done": False,
            "started": time.time(),
            "updated": time.time(),
        }
        job = cls(path, state)
        job.save()
        return job

    @classmethod
    def load(cls, path: str) -> ReplayJob | None:
        import orjson

        try:
            with open(path, "rb") as f:
                return cls(path, orjson.loads(f.read()))
        except (FileNotFoundError, NotADirectoryError):
            return None  # a new job (an unusable location is reported when the plan is saved)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--state {path}: cannot read replay state: {exc} (use --restart to start over)") from None

    def save(self) -> None:
        self.state["updated"] = time.time()
        try:
            write_json_atomic(self.path, self.state)
        except OSError as exc:
            raise UsageError(
                f"--state {self.path}: cannot write the progress file ({exc.strerror}); pass "
                "--state FILE in a writable directory or set LOGTIDE_STATE_DIR"
            ) from None

    def ranges(self) -> dict[TopicPartition, tuple[int, int]]:
        topic = self.state["job"]["topic"]
        return {TopicPartition(topic, int(p)): (v["next"], v["end"]) for p, v in self.state["partitions"].items()}

    def remaining(self) -> int:
        return sum(max(0, v["end"] - v["next"]) for v in self.state["partitions"].values())

    def advance(self, positions: dict[TopicPartition, int], copied: int, skipped: int) -> None:
        for tp, nxt in positions.items():
            self.state["partitions"][str(tp.partition)]["next"] = nxt
        self.state["copied"] += copied
        self.state["skipped"] += skipped
        self.copied_now += copied


def run(args: argparse.Namespace) -> int:
    start_ms = parse_time_ms(args.start)
    end_ms = parse_time_ms(args.end) if args.end else None
    if end_ms is not None and end_ms <= start_ms:
        raise UsageError(f"--to ({format_ms(end_ms)}) must be after --from ({format_ms(start_ms)})")
    if args.to_topic == args.topic:
        raise UsageError("--to-topic must differ from --topic (replaying a topic into itself doubles it)")
    if args.batch < 1:
        raise UsageError("--batch must be at least 1")
    try:
        grace_ms = int(parse_duration(args.grace) * 1000)
    except ValueError as exc:
        raise UsageError(f"--grace: {exc}") from None
    transport = connect_args(args)
    admin = transport.admin()
    try:
        _destination(admin, args)
        identity = identity_of(args, admin)
    finally:
        admin.close()
    path = args.state or os.path.join(state_dir(), f"replay-{job_id(identity)}.json")
    consumer = transport.consumer(None)
    try:
        dest_parts = consumer.partitions_for(args.to_topic)
        job = None if args.restart else ReplayJob.load(path)
        if job is not None and {k: job.state["job"].get(k) for k in identity} != identity:
            raise UsageError(
                f"--state {path} belongs to another replay ({_differs(job.state['job'], identity)}); "
                "pass another --state or --restart"
            )
        if job is not None and job.state["done"] and (is_relative(args.start) or is_relative(args.end)):
            job = None  # a finished "last 2 hours" job: this run means the 2 hours before now
        resumed = job is not None
        if job is None:
            job = ReplayJob.plan(path, consumer, identity, start_ms, end_ms)
        if job.state["done"]:
            return _report(args, job, path, resumed=True, interrupted=False, elapsed=0.0)
        same_layout = len(dest_parts) == len(job.state["partitions"])
        stop = threading.Event()
        install_signal_handlers(stop)
        t0 = time.monotonic()
        interrupted = _copy(transport, consumer, job, args, same_layout, stop, grace_ms)
    finally:
        consumer.close()
    return _report(args, job, path, resumed=resumed, interrupted=interrupted, elapsed=time.monotonic() - t0)


def _destination(admin, args) -> None:
    """--to-topic exists afterwards (created with --create-topic), or a UsageError says how to create it."""
    topics = admin.list_topics()
    if args.topic not in topics:
        raise UsageError(f"no topic {args.topic!r} on this cluster")
    if args.to_topic in topics:
        return
    n = topics[args.topic]
    if not args.create_topic:
        raise UsageError(
            f"destination topic {args.to_topic!r} does not exist: pass --create-topic to create it "
            f"with {n} partitions like {args.topic}"
        )
    from logtide.transport import TopicSpec

    admin.create_topics([TopicSpec(args.to_topic, n)])


def _differs(saved: dict, identity: dict) -> str:
    return ", ".join(f"{k} {saved.get(k)!r} here {v!r}" for k, v in identity.items() if saved.get(k) != v)


class _Batch:
    """One read batch on its way to Kafka: saved as progress once all its records are acked."""

    __slots__ = ("positions", "copied", "skipped", "read", "pending")

    def __init__(self, positions: dict[TopicPartition, int], copied: int, skipped: int, read: int):
        self.positions, self.copied, self.skipped, self.read = positions, copied, skipped, read
        self.pending = copied

    def delivered(self, err, rec) -> None:
        self.pending -= 1


#: Batches produced but not all acked yet: reading goes on while Kafka acks (throughput), and
#: progress is saved strictly in order (a batch only after every earlier one).
MAX_IN_FLIGHT = 4


def _copy(transport, consumer, job: ReplayJob, args, same_layout: bool, stop: threading.Event, grace_ms: int) -> bool:
    """Copy batch by batch; return True when stopped before the end of the window."""
    start_ms, end_ms = job.state["job"]["from_ms"], job.state["job"]["to_ms"]
    to_topic = job.state["job"]["to_topic"]
    producer = transport.producer(linger_ms=20)
    errors: list[Exception] = []
    in_flight: deque[_Batch] = deque()

    def settle(bar, wait: bool) -> None:
        """Save the progress of the acked batches at the head of the line (all of them when wait)."""
        deadline = time.monotonic() + 60
        while in_flight and (wait or len(in_flight) > MAX_IN_FLIGHT or in_flight[0].pending <= 0):
            head = in_flight[0]
            if head.pending > 0:
                if time.monotonic() > deadline:
                    raise TransportError(
                        "replayed records not acknowledged by Kafka within 60 s; progress saved, run again to resume"
                    )
                producer.poll(0.05)
                if errors:
                    raise TransportError(
                        f"Kafka refused replayed records: {errors[0]}; progress saved, run again to resume"
                    )
                continue
            in_flight.popleft()
            job.advance(head.positions, head.copied, head.skipped)
            job.save()
            bar.advance(head.read, copied=job.state["copied"])

    reader = RangeReader(consumer, job.ranges(), max_batch=args.batch)
    copied_total = 0
    t0 = time.monotonic()
    try:
        with progress_bar(f"replay {job.state['job']['topic']} → {to_topic}", total=job.remaining()) as bar:
            for records in reader.batches():
                positions: dict[TopicPartition, int] = {}
                closed: set[TopicPartition] = set()
                selected = []
                skipped = 0
                for rec in records:
                    tp = rec.tp
                    if tp in closed:
                        continue
                    ts = rec.timestamp
                    if ts is not None and end_ms is not None and ts >= end_ms + grace_ms:
                        # Past the window and its grace: this partition is done (timestamps grow
                        # with offsets within a partition, up to producers' clock differences).
                        positions[tp] = job.state["partitions"][str(rec.partition)]["end"]
                        closed.add(tp)
                        reader.finish(tp)
                        continue
                    positions[tp] = rec.offset + 1
                    if ts is not None and (ts < start_ms or (end_ms is not None and ts >= end_ms)):
                        skipped += 1
                        continue
                    selected.append(rec)
                batch = _Batch(positions, len(selected), skipped, len(records))

                def on_delivery(err, rec, _b=batch):
                    _b.delivered(err, rec)
                    if err is not None:
                        errors.append(err)

                for rec in selected:
                    producer.produce(
                        to_topic,
                        rec.value,
                        key=rec.key,
                        headers=rec.headers,
                        partition=rec.partition if same_layout else None,
                        on_delivery=on_delivery,
                        timestamp_ms=rec.timestamp,
                    )
                in_flight.append(batch)
                producer.poll(0)
                settle(bar, wait=False)
                copied_total += batch.copied
                if args.rate:
                    ahead = copied_total / args.rate - (time.monotonic() - t0)
                    if ahead > 0:
                        stop.wait(ahead)
                if stop.is_set():
                    producer.flush(60)
                    settle(bar, wait=True)
                    if job.remaining() > 0:
                        return True
                    break
            producer.flush(60)
            settle(bar, wait=True)
    finally:
        producer.close()
    for p in job.state["partitions"].values():
        p["next"] = max(p["next"], p["end"])
    job.state["done"] = True
    job.save()
    return False


def _report(args, job: ReplayJob, path: str, *, resumed: bool, interrupted: bool, elapsed: float) -> int:
    st = job.state
    already = resumed and st["done"] and job.copied_now == 0 and elapsed == 0.0
    summary = {
        "topic": st["job"]["topic"],
        "to_topic": st["job"]["to_topic"],
        "from": format_ms(st["job"]["from_ms"]),
        "to": format_ms(st["job"]["to_ms"]),
        "copied": job.copied_now,
        "copied_total": st["copied"],
        "skipped_outside_window": st["skipped"],
        "done": st["done"],
        "already_complete": already,
        "remaining_at_most": job.remaining(),
        "resumed": resumed,
        "cluster": st["job"].get("cluster"),
        "state": path,
        "seconds": round(elapsed, 3),
    }
    if args.json:
        print_json(summary)
    elif interrupted:
        print(
            f"interrupted: {job.copied_now} records replayed by this run ({st['copied']} by the job so far), at "
            f"most {job.remaining()} left; run the same command again to resume (state: {path})"
        )
    elif already:
        print(
            f"already complete: this replay finished earlier ({st['copied']} records copied then), 0 copied "
            f"by this run (state: {path}; --restart to replay again)"
        )
    else:
        print(
            f"replayed {job.copied_now} records from {st['job']['topic']} to {st['job']['to_topic']} "
            f"(window {summary['from']} .. {summary['to']}; {st['skipped']} outside it skipped"
            + (f"; {st['copied']} by the job in all runs" if st["copied"] != job.copied_now else "")
            + ")"
        )
    return 130 if interrupted else 0

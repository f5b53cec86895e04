"""`logtide tap TOPIC`: a live, filtered view of the events flowing through a topic (like `vector tap`).

Reads with manual assignment (no consumer group, nothing committed: tapping never disturbs a
pipeline), starting at the end of every partition unless --from says otherwise. Filters with the
condition language of routes and alert rules. Records that are not envelopes are shown as such
(``--where`` cannot match them).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

from logtide import envelope
from logtide.cli import UsageError
from logtide.condition import ConditionError, compile_condition
from logtide.role import install_signal_handlers
from logtide.topics import exact_end_offsets
from logtide.transport import TopicPartition

from logtide.tools.common import (
    add_kafka_arguments,
    connect_args,
    console,
    format_ms,
    parse_time_ms,
    print_json,
    topic_partitions,
)

EPILOG = """examples:
  logtide tap logtide.route.monitoring --where 'severity_number >= 17'
  logtide tap logtide.raw.k8s --where 'resource["k8s.namespace.name"] == "shop" and body contains "timeout"' --json
  logtide tap logtide.route.audit --from -10m --count 20 --sample 10
"""

_SEVERITY_STYLE = ((21, "bold white on red"), (17, "bold red"), (13, "yellow"), (9, "green"), (1, "dim"))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tap",
        help="live, filtered view of the events in a topic",
        description="Show the events arriving in TOPIC, filtered by a condition, pretty or as JSON "
        "lines. Nothing is committed: tapping never disturbs a consumer group.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument("--where", metavar="CONDITION", help="condition language, e.g. 'severity_number >= 17'")
    p.add_argument("--sample", type=int, default=1, metavar="N", help="show one matching event in N (default: all)")
    p.add_argument(
        "--from",
        dest="start",
        metavar="TIME",
        help="start at this time ('beginning', ISO 8601, -10m …) instead of the end (live)",
    )
    p.add_argument("--count", type=int, metavar="N", help="stop after showing N events")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--json", action="store_true", help="one JSON object per line (the envelope, plus _kafka)")
    add_kafka_arguments(p)
    p.set_defaults(func=run)


def _severity_style(n: int) -> str:
    for floor, style in _SEVERITY_STYLE:
        if n >= floor:
            return style
    return ""


def _start_offsets(consumer, parts: list[TopicPartition], start: str | None) -> dict[TopicPartition, int]:
    if start is None:
        return exact_end_offsets(consumer, parts)
    if start.strip().lower() in ("beginning", "earliest"):
        return consumer.beginning_offsets(parts)
    ms = parse_time_ms(start)
    found = consumer.offsets_for_times({tp: ms for tp in parts})
    ends = exact_end_offsets(consumer, parts)
    return {tp: (found.get(tp) if found.get(tp) is not None else ends[tp]) for tp in parts}


def run(args: argparse.Namespace) -> int:
    if args.sample < 1:
        raise UsageError("--sample must be at least 1")
    try:
        predicate = compile_condition(args.where) if args.where else None
    except ConditionError as exc:
        raise UsageError(f"--where: {exc}") from None
    min_ms = parse_time_ms(args.start) if args.start and args.start.lower() not in ("beginning", "earliest") else None
    transport = connect_args(args)
    stop = threading.Event()
    install_signal_handlers(stop)
    out = console()
    consumer = transport.consumer(None)
    read = matched = shown = undecodable = 0
    deadline = time.monotonic() + args.duration if args.duration else None
    try:
        parts = topic_partitions(consumer, args.topic)
        offsets = _start_offsets(consumer, parts, args.start)
        consumer.assign(parts)
        for tp, off in offsets.items():
            consumer.seek(tp, off)
        print(
            f"tapping {args.topic} ({len(parts)} partitions)"
            + (f" where {args.where}" if args.where else "")
            + "; Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        while not stop.is_set():
            if deadline and time.monotonic() >= deadline:
                break
            for rec in consumer.poll_batch(500, 0.3):
                if min_ms is not None and rec.timestamp is not None and rec.timestamp < min_ms:
                    continue  # offsets_for_times can be per batch on some brokers
                read += 1
                try:
                    event = envelope.decode(rec.value or b"")
                except envelope.EnvelopeError as exc:
                    undecodable += 1
                    if predicate is None:
                        _show_raw(out, args.json, rec, exc)
                        shown += 1
                    continue
                if predicate is not None and not predicate(event):
                    continue
                matched += 1
                if (matched - 1) % args.sample:
                    continue
                _show(out, args.json, rec, event)
                shown += 1
                if args.count and shown >= args.count:
                    stop.set()
                    break
    except BrokenPipeError:
        # The reader went away (`| head`): a normal way to stop a tap.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        consumer.close()
    print(f"read {read}, matched {matched}, shown {shown}, not envelopes {undecodable}", file=sys.stderr)
    return 0


def _show(out, as_json: bool, rec, event: dict) -> None:
    if as_json:
        print_json(
            {
                **event,
                "_kafka": {
                    "topic": rec.topic,
                    "partition": rec.partition,
                    "offset": rec.offset,
                    "key": rec.key.decode("utf-8", "replace") if rec.key else None,
                },
            }
        )
        return
    from rich.text import Text

    res = event.get("resource") or {}
    where = res.get("service.name") or res.get("k8s.pod.name") or res.get("aws.log.group.names") or ""
    if isinstance(where, list):
        where = ",".join(map(str, where))
    t = event.get("time") or event.get("observed_time")
    body = event.get("body")
    line = Text()
    line.append(format_ms(t // 1_000_000 if isinstance(t, int) else None), style="dim")
    line.append(" ")
    line.append(
        f"{(event.get('severity_text') or envelope.severity_text(event.get('severity_number', 0))):<5}",
        style=_severity_style(event.get("severity_number", 0)),
    )
    line.append(f" {event.get('source', '')}", style="cyan")
    if where:
        line.append(f" {where}", style="blue")
    line.append(" ")
    line.append(body if isinstance(body, str) else envelope.encode(body).decode())
    if event.get("attributes"):
        line.append(" " + envelope.encode(event["attributes"]).decode(), style="dim")
    out.print(line, soft_wrap=True, highlight=False)


def _show_raw(out, as_json: bool, rec, exc: Exception) -> None:
    value = (rec.value or b"").decode("utf-8", "replace")
    if as_json:
        print_json(
            {
                "_not_envelope": str(exc),
                "value": value[:2000],
                "_kafka": {"topic": rec.topic, "partition": rec.partition, "offset": rec.offset},
            }
        )
    else:
        from rich.text import Text

        out.print(
            Text(f"[{rec.partition}@{rec.offset} not an envelope: {exc}] {value[:500]}", style="magenta"),
            soft_wrap=True,
            highlight=False,
        )

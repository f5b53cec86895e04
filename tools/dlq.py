"""`logtide dlq list|show|replay|purge`: look into the dead letter queue, by reason, send records back
or give up on them.

Reasons (stage, error class, message with numbers blanked) come from the ``logtide.error.*`` headers
that ``logtide.dlq.DeadLetters`` writes; see tools/dlq_reasons.py. Every command reads the DLQ up to
its end at the start, in one streaming pass (``replay``: one pass to check and count, one to send),
so memory does not grow with the DLQ.

``replay`` re-produces the selected records to the topic they came from (``logtide.error.topic``),
to their original partition when it still exists, with their original key, value (so the event id is
kept) and headers minus the DLQ's own (``logtide.error.*`` and ``logtide.id``). Each chunk is first claimed in the replay ledger
(tools/dlq_ledger.py: an append-only one-partition topic whose order decides), then sent, then
recorded as replayed, so operators replaying at once (other reasons, or both ``--all``) never send a
record twice, and a later ``replay`` does not send it again (``--again`` does). ``purge`` records
offsets as given up: they no longer count as pending and are never replayed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from logtide import envelope
from logtide.cli import UsageError
from logtide.dlq import error_info, original_headers
from logtide.topics import DLQ, RangeReader
from logtide.transport import Record, TopicPartition, TransportError

from logtide.tools.common import (
    add_kafka_arguments,
    connect_args,
    console,
    format_ms,
    headers_dict,
    print_json,
    text,
    whole_topic_ranges,
)
from logtide.tools.dlq_ledger import LedgerError, ReplayLedger
from logtide.tools.dlq_reasons import Reasons, Selection, error_ms, reason_id, reason_of  # noqa: F401 (reason_*: API)

EPILOG = """examples:
  logtide dlq list                                  reasons, with counts, origins and first/last time
  logtide dlq show 3f9a1c2e --limit 3               sample records of one reason, with their error headers
  logtide dlq replay 3f9a1c2e                       after the fix: send that reason's records back
  logtide dlq replay --all --origin logtide.raw.k8s --dry-run
  logtide dlq purge 3f9a1c2e                        give up on a reason: never replayed, no longer pending
"""

#: Records sent back per acknowledged chunk (then written to the ledger).
REPLAY_CHUNK = 5000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dlq",
        help="dead letter queue: list reasons, show samples, replay after a fix",
        description="Inspect the dead letter queue grouped by reason, and replay records to their origin topic.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=lambda args: p.print_help() or 2)
    actions = p.add_subparsers(dest="dlq_command", metavar="ACTION")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--topic", default=DLQ, help=f"dead letter topic (default {DLQ})")
        q.add_argument("--json", action="store_true", help="print JSON")
        add_kafka_arguments(q)

    def selection(q: argparse.ArgumentParser) -> None:
        q.add_argument("reasons", nargs="*", metavar="REASON", help="reason ids from `logtide dlq list`")
        q.add_argument("--origin", metavar="TOPIC", help="only records that came from this topic")
        q.add_argument("--component", help="only records dead-lettered by this component")
        q.add_argument("--offsets", metavar="SPEC", help="only these DLQ offsets, e.g. 3,7,10-20")

    q = actions.add_parser(
        "list", help="reasons with counts", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    common(q)
    q.set_defaults(func=cmd_list)

    q = actions.add_parser(
        "show",
        help="sample records of some reasons, with their error headers",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common(q)
    selection(q)
    q.add_argument("--limit", type=int, default=5, metavar="N", help="samples per reason (default 5)")
    q.add_argument("--full", action="store_true", help="do not shorten values")
    q.set_defaults(func=cmd_show)

    q = actions.add_parser(
        "replay",
        help="re-produce selected records to their origin topic",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common(q)
    selection(q)
    q.add_argument("--all", action="store_true", help="every record (still narrowed by --origin/--component/--offsets)")
    q.add_argument("--again", action="store_true", help="also records that were replayed before")
    q.add_argument("--dry-run", action="store_true", help="say what would be replayed, send nothing")
    q.set_defaults(func=cmd_replay)

    q = actions.add_parser(
        "purge",
        help="give up on selected records: never replayed, no longer pending",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common(q)
    selection(q)
    q.add_argument("--all", action="store_true", help="every record (still narrowed by --origin/--component/--offsets)")
    q.add_argument("--dry-run", action="store_true", help="say what would be purged, record nothing")
    q.set_defaults(func=cmd_purge)


# --- reading ----------------------------------------------------------------------------------------


def dlq_ranges(transport, topic: str) -> dict[TopicPartition, tuple[int, int]]:
    """The DLQ as it is now: [beginning, exact end) of each partition; later records are not read."""
    consumer = transport.consumer(None)
    try:
        if not consumer.partitions_for(topic):
            raise UsageError(f"no dead letter topic {topic!r} on this cluster (nothing was dead-lettered yet?)")
        return whole_topic_ranges(consumer, topic)
    finally:
        consumer.close()


def scan(transport, ranges: dict[TopicPartition, tuple[int, int]], visit: Callable[[Record], None]) -> None:
    consumer = transport.consumer(None)
    try:
        for batch in RangeReader(consumer, ranges).batches():
            for rec in batch:
                visit(rec)
    except TimeoutError as exc:
        raise TransportError(f"reading the DLQ: {exc}") from None
    finally:
        consumer.close()


# --- list / show ------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    transport = connect_args(args)
    ranges = dlq_ranges(transport, args.topic)
    ledger = open_ledger(transport, args.topic)
    reasons = Reasons(replayed=ledger.was_replayed, purged=ledger.was_purged)
    try:
        scan(transport, ranges, reasons.add)
    finally:
        ledger.close()
    rows = [r.summary() for r in reasons.ranked()]
    if args.json:
        print_json({"topic": args.topic, "records": reasons.records, "reasons": rows})
        return 0
    if not rows:
        print(f"{args.topic} is empty")
        return 0
    from rich.table import Table

    table = Table(title=f"{args.topic}: {reasons.records} records, {len(rows)} reasons", title_justify="left")
    for col in (
        "REASON",
        "COUNT",
        "REPLAYED",
        "PURGED",
        "STAGE",
        "CLASS",
        "ORIGIN",
        "COMPONENT",
        "FIRST",
        "LAST",
        "MESSAGE",
    ):
        table.add_column(col, overflow="fold", justify="right" if col in ("COUNT", "REPLAYED", "PURGED") else "left")
    for r in rows:
        table.add_row(
            r["reason"],
            str(r["count"]),
            str(r["replayed"]),
            str(r["purged"]),
            r["stage"],
            r["class"],
            ", ".join(f"{k} ({v})" for k, v in r["origins"].items()),
            ", ".join(r["components"]),
            _short(r["first"]),
            _short(r["last"]),
            r["example"][:120],
        )
    console().print(table)
    return 0


def _short(iso: str) -> str:
    return iso[:19].replace("T", " ")


def describe_record(rec: Record, full: bool) -> dict:
    info = error_info(rec.headers)
    # the DLQ writes the id it read from the value's head; older dead letters have it from their record
    event_id = envelope.header_value(rec.headers, envelope.HEADER_ID) or envelope.peek_id(rec.value)
    return {
        "dlq_partition": rec.partition,
        "dlq_offset": rec.offset,
        "event_id": event_id,
        "origin": f"{info.get('topic', '?')}[{info.get('partition', '?')}]@{info.get('offset', '?')}",
        "error": info,
        "error_time": format_ms(error_ms(info, rec)),
        "key": text(rec.key),
        "value": text(rec.value, None if full else 400),
        "headers": headers_dict(original_headers(rec.headers)),
    }


def cmd_show(args: argparse.Namespace) -> int:
    transport = connect_args(args)
    reasons = Reasons(Selection.from_args(args), samples=args.limit)
    scan(transport, dlq_ranges(transport, args.topic), reasons.add)
    reasons.check_known(args.reasons)
    out = [
        {**r.summary(), "samples": [describe_record(rec, args.full) for rec in r.samples]}
        for r in reasons.ranked()
        if r.samples
    ]
    if args.json:
        print_json(out)
        return 0
    if not out:
        print("no records match")
        return 0
    for g in out:
        print(f"== reason {g['reason']}: {g['count']} records  stage={g['stage']} class={g['class']}")
        print(f"   {g['message']}")
        for s in g["samples"]:
            print(
                f"   - dlq offset {s['dlq_offset']}  from {s['origin']}  at {s['error_time']}  "
                f"by {s['error'].get('component', '?')}  id={s['event_id']}"
            )
            print(f"     error: {s['error'].get('message', '')}")
            print(f"     key:   {s['key']}")
            print(f"     value: {s['value']}")
            if s["headers"]:
                print(f"     headers: {s['headers']}")
    return 0


# --- replay -----------------------------------------------------------------------------------------


def open_ledger(transport, topic: str) -> ReplayLedger:
    try:
        return ReplayLedger(transport, topic)
    except LedgerError as exc:
        raise UsageError(f"{exc} (nothing was done: without it, records could be replayed twice)") from None


def _selected_dlq(args: argparse.Namespace, verb: str):
    """(transport, the DLQ's ranges now, the ledger) for a command that acts on selected records."""
    if not args.reasons and not args.all:
        raise UsageError(f"name the reason ids to {verb} (see `logtide dlq list`), or pass --all")
    transport = connect_args(args)
    ranges = dlq_ranges(transport, args.topic)
    return transport, ranges, open_ledger(transport, args.topic)


def cmd_replay(args: argparse.Namespace) -> int:
    transport, ranges, ledger = _selected_dlq(args, "replay")
    try:
        return _replay(args, transport, ranges, ledger)
    finally:
        ledger.close()


def _replay(args, transport, ranges, ledger: ReplayLedger) -> int:
    selection = Selection.from_args(args)
    reasons = Reasons(selection)
    targets: dict[str, int] = {}
    already = 0

    def wanted(rec: Record, info: dict[str, str]) -> bool:
        return (
            selection.matches(reason_id(reason_of(info)), info, rec)
            and not ledger.was_purged(rec)
            and (args.again or not ledger.was_replayed(rec))
        )

    def count(rec: Record) -> None:
        nonlocal already
        reasons.add(rec)
        info = error_info(rec.headers)
        if not selection.matches(reason_id(reason_of(info)), info, rec):
            return
        if ledger.was_purged(rec) or (ledger.was_replayed(rec) and not args.again):
            already += 1
            return
        origin = info.get("topic")
        if not origin:
            raise UsageError(f"DLQ record at offset {rec.offset} has no logtide.error.topic header: origin unknown")
        targets[origin] = targets.get(origin, 0) + 1

    scan(transport, ranges, count)  # pass 1: check the selection and count, send nothing
    reasons.check_known(args.reasons)
    selected = sum(targets.values())
    result = {
        "selected": selected,
        "skipped_already_replayed": already,
        "to": targets,
        "dry_run": args.dry_run,
        "replayed": 0,
        "taken_by_another_operator": 0,
    }
    if selected and not args.dry_run:
        result["replayed"], result["taken_by_another_operator"] = _send_back(
            transport, ranges, ledger, wanted, targets, args.again
        )
    if args.json:
        print_json(result)
    else:
        verb = "would replay" if args.dry_run else "replayed"
        n = selected if args.dry_run else result["replayed"]
        where = ", ".join(f"{t} ({c})" for t, c in targets.items()) or "-"
        taken = result.get("taken_by_another_operator", 0)
        print(
            f"{verb} {n} records to {where}"
            + (
                f"; {already} replayed before were skipped (--again to include them; purged ones never)"
                if already
                else ""
            )
            + (f"; {taken} were being replayed by another operator at the same time" if taken else "")
        )
    return 0


# --- purge ------------------------------------------------------------------------------------------


def cmd_purge(args: argparse.Namespace) -> int:
    transport, ranges, ledger = _selected_dlq(args, "purge")
    try:
        selection = Selection.from_args(args)
        reasons = Reasons(selection)
        chosen: list[Record] = []

        def pick(rec: Record) -> None:
            reasons.add(rec)
            info = error_info(rec.headers)
            if selection.matches(reason_id(reason_of(info)), info, rec) and not ledger.done(rec):
                chosen.append(Record(rec.topic, rec.partition, rec.offset, None, None, [], None))

        scan(transport, ranges, pick)
        reasons.check_known(args.reasons)
        if not args.dry_run:
            ledger.purge(chosen)
    finally:
        ledger.close()
    if args.json:
        print_json({"purged": 0 if args.dry_run else len(chosen), "selected": len(chosen), "dry_run": args.dry_run})
    else:
        print(
            f"{'would purge' if args.dry_run else 'purged'} {len(chosen)} records of {args.topic} "
            "(never replayed; `dlq list` counts them as PURGED)"
        )
    return 0


def _send_back(
    transport, ranges, ledger: ReplayLedger, wanted, targets: dict[str, int], again: bool = False
) -> tuple[int, int]:
    """Pass 2: produce the wanted records to their origins, chunk by claimed and acknowledged chunk;
    return (records sent, records another operator took meanwhile)."""
    consumer = transport.consumer(None)
    try:
        partitions = {t: len(consumer.partitions_for(t)) for t in targets}
    finally:
        consumer.close()
    gone = [t for t, n in partitions.items() if not n]
    if gone:
        raise UsageError(f"origin topic(s) {', '.join(gone)} do not exist any more; nothing was replayed")
    producer = transport.producer(linger_ms=20)
    chunk: list[Record] = []
    sent = 0
    taken = 0

    def settle() -> None:
        """Claim the chunk, send what this operator won, record what Kafka acknowledged."""
        nonlocal sent, taken
        if not chunk:
            return
        cid, won = ledger.claim(chunk, again=again)
        mine = [rec for rec in chunk if (rec.partition, rec.offset) in won]
        taken += len(chunk) - len(mine)
        acked: list[Record] = []
        errors: list[Exception] = []
        for rec in mine:
            info = error_info(rec.headers)
            try:
                partition = int(info.get("partition", ""))
            except ValueError:
                partition = None
            if partition is not None and not 0 <= partition < partitions[info["topic"]]:
                partition = None
            producer.produce(
                info["topic"],
                rec.value,
                key=rec.key,
                headers=original_headers(rec.headers),
                partition=partition,
                on_delivery=lambda err, _r, rec=rec: errors.append(err) if err else acked.append(rec),
            )
        left = producer.flush(60)
        ledger.finish(cid, acked)  # what was not acknowledged is freed for a later replay
        sent += len(acked)
        chunk.clear()
        if errors or left:
            raise TransportError(
                f"replay not acknowledged by Kafka: {errors[0] if errors else 'timeout'} "
                f"({sent} records replayed and recorded)"
            )

    def send(rec: Record) -> None:
        info = error_info(rec.headers)
        if not wanted(rec, info):
            return
        chunk.append(rec)
        if len(chunk) >= REPLAY_CHUNK:
            settle()

    try:
        scan(transport, ranges, send)
        settle()
    finally:
        producer.close()
    return sent, taken

"""`logtide dlq list|show|replay`: look into the dead letter queue, by reason, and send records back.

A reason is the DLQ record's stage, error class and error message with numbers blanked
(``invalid JSON: unexpected character: line N column N``), so one bug is one line however many
records it hit. Each reason gets a short stable id to select it with ``show`` and ``replay``.

``replay`` re-produces the selected records to the topic they came from (``logtide.error.topic``),
to their original partition when it still exists, with their original key, value (so the event id is
kept) and headers minus ``logtide.error.*``. Which DLQ offsets were replayed is kept in the
checkpoints topic, so a second ``replay`` does not send them again (``--again`` does).
"""

from __future__ import annotations

import argparse
import re
from collections import OrderedDict

from logtide import envelope
from logtide.checkpoint import KafkaCheckpoints
from logtide.cli import UsageError
from logtide.dlq import error_info
from logtide.envelope import make_id
from logtide.topics import DLQ
from logtide.transport import Record, TransportError

from tools.common import (
    RangeReader, add_kafka_arguments, connect_args, console, format_ms, headers_dict, print_json, text, whole_topic_ranges,
)

EPILOG = """examples:
  logtide dlq list                                  reasons, with counts, origins and first/last time
  logtide dlq show 3f9a1c2e --limit 3               sample records of one reason, with their error headers
  logtide dlq replay 3f9a1c2e                       after the fix: send that reason's records back
  logtide dlq replay --all --origin logtide.raw.k8s --dry-run
"""

_NUMBER = re.compile(r"\d+")
_HEX = re.compile(r"\b[0-9a-f]{16,}\b")


def reason_of(info: dict[str, str]) -> tuple[str, str, str]:
    message = _NUMBER.sub("N", _HEX.sub("<hex>", info.get("message", "")))
    return info.get("stage", "?"), info.get("class", "?"), message


def reason_id(reason: tuple[str, str, str]) -> str:
    return make_id("dlq-reason", *reason)[:8]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dlq", help="dead letter queue: list reasons, show samples, replay after a fix",
                       description="Inspect the dead letter queue grouped by reason, and replay records to "
                                   "their origin topic.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
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

    q = actions.add_parser("list", help="reasons with counts", epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    common(q)
    q.set_defaults(func=cmd_list)

    q = actions.add_parser("show", help="sample records of some reasons, with their error headers", epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    common(q)
    selection(q)
    q.add_argument("--limit", type=int, default=5, metavar="N", help="samples per reason (default 5)")
    q.add_argument("--full", action="store_true", help="do not shorten values")
    q.set_defaults(func=cmd_show)

    q = actions.add_parser("replay", help="re-produce selected records to their origin topic", epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    common(q)
    selection(q)
    q.add_argument("--all", action="store_true", help="every record (still narrowed by --origin/--component/--offsets)")
    q.add_argument("--again", action="store_true", help="also records that were replayed before")
    q.add_argument("--dry-run", action="store_true", help="say what would be replayed, send nothing")
    q.set_defaults(func=cmd_replay)


# --- reading ----------------------------------------------------------------------------------------

def read_dlq(transport, topic: str) -> list[Record]:
    consumer = transport.consumer(None)
    try:
        if not consumer.partitions_for(topic):
            raise UsageError(f"no dead letter topic {topic!r} on this cluster (nothing was dead-lettered yet?)")
        records: list[Record] = []
        for batch in RangeReader(consumer, whole_topic_ranges(consumer, topic)).batches():
            records.extend(batch)
    except TimeoutError as exc:
        raise TransportError(f"reading {topic}: {exc}") from None
    finally:
        consumer.close()
    records.sort(key=lambda r: (r.partition, r.offset))
    return records


def group(records: list[Record]) -> "OrderedDict[str, dict]":
    groups: OrderedDict[str, dict] = OrderedDict()
    for rec in records:
        info = error_info(rec.headers)
        reason = reason_of(info)
        rid = reason_id(reason)
        g = groups.get(rid)
        if g is None:
            g = groups[rid] = {"reason": rid, "stage": reason[0], "class": reason[1], "message": reason[2],
                               "example": info.get("message", ""), "count": 0, "origins": {}, "components": {},
                               "first_ms": None, "last_ms": None, "records": []}
        g["count"] += 1
        origin = info.get("topic", "?")
        g["origins"][origin] = g["origins"].get(origin, 0) + 1
        comp = info.get("component", "?")
        g["components"][comp] = g["components"].get(comp, 0) + 1
        ts = _error_ms(info, rec)
        if ts is not None:
            g["first_ms"] = ts if g["first_ms"] is None else min(g["first_ms"], ts)
            g["last_ms"] = ts if g["last_ms"] is None else max(g["last_ms"], ts)
        g["records"].append(rec)
    return OrderedDict(sorted(groups.items(), key=lambda kv: -kv[1]["count"]))


def _error_ms(info: dict[str, str], rec: Record) -> int | None:
    try:
        return int(info["time"]) // 1_000_000
    except (KeyError, ValueError):
        return rec.timestamp


def parse_offsets(spec: str | None) -> set[int] | None:
    if not spec:
        return None
    out: set[int] = set()
    try:
        for part in spec.split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-", 1)
                out.update(range(int(a), int(b) + 1))
            elif part:
                out.add(int(part))
    except ValueError:
        raise UsageError(f"--offsets {spec!r}: use numbers and ranges like 3,7,10-20") from None
    return out


def select(groups: "OrderedDict[str, dict]", args: argparse.Namespace, require: bool) -> list[Record]:
    unknown = [r for r in args.reasons if r not in groups]
    if unknown:
        raise UsageError(f"unknown reason id(s) {', '.join(unknown)}; see `logtide dlq list`")
    if require and not args.reasons and not args.all:
        raise UsageError("name the reason ids to replay (see `logtide dlq list`), or pass --all")
    offsets = parse_offsets(args.offsets)
    chosen = []
    for rid, g in groups.items():
        if args.reasons and rid not in args.reasons:
            continue
        for rec in g["records"]:
            info = error_info(rec.headers)
            if args.origin and info.get("topic") != args.origin:
                continue
            if args.component and info.get("component") != args.component:
                continue
            if offsets is not None and rec.offset not in offsets:
                continue
            chosen.append(rec)
    return chosen


# --- list / show ------------------------------------------------------------------------------------

def _summary(g: dict, replayed: int | None = None) -> dict:
    out = {k: v for k, v in g.items() if k != "records"}
    out["first"] = format_ms(g["first_ms"])
    out["last"] = format_ms(g["last_ms"])
    if replayed is not None:
        out["replayed"] = replayed
    return out


def cmd_list(args: argparse.Namespace) -> int:
    transport = connect_args(args)
    records = read_dlq(transport, args.topic)
    groups = group(records)
    ledger = ReplayLedger(transport, args.topic)
    rows = [_summary(g, sum(1 for r in g["records"] if ledger.done(r))) for g in groups.values()]
    if args.json:
        print_json({"topic": args.topic, "records": len(records), "reasons": rows})
        return 0
    if not rows:
        print(f"{args.topic} is empty")
        return 0
    from rich.table import Table
    table = Table(title=f"{args.topic}: {len(records)} records, {len(rows)} reasons", title_justify="left")
    for col in ("REASON", "COUNT", "REPLAYED", "STAGE", "CLASS", "ORIGIN", "COMPONENT", "FIRST", "LAST", "MESSAGE"):
        table.add_column(col, overflow="fold", justify="right" if col in ("COUNT", "REPLAYED") else "left")
    for r in rows:
        table.add_row(r["reason"], str(r["count"]), str(r["replayed"]), r["stage"], r["class"],
                      ", ".join(f"{k} ({v})" for k, v in r["origins"].items()),
                      ", ".join(r["components"]), _short(r["first"]), _short(r["last"]), r["example"][:120])
    console().print(table)
    return 0


def _short(iso: str) -> str:
    return iso[:19].replace("T", " ")


def describe_record(rec: Record, full: bool) -> dict:
    info = error_info(rec.headers)
    event_id = envelope.header_value(rec.headers, envelope.HEADER_ID)
    if event_id is None and rec.value:
        try:
            event_id = envelope.decode(rec.value).get("id")
        except envelope.EnvelopeError:
            pass
    return {"dlq_partition": rec.partition, "dlq_offset": rec.offset, "event_id": event_id,
            "origin": f"{info.get('topic', '?')}[{info.get('partition', '?')}]@{info.get('offset', '?')}",
            "error": info, "error_time": format_ms(_error_ms(info, rec)),
            "key": text(rec.key), "value": text(rec.value, None if full else 400),
            "headers": {k: v for k, v in headers_dict(rec.headers).items() if not k.startswith("logtide.error.")}}


def cmd_show(args: argparse.Namespace) -> int:
    transport = connect_args(args)
    groups = group(read_dlq(transport, args.topic))
    args.all = True
    chosen = {(r.partition, r.offset) for r in select(groups, args, require=False)}
    out = []
    for rid, g in groups.items():
        samples = [describe_record(r, args.full) for r in g["records"] if (r.partition, r.offset) in chosen]
        if samples:
            out.append({**_summary(g), "samples": samples[: args.limit]})
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
            print(f"   - dlq offset {s['dlq_offset']}  from {s['origin']}  at {s['error_time']}  "
                  f"by {s['error'].get('component', '?')}  id={s['event_id']}")
            print(f"     error: {s['error'].get('message', '')}")
            print(f"     key:   {s['key']}")
            print(f"     value: {s['value']}")
            if s["headers"]:
                print(f"     headers: {s['headers']}")
    return 0


# --- replay -----------------------------------------------------------------------------------------

class ReplayLedger:
    """Which DLQ offsets were replayed, in the checkpoints topic (one key per DLQ topic)."""

    def __init__(self, transport, topic: str):
        self.topic = topic
        self._store: KafkaCheckpoints | None = None
        self._transport = transport
        try:
            self._store = KafkaCheckpoints(transport, "tools.dlq-replayed")
            value = self._store.get(topic) or {}
        except Exception:  # the ledger is a convenience: a read-only cluster still lists
            value = {}
        self.offsets = {int(p): set(v) for p, v in value.get("partitions", {}).items()}

    def done(self, rec: Record) -> bool:
        return rec.offset in self.offsets.get(rec.partition, ())

    def add(self, records: list[Record]) -> None:
        for rec in records:
            self.offsets.setdefault(rec.partition, set()).add(rec.offset)
        if self._store is None:
            self._store = KafkaCheckpoints(self._transport, "tools.dlq-replayed")
        self._store.put(self.topic, {"partitions": {str(p): sorted(v) for p, v in self.offsets.items()}})

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def cmd_replay(args: argparse.Namespace) -> int:
    transport = connect_args(args)
    groups = group(read_dlq(transport, args.topic))
    chosen = select(groups, args, require=True)
    ledger = ReplayLedger(transport, args.topic)
    already = [r for r in chosen if ledger.done(r)]
    if not args.again:
        chosen = [r for r in chosen if not ledger.done(r)]
    targets: dict[str, int] = {}
    for rec in chosen:
        origin = error_info(rec.headers).get("topic")
        if not origin:
            raise UsageError(f"DLQ record at offset {rec.offset} has no logtide.error.topic header: origin unknown")
        targets[origin] = targets.get(origin, 0) + 1
    result = {"selected": len(chosen), "skipped_already_replayed": 0 if args.again else len(already),
              "to": targets, "dry_run": args.dry_run, "replayed": 0}
    if chosen and not args.dry_run:
        result["replayed"] = _send_back(transport, chosen)
        ledger.add(chosen)
    ledger.close()
    if args.json:
        print_json(result)
    else:
        verb = "would replay" if args.dry_run else "replayed"
        n = result["selected"] if args.dry_run else result["replayed"]
        where = ", ".join(f"{t} ({c})" for t, c in targets.items()) or "-"
        print(f"{verb} {n} records to {where}"
              + (f"; {len(already)} replayed before were skipped (--again to include them)"
                 if already and not args.again else ""))
    return 0


def _send_back(transport, records: list[Record]) -> int:
    consumer = transport.consumer(None)
    counts: dict[str, int] = {}
    try:
        for rec in records:
            origin = error_info(rec.headers)["topic"]
            if origin not in counts:
                counts[origin] = len(consumer.partitions_for(origin))
                if not counts[origin]:
                    raise UsageError(f"origin topic {origin!r} does not exist any more")
    finally:
        consumer.close()
    producer = transport.producer(linger_ms=20)
    errors: list[Exception] = []
    try:
        for rec in records:
            info = error_info(rec.headers)
            try:
                partition = int(info.get("partition", ""))
            except ValueError:
                partition = None
            if partition is not None and not 0 <= partition < counts[info["topic"]]:
                partition = None
            headers = [(k, v) for k, v in rec.headers if not k.startswith("logtide.error.")]
            producer.produce(info["topic"], rec.value, key=rec.key, headers=headers, partition=partition,
                             on_delivery=lambda err, r: err and errors.append(err))
        left = producer.flush(60)
    finally:
        producer.close()
    if errors or left:
        raise TransportError(f"replay not acknowledged by Kafka: {errors[0] if errors else 'timeout'}")
    return len(records)

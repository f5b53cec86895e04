"""`logtide lag`: consumer-group lag with a Burrow-style status per partition and per group.

A few samples of committed and end offsets are taken ``--interval`` apart; over that window, per
partition (after LinkedIn Burrow's evaluation rules):

- OK:    the lag was zero at some sample, or it is shrinking.
- WARN:  the group commits (its offsets move) but the lag grew or stayed at every step: it is
         falling behind.
- STALL: the offsets did not move while there is lag, and the group still has live members: a
         stuck consumer (blocked sink, poison record, retry loop).
- STOP:  the offsets did not move while there is lag, and the group has no live member: nothing
         is consuming.

A group's status is its worst partition's. Lag is in records and in seconds (age of the oldest
record not yet consumed).
"""

from __future__ import annotations

import argparse
import sys
import time

from logtide.cli import UsageError

from logtide.tools.common import add_kafka_arguments, connect_args, console, print_json
from logtide.tools.groups import GroupSnapshot, lag_seconds, list_groups, snapshot

EPILOG = """examples:
  logtide lag                                   every group, 3 samples 5 s apart
  logtide lag --group logtide-processors --samples 5 --interval 10 --json
  logtide lag --fail-on STALL                   exit 1 when a group is STALL or STOP (for cron/CI checks)
"""

STATUSES = ("OK", "WARN", "STALL", "STOP")
#: Coordinator states in which a group has live members.
ACTIVE_STATES = {"Stable", "PreparingRebalance", "CompletingRebalance"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lag",
        help="consumer-group lag with a status per group (OK, WARN, STALL, STOP)",
        description="Sample committed and end offsets of consumer groups a few times and rate "
        "each group like Burrow does: OK, WARN (falling behind), STALL (stuck), "
        "STOP (nothing consuming).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--group", action="append", metavar="GROUP", help="only this group (repeatable)")
    p.add_argument("--samples", type=int, default=3, metavar="N", help="samples in the window (default 3, at least 2)")
    p.add_argument("--interval", type=float, default=5.0, metavar="S", help="seconds between samples (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--fail-on",
        choices=STATUSES[1:],
        metavar="STATUS",
        help="exit 1 when any group is at this status or worse (WARN, STALL, STOP)",
    )
    add_kafka_arguments(p)
    p.set_defaults(func=run)


def partition_status(window: list[tuple[int, int]], active: bool | None) -> str:
    """Status of one partition from its (committed, end) samples, oldest first.

    ``active``: whether the group has live members (None: unknown, treated as live).
    """
    lags = [max(0, end - committed) for committed, end in window]
    if not lags or min(lags) == 0:
        return "OK"
    if len(lags) < 2:  # a partition first seen in the last sample: only "nobody consumes" is certain
        return "STOP" if active is False else "OK"
    moved = window[-1][0] != window[0][0]
    if not moved:
        return "STOP" if active is False else "STALL"
    if len(lags) >= 2 and all(b >= a for a, b in zip(lags, lags[1:])):
        return "WARN"
    return "OK"


def worst(statuses) -> str:
    return max(statuses, key=STATUSES.index, default="OK")


def evaluate(samples: list[dict[str, GroupSnapshot]], ages: dict | None = None) -> list[dict]:
    """Per group: status, lag, and per-partition detail from the samples (oldest first)."""
    ages = ages or {}
    out = []
    last = samples[-1]
    for g, snap in last.items():
        active = None if snap.state is None else snap.state in ACTIVE_STATES
        parts = []
        for tp, offs in snap.partitions.items():
            window = [
                (s[g].partitions[tp].committed, s[g].partitions[tp].end)
                for s in samples
                if g in s and tp in s[g].partitions
            ]
            age = ages.get((g, tp), 0.0 if offs.lag == 0 else None)
            parts.append(
                {
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "committed": offs.committed,
                    "end": offs.end,
                    "lag": offs.lag,
                    "lag_seconds": None if age is None else round(age, 3),
                    "status": partition_status(window, active),
                }
            )
        known_ages = [p["lag_seconds"] for p in parts if p["lag_seconds"] is not None]
        out.append(
            {
                "group": g,
                "status": worst(p["status"] for p in parts),
                "state": snap.state,
                "lag": snap.lag,
                "lag_seconds": max(known_ages, default=None),
                "partitions": parts,
            }
        )
    return out


def sample_window(transport, groups: list[str], samples: int, interval: float) -> list[dict[str, GroupSnapshot]]:
    window = []
    for i in range(samples):
        if i:
            time.sleep(interval)
        window.append(snapshot(transport, groups))
    return window


def ages_of(transport, snap: dict[str, GroupSnapshot]) -> dict:
    """Lag in seconds per (group, partition) where there is lag."""
    out = {}
    for g, s in snap.items():
        positions = {tp: o.committed for tp, o in s.partitions.items() if o.lag > 0}
        for tp, age in lag_seconds(transport, positions).items():
            out[(g, tp)] = age
    return out


def run(args: argparse.Namespace) -> int:
    if args.samples < 2:
        raise UsageError("--samples must be at least 2 (the status compares samples)")
    if args.interval < 0:
        raise UsageError("--interval must not be negative")
    transport = connect_args(args)
    if args.group:
        known = set(list_groups(transport))
        missing = [g for g in args.group if g not in known]
        if missing:  # as kafka-consumer-groups and Burrow do: a typo must not read as "OK"
            raise UsageError(f"no such group: {', '.join(missing)} (`logtide lag` lists the groups)")
    groups = list_groups(transport, args.group)
    if not groups:
        if args.json:
            print_json({"groups": []})
        else:
            print("no consumer groups", file=sys.stderr)
        return 0
    window = sample_window(transport, groups, args.samples, args.interval)
    result = evaluate(window, ages_of(transport, window[-1]))
    if not args.group:
        result = [g for g in result if g["partitions"]]  # groups that never committed say nothing
    if args.json:
        print_json({"window_seconds": args.interval * (args.samples - 1), "samples": args.samples, "groups": result})
    else:
        _print_table(result)
    if args.fail_on and any(STATUSES.index(g["status"]) >= STATUSES.index(args.fail_on) for g in result):
        return 1
    return 0


_STYLE = {"OK": "green", "WARN": "yellow", "STALL": "bold red", "STOP": "bold white on red"}


def _print_table(result: list[dict]) -> None:
    from rich.table import Table

    table = Table(title="consumer groups", title_justify="left")
    for col in ("GROUP", "STATUS", "STATE", "LAG", "LAG SECONDS", "WORST PARTITIONS"):
        table.add_column(col, justify="right" if col.startswith("LAG") else "left")
    for g in result:
        bad = [p for p in g["partitions"] if p["status"] != "OK"]
        detail = ", ".join(f"{p['topic']}[{p['partition']}] {p['status']} lag {p['lag']}" for p in bad[:3])
        table.add_row(
            g["group"],
            f"[{_STYLE[g['status']]}]{g['status']}[/]",
            g["state"] or "?",
            str(g["lag"]),
            "-" if g["lag_seconds"] is None else f"{g['lag_seconds']:.1f}",
            detail,
        )
    console().print(table)

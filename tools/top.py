"""`logtide top`: a live terminal table of what the platform is doing (like `vector top`).

Two sources, sampled every --interval seconds; rates are differences between samples:
- Kafka: records per second into each topic (exact end offsets), the DLQ's rate, and each consumer
  group's lag in records and seconds, its consume rate and its Burrow-style status (see `logtide lag`)
  over the samples seen so far.
- The roles' /metrics (--metrics URL, repeatable): per component, events in (consumed), out
  (produced), errors (every ``logtide_*_errors_total`` counter), DLQ records and the lag the role
  itself reports. A role that does not answer is shown as down, not fatal.

``--once --json`` takes two samples and prints one JSON document for scripts.
"""

from __future__ import annotations

import argparse
import re
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from urllib.parse import urlparse

from prometheus_client.parser import text_string_to_metric_families

from logtide.cli import UsageError
from logtide.role import install_signal_handlers
from logtide.topics import DLQ, exact_end_offsets
from logtide.transport import TopicPartition

from logtide.tools.common import add_kafka_arguments, connect_args, console, print_json
from logtide.tools.groups import list_groups, snapshot
from logtide.tools.lag import ages_of, evaluate

EPILOG = """examples:
  logtide top --metrics http://processor-0:9464 --metrics http://alert-0:9464
  logtide top --once --json --interval 2        one sample pair, JSON, for scripts
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "top",
        help="live table of rates, errors, DLQ rate and consumer lag",
        description="Live view of topic rates, consumer-group lag (records and seconds) and, from "
        "the roles' /metrics, per-component rates, errors and DLQ records.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--metrics",
        action="append",
        default=[],
        metavar="URL",
        help="a role's metrics URL, e.g. http://127.0.0.1:9464/metrics (repeatable)",
    )
    p.add_argument("--interval", type=float, default=2.0, metavar="S", help="seconds between samples (default 2)")
    p.add_argument("--group", action="append", metavar="GROUP", help="only these consumer groups (repeatable)")
    p.add_argument("--once", action="store_true", help="take two samples, print once and exit")
    p.add_argument("--json", action="store_true", help="print JSON (with --once)")
    p.add_argument("--window", type=int, default=5, metavar="N", help="samples the group status looks at (default 5)")
    p.add_argument(
        "--topics",
        default=r"^logtide\.",
        metavar="REGEX",
        help="topics whose rates to show (default: ^logtide\\. — every logtide topic)",
    )
    add_kafka_arguments(p)
    p.set_defaults(func=run)


# --- /metrics -----------------------------------------------------------------------------------------


def metrics_url(url: str) -> str:
    u = urlparse(url if "://" in url else "http://" + url)
    return u._replace(path=u.path if u.path not in ("", "/") else "/metrics").geturl()


def scrape(url: str, timeout: float = 3.0) -> dict[str, dict[str, float]]:
    """Per component: totals of the counters and gauges top shows (raises OSError when down)."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body = resp.read().decode("utf-8", "replace")
    out: dict[str, dict[str, float]] = {}

    def add(component: str, key: str, value: float) -> None:
        row = out.setdefault(component, {"in": 0.0, "out": 0.0, "errors": 0.0, "dlq": 0.0, "lag": 0.0})
        row[key] += value

    for family in text_string_to_metric_families(body):
        for s in family.samples:
            comp = s.labels.get("component")
            if comp is None:
                continue
            name = s.name
            if name == "logtide_consumer_records_total":
                add(comp, "in", s.value)
            elif name == "logtide_events_produced_total":
                add(comp, "out", s.value)
            elif name == "logtide_dlq_records_total":
                add(comp, "dlq", s.value)
            elif name == "logtide_consumer_lag_records":
                add(comp, "lag", s.value)
            elif name.startswith("logtide_") and name.endswith("_errors_total"):
                add(comp, "errors", s.value)
    return out


def scrape_all(urls: list[str]) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    merged: dict[str, dict[str, float]] = {}
    down: dict[str, str] = {}
    for url in urls:
        try:
            for comp, row in scrape(url).items():
                m = merged.setdefault(comp, {k: 0.0 for k in row})
                for k, v in row.items():
                    m[k] += v
        except (OSError, ValueError, urllib.error.URLError) as exc:
            down[url] = str(getattr(exc, "reason", exc))
    return merged, down


# --- sampling -----------------------------------------------------------------------------------------


class Sampler:
    """Takes samples and turns the last two into rates; keeps a few group samples for the status."""

    def __init__(self, transport, urls: list[str], groups: list[str] | None, window: int, topics: str):
        self.transport = transport
        self.topic_filter = re.compile(topics)
        self.urls = urls
        self.only_groups = groups
        self.group_window: deque = deque(maxlen=max(2, window))
        self.prev: dict | None = None
        self.cur: dict | None = None

    def sample(self) -> None:
        groups = list_groups(self.transport, self.only_groups)
        snap = snapshot(self.transport, groups)
        if not self.only_groups:
            snap = {g: s for g, s in snap.items() if s.partitions}
        components, down = scrape_all(self.urls)
        topics = self.topic_records()
        self.group_window.append(snap)
        self.prev, self.cur = (
            self.cur,
            {"time": time.time(), "topics": topics, "groups": snap, "components": components, "down": down},
        )

    def topic_records(self) -> dict[str, int]:
        """Records in each shown topic (exact end offsets; only the topics the filter picks)."""
        admin = self.transport.admin()
        try:
            names = {t: n for t, n in admin.list_topics().items() if self.topic_filter.search(t) or t == DLQ}
        finally:
            admin.close()
        parts = [TopicPartition(t, p) for t, n in sorted(names.items()) for p in range(n)]
        if not parts:
            return {}
        consumer = self.transport.consumer(None)
        try:
            ends = exact_end_offsets(consumer, parts)
        finally:
            consumer.close()
        out = {t: 0 for t in names}
        for tp, end in ends.items():
            out[tp.topic] += end
        return out

    def view(self) -> dict:
        cur, prev = self.cur, self.prev or self.cur
        dt = max(1e-6, cur["time"] - prev["time"]) if prev is not cur else None

        def rate(now: float, before: float | None) -> float | None:
            if dt is None or before is None:
                return None
            return round(max(0.0, now - before) / dt, 2)

        topics = [
            {"topic": t, "records": n, "rate": rate(n, prev["topics"].get(t))} for t, n in sorted(cur["topics"].items())
        ]
        components = []
        for comp, row in sorted(cur["components"].items()):
            before = prev["components"].get(comp, {})
            components.append(
                {
                    "component": comp,
                    "in_rate": rate(row["in"], before.get("in")),
                    "out_rate": rate(row["out"], before.get("out")),
                    "error_rate": rate(row["errors"], before.get("errors")),
                    "dlq_rate": rate(row["dlq"], before.get("dlq")),
                    "errors_total": row["errors"],
                    "dlq_total": row["dlq"],
                    "lag": row["lag"],
                }
            )
        statuses = evaluate(list(self.group_window), ages_of(self.transport, cur["groups"]))
        groups = []
        for g in statuses:
            snap_now, snap_before = cur["groups"][g["group"]], prev["groups"].get(g["group"])
            consumed = None
            if snap_before is not None:
                moved = sum(
                    o.committed - snap_before.partitions[tp].committed
                    for tp, o in snap_now.partitions.items()
                    if tp in snap_before.partitions
                )
                consumed = rate(moved, 0)
            groups.append(
                {
                    "group": g["group"],
                    "status": g["status"],
                    "state": g["state"],
                    "lag": g["lag"],
                    "lag_seconds": g["lag_seconds"],
                    "consume_rate": consumed,
                }
            )
        dlq = cur["topics"].get(DLQ)
        return {
            "time": cur["time"],
            "interval": dt,
            "components": components,
            "groups": groups,
            "topics": topics,
            "dlq": {
                "topic": DLQ,
                "records": dlq,
                "rate": rate(dlq, prev["topics"].get(DLQ)) if dlq is not None else None,
            },
            "metrics_down": cur["down"],
        }


# --- output -------------------------------------------------------------------------------------------


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}"
    return f"{v:,}"


def render(view: dict):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from logtide.tools.lag import _STYLE

    parts = []
    dlq = view["dlq"]
    parts.append(
        Text(
            f"logtide top — every {_fmt(view['interval'])} s — DLQ: {_fmt(dlq['records'])} records, "
            f"{_fmt(dlq['rate'])}/s",
            style="bold",
        )
    )
    t = Table(title="components (/metrics)", title_justify="left", expand=False)
    for col in ("COMPONENT", "IN/s", "OUT/s", "ERRORS/s", "DLQ/s", "ERRORS", "LAG"):
        t.add_column(col, justify="left" if col == "COMPONENT" else "right")
    for c in view["components"]:
        t.add_row(
            c["component"],
            _fmt(c["in_rate"]),
            _fmt(c["out_rate"]),
            Text(_fmt(c["error_rate"]), style="red" if c["error_rate"] else ""),
            Text(_fmt(c["dlq_rate"]), style="red" if c["dlq_rate"] else ""),
            _fmt(c["errors_total"]),
            _fmt(c["lag"]),
        )
    for url, err in view["metrics_down"].items():
        t.add_row(Text(f"{url} DOWN: {err}", style="bold red"), "", "", "", "", "", "")
    parts.append(t)
    t = Table(title="consumer groups (Kafka)", title_justify="left")
    for col in ("GROUP", "STATUS", "STATE", "LAG", "LAG s", "CONSUMED/s"):
        t.add_column(col, justify="right" if col in ("LAG", "LAG s", "CONSUMED/s") else "left")
    for g in view["groups"]:
        t.add_row(
            g["group"],
            f"[{_STYLE[g['status']]}]{g['status']}[/]",
            g["state"] or "?",
            _fmt(g["lag"]),
            _fmt(g["lag_seconds"]),
            _fmt(g["consume_rate"]),
        )
    parts.append(t)
    t = Table(title="topics (Kafka)", title_justify="left")
    for col in ("TOPIC", "RECORDS", "IN/s"):
        t.add_column(col, justify="left" if col == "TOPIC" else "right")
    for row in view["topics"]:
        t.add_row(row["topic"], _fmt(row["records"]), _fmt(row["rate"]))
    parts.append(t)
    return Group(*parts)


def run(args: argparse.Namespace) -> int:
    if args.interval <= 0:
        raise UsageError("--interval must be positive")
    if args.json and not args.once:
        raise UsageError("--json needs --once (the live view is a terminal table)")
    urls = [metrics_url(u) for u in args.metrics]
    transport = connect_args(args)
    try:
        re.compile(args.topics)
    except re.error as exc:
        raise UsageError(f"--topics: bad regex: {exc}") from None
    sampler = Sampler(transport, urls, args.group, args.window, args.topics)
    sampler.sample()
    if args.once:
        time.sleep(args.interval)
        sampler.sample()
        view = sampler.view()
        if args.json:
            print_json(view)
        else:
            console().print(render(view))
        return 0
    from rich.live import Live

    stop = threading.Event()
    install_signal_handlers(stop)
    with Live(render(sampler.view()), console=console(), refresh_per_second=4, screen=False) as live:
        while not stop.wait(args.interval):
            sampler.sample()
            live.update(render(sampler.view()))
    return 0

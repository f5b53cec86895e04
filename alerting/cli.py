"""`logtide alert`: run the alerting engine, test rules offline, manage silences."""

from __future__ import annotations

import argparse
import os
import sys

import orjson

from logtide import envelope
from logtide.cli import UsageError

EPILOG = """examples:
  logtide alert --config examples/alert.yaml
      consume logtide.route.monitoring, evaluate the rules, notify the receivers; API on api.port

  logtide alert --check --config examples/alert.yaml
      validate the config and its rule files offline (conditions, templates, state directory)

  logtide alert test examples/alert-rules.yaml examples/alert-events.jsonl --config examples/alert.yaml
      evaluate rules over a file of events (JSON lines, envelopes; "time" in ns or RFC 3339) with
      event time, and print what fires, resolves and the notifications the engine would send; after
      the last event time runs on until the alerts resolve; exit 1 if anything fires with
      --fail-on-fire (for CI); a summary per rule (alerts fired, first and last firing) and the
      peak of active groups; progress on stderr on a terminal (or --progress)

  logtide alert backtest --config examples/alert.yaml --from 2h --to 1h
      the same over the records of the config's topics stamped in [--from, --to) (--rules FILE to
      try other rules, --topic T for other topics): nobody is notified, the notifications are printed

  id=$(logtide alert silence add 'service_name="checkout"' 'severity=~"warning|info"' --duration 2h \\
      --author alice --comment "deploy" --url http://127.0.0.1:9093)
  logtide alert silence list --url http://127.0.0.1:9093
  logtide alert silence expire "$id" --url http://127.0.0.1:9093

The silence commands take --url/--token before or after add/list/expire, and read $LOGTIDE_ALERT_URL
and $LOGTIDE_ALERT_TOKEN when they are not given. The API is Alertmanager's v2, so amtool works too:
  amtool --alertmanager.url http://127.0.0.1:9093 alert query
"""


def register(sub: argparse._SubParsersAction) -> None:
    from logtide.role import add_role_arguments

    p = sub.add_parser(
        "alert",
        help="alerting engine: rules over log streams, silences, notifications",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_role_arguments(p)
    p.set_defaults(func=run)
    asub = p.add_subparsers(dest="alert_command", metavar="{test,backtest,silence}")

    t = asub.add_parser(
        "test",
        help="evaluate rules over a file of events and print what would fire",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument("rules", help="rules YAML file")
    t.add_argument("events", help="events file: JSON lines (envelopes), '-' for stdin")
    t.add_argument(
        "--config",
        "-c",
        dest="test_config",
        metavar="FILE",
        help="alerting config for routes, receivers and templates (default: one webhook receiver)",
    )
    t.add_argument("--fail-on-fire", action="store_true", help="exit 1 when any alert fires")
    t.add_argument("--progress", action="store_true", help="progress on stderr (default: only on a terminal)")
    t.set_defaults(func=run_test)

    b = asub.add_parser(
        "backtest",
        help="evaluate rules over a time window of a topic, notifying nobody",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument(
        "--config",
        "-c",
        required=True,
        metavar="FILE",
        help="alerting config: rule files, topics, kafka, routes, receivers and templates",
    )
    b.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="TIME",
        help="window start: RFC 3339, Unix s/ms/ns, now, or a time ago: 2h, 30m ago (or --from=-2h)",
    )
    b.add_argument("--to", dest="end", metavar="TIME", help="window end, exclusive (default: now)")
    b.add_argument("--rules", metavar="FILE", help="rules file to try instead of the config's rules_files")
    b.add_argument("--topic", action="append", metavar="TOPIC", help="topic to read (default: the config's topics)")
    b.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        help="Kafka bootstrap (default: $LOGTIDE_BOOTSTRAP, then the config's kafka.bootstrap)",
    )
    b.add_argument("--fail-on-fire", action="store_true", help="exit 1 when any alert fires")
    b.add_argument("--progress", action="store_true", help="progress on stderr (default: only on a terminal)")
    b.set_defaults(func=run_backtest)

    s = asub.add_parser(
        "silence",
        help="add, list or expire silences through the alerting API",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _api_arguments(
        s, os.environ.get("LOGTIDE_ALERT_URL", "http://127.0.0.1:9093"), os.environ.get("LOGTIDE_ALERT_TOKEN")
    )
    # the same options after the subcommand (SUPPRESS: given there, they override; absent, the above stand)
    api_opts = argparse.ArgumentParser(add_help=False)
    _api_arguments(api_opts, argparse.SUPPRESS, argparse.SUPPRESS)
    ss = s.add_subparsers(dest="silence_command", metavar="{add,list,expire}", required=True)
    a = ss.add_parser("add", help="silence alerts matching all the matchers", parents=[api_opts])
    a.add_argument("matchers", nargs="+", help='matchers like service_name="checkout" or team=~"db|infra"')
    a.add_argument("--duration", default="1h", help="how long (default 1h), e.g. 30m, 2h")
    a.add_argument(
        "--start", help="start time: RFC 3339, now, or a time ago: 10m, 2h ago (or --start=-10m); default now"
    )
    a.add_argument("--author", default=os.environ.get("USER", "unknown"), help="who (default $USER)")
    a.add_argument("--comment", required=True, help="why")
    a.set_defaults(func=run_silence_add)
    ls = ss.add_parser("list", help="list silences", parents=[api_opts])
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=run_silence_list)
    e = ss.add_parser("expire", help="expire a silence now", parents=[api_opts])
    e.add_argument("id")
    e.set_defaults(func=run_silence_expire)


def _api_arguments(p: argparse.ArgumentParser, url, token) -> None:
    p.add_argument(
        "--url", default=url, help="alerting API base URL (default $LOGTIDE_ALERT_URL or http://127.0.0.1:9093)"
    )
    p.add_argument("--token", default=token, help="API bearer token (default $LOGTIDE_ALERT_TOKEN)")


def run(args: argparse.Namespace) -> int:
    from logtide.role import run_role

    from logtide.alerting.role import ROLE

    if not args.config:
        raise UsageError("give --config FILE (see examples/alert.yaml), or a subcommand: test, silence")
    return run_role(ROLE, args)


# --- alert test --------------------------------------------------------------------------------


def read_events(path: str) -> list[dict]:
    from logtide.alerting.api import parse_api_time

    fh = sys.stdin if path == "-" else open(path, encoding="utf-8")
    out = []
    with fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                raw = orjson.loads(line)
                if not isinstance(raw, dict):
                    raise ValueError("not a JSON object")
                if isinstance(raw.get("time"), str):
                    raw["time"] = parse_api_time(raw["time"])
                ev = envelope.new_event(
                    id=str(raw.get("id") or f"line-{n}"),
                    body=raw.get("body", ""),
                    source=raw.get("source") or "test",
                    time=raw.get("time"),
                    observed_time=raw.get("observed_time") or raw.get("time"),
                    severity_text=raw.get("severity_text", ""),
                    severity_number=raw.get("severity_number"),
                    attributes=raw.get("attributes"),
                    resource=raw.get("resource"),
                )
                out.append(envelope.validate(ev))
            except (ValueError, orjson.JSONDecodeError) as exc:
                raise UsageError(f"{path}:{n}: not an event: {exc}") from None
    return out


def _progress(args, total: int | None):
    from logtide.alerting.backtest import Progress

    return Progress(total, sys.stderr if args.progress or sys.stderr.isatty() else None)


def _offline_config(args):
    from logtide.alerting.config import load_alert_config

    return load_alert_config(args.test_config) if args.test_config else None


def run_test(args: argparse.Namespace) -> int:
    from logtide.alerting.backtest import BATCH, Backtest
    from logtide.alerting.rules import load_rules

    rules = load_rules([args.rules])
    config = _offline_config(args)
    events = read_events(args.events)
    if not events:
        raise UsageError(f"{args.events}: no events")
    events.sort(key=lambda e: e.get("time") or 0)
    bt = Backtest(rules, config)
    bt.run((events[i : i + BATCH] for i in range(0, len(events), BATCH)), _progress(args, len(events)))
    fired = bt.report()
    return 1 if (fired and args.fail_on_fire) else 0


def run_backtest(args: argparse.Namespace) -> int:
    from logtide.alerting.backtest import BATCH, Backtest, topic_window
    from logtide.alerting.config import load_alert_config
    from logtide.alerting.rules import load_rules
    from logtide.role import connect_checked, kafka_settings
    from logtide.timeutil import format_rfc3339, parse_time_expr

    try:
        start = parse_time_expr(args.start)
        end = parse_time_expr(args.end) if args.end else parse_time_expr("now")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if end <= start:
        raise UsageError(f"--to ({format_rfc3339(end, 3)}) must be after --from ({format_rfc3339(start, 3)})")
    config = load_alert_config(args.config)
    rules = load_rules([args.rules] if args.rules else config.rule_paths())
    topics = args.topic or list(config.topics)
    settings = kafka_settings(config.kafka, args.bootstrap)
    if not settings.bootstrap:
        raise UsageError("no Kafka to talk to: pass --bootstrap HOST:PORT, set LOGTIDE_BOOTSTRAP or kafka.bootstrap")
    transport = connect_checked(settings, timeout=10.0)
    window = topic_window(transport, topics, start, end)
    bt = Backtest(rules, config)
    try:
        bt.run(window.batches(BATCH), _progress(args, window.total))
    finally:
        window.close()
    print(
        f"window {format_rfc3339(start, 3)} .. {format_rfc3339(end, 3)} of {', '.join(topics)}: "
        f"{window.records} records, {window.undecodable} not envelopes (skipped)"
    )
    fired = bt.report()
    return 1 if (fired and args.fail_on_fire) else 0


# --- silences through the API -------------------------------------------------------------------


def _request(args, method: str, path: str, body: dict | None = None):
    import requests

    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    try:
        resp = requests.request(method, args.url.rstrip("/") + path, json=body, headers=headers, timeout=10)
    except requests.RequestException as exc:
        raise UsageError(f"alerting API at {args.url} is unreachable: {exc}") from None
    if resp.status_code >= 400:
        try:
            msg = resp.json().get("error", resp.text)
        except ValueError:
            msg = resp.text
        raise UsageError(f"alerting API answered {resp.status_code}: {msg}")
    return resp.json()


def run_silence_add(args: argparse.Namespace) -> int:
    from logtide.alerting.matchers import parse_matcher

    try:
        matchers = [str(parse_matcher(m)) for m in args.matchers]
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    from logtide.timeutil import format_rfc3339, parse_duration, parse_time_expr

    try:
        parse_duration(args.duration)
        start = format_rfc3339(parse_time_expr(args.start), digits=3) if args.start else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    body = {"matchers": matchers, "duration": args.duration, "createdBy": args.author, "comment": args.comment}
    if start:
        body["startsAt"] = start
    print(_request(args, "POST", "/api/v2/silences", body)["silenceID"])
    return 0


_OPS = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}


def run_silence_list(args: argparse.Namespace) -> int:
    rows = _request(args, "GET", "/api/v2/silences")
    if args.json:
        print(orjson.dumps(rows).decode())
        return 0
    print(f"{'ID':36}  {'STATE':8}  {'ENDS':24}  {'BY':12}  MATCHERS / COMMENT")
    for s in rows:
        ms = " ".join(f'{m["name"]}{_OPS[(m["isRegex"], m["isEqual"])]}"{m["value"]}"' for m in s["matchers"])
        print(
            f"{s['id']:36}  {s['status']['state']:8}  {s['endsAt']:24}  {s['createdBy'][:12]:12}  {ms}  # {s['comment']}"
        )
    return 0


def run_silence_expire(args: argparse.Namespace) -> int:
    _request(args, "DELETE", f"/api/v2/silence/{args.id}")
    print(f"expired {args.id}")
    return 0

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
      --fail-on-fire (for CI)

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
    p = sub.add_parser("alert", help="alerting engine: rules over log streams, silences, notifications",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_role_arguments(p)
    p.set_defaults(func=run)
    asub = p.add_subparsers(dest="alert_command", metavar="{test,silence}")

    t = asub.add_parser("test", help="evaluate rules over a file of events and print what would fire",
                        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("rules", help="rules YAML file")
    t.add_argument("events", help="events file: JSON lines (envelopes), '-' for stdin")
    t.add_argument("--config", "-c", dest="test_config", metavar="FILE",
                   help="alerting config for routes, receivers and templates (default: one webhook receiver)")
    t.add_argument("--fail-on-fire", action="store_true", help="exit 1 when any alert fires")
    t.set_defaults(func=run_test)

    s = asub.add_parser("silence", help="add, list or expire silences through the alerting API",
                        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _api_arguments(s, os.environ.get("LOGTIDE_ALERT_URL", "http://127.0.0.1:9093"),
                   os.environ.get("LOGTIDE_ALERT_TOKEN"))
    # the same options after the subcommand (SUPPRESS: given there, they override; absent, the above stand)
    api_opts = argparse.ArgumentParser(add_help=False)
    _api_arguments(api_opts, argparse.SUPPRESS, argparse.SUPPRESS)
    ss = s.add_subparsers(dest="silence_command", metavar="{add,list,expire}", required=True)
    a = ss.add_parser("add", help="silence alerts matching all the matchers", parents=[api_opts])
    a.add_argument("matchers", nargs="+", help='matchers like service_name="checkout" or team=~"db|infra"')
    a.add_argument("--duration", default="1h", help="how long (default 1h), e.g. 30m, 2h")
    a.add_argument("--start",
                   help="start time: RFC 3339, now, or a time ago: 10m, 2h ago (or --start=-10m); default now")
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
    p.add_argument("--url", default=url,
                   help="alerting API base URL (default $LOGTIDE_ALERT_URL or http://127.0.0.1:9093)")
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
                ev = envelope.new_event(id=str(raw.get("id") or f"line-{n}"), body=raw.get("body", ""),
                                        source=raw.get("source") or "test", time=raw.get("time"),
                                        observed_time=raw.get("observed_time") or raw.get("time"),
                                        severity_text=raw.get("severity_text", ""),
                                        severity_number=raw.get("severity_number"),
                                        attributes=raw.get("attributes"), resource=raw.get("resource"))
                out.append(envelope.validate(ev))
            except (ValueError, orjson.JSONDecodeError) as exc:
                raise UsageError(f"{path}:{n}: not an event: {exc}") from None
    return out


def run_test(args: argparse.Namespace) -> int:
    from logtide.alerting.config import AlertConfig, load_alert_config
    from logtide.timeutil import NS
    from logtide.alerting.engine import AlertEngine
    from logtide.alerting.delivery import sendable
    from logtide.alerting.rules import AbsenceRule, load_rules
    from logtide.alerting.state import FIRING, PENDING, rfc3339
    from logtide.alerting.store import Store
    from logtide.alerting.templates import DEFAULT_TEXT, DEFAULT_TITLE, context, fallback_text

    rules = load_rules([args.rules])
    if args.test_config:
        config = load_alert_config(args.test_config)
    else:
        config = AlertConfig(route={"receiver": "default", "group_by": ["alertname"], "group_wait": "0s"},
                             receivers=[{"name": "default", "webhook": [{"url": "http://example.invalid/"}]}])
    config = config.model_copy(update={"clock": config.clock.model_copy(update={"mode": "event"})})
    events = sorted(read_events(args.events), key=lambda e: e.get("time") or 0)
    if not events:
        raise UsageError(f"{args.events}: no events")

    printed: list[str] = []
    fired: set[str] = set()

    def notify(n) -> None:
        engine.nflog.log(n.group_key, n.integration, n.firing, n.resolved, n.now)
        if not sendable(n):  # what the delivery worker does: the log learns it, nobody is sent it
            return
        ctx = context(n, config.external_url)
        fallback = fallback_text(n)
        title = engine.templates.render_or(_integration_template(engine, n, "title", DEFAULT_TITLE), ctx,
                                           fallback.splitlines()[0], n.receiver)
        text = engine.templates.render_or(_integration_template(engine, n, "text", DEFAULT_TEXT), ctx,
                                          fallback, n.receiver)
        printed.append(f"--- notification at {rfc3339(n.now)} to {n.integration} ({n.status}, "
                       f"group {n.group_key})\n{title}\n{text}")

    engine = AlertEngine(config, rules, Store(":memory:"), notify=notify)
    for ev in events:
        before = {fp: a.state for fp, a in engine.states.alerts.items()}
        engine.ingest([(ev, 0)])
        _print_transitions(engine, before, fired, rfc3339)
    # After the last event time runs on until every alert has resolved and its notifications went
    # out. Absence rules stop at the last event: past it, every key would look silent.
    for name in [n for n, ev in engine.evaluators.items() if isinstance(ev.rule, AbsenceRule)]:
        del engine.evaluators[name]
    routes = list(engine.dispatcher.root.walk())
    step = NS  # one evaluation per second of event time, as the engine's ticker
    tail = max((r.window + getattr(r, "reference", 0.0) + r.for_ + r.keep_firing_for for r in rules), default=0.0)
    tail += max(r.group_wait + r.group_interval for r in routes)
    t, end = engine.clock.now(), engine.clock.now() + int(tail * NS)
    while t < end:
        t += step
        before = {fp: a.state for fp, a in engine.states.alerts.items()}
        engine.advance_to(t)
        _print_transitions(engine, before, fired, rfc3339)
        if not any(a.state in (PENDING, FIRING) for a in engine.states.alerts.values()) \
                and not engine.dispatcher.groups:
            break
    for block in printed:
        print(block)
    print(f"{len(events)} events, {len(rules)} rules: {len(fired)} alerts fired, {len(printed)} notifications")
    engine.store.close()
    return 1 if (fired and args.fail_on_fire) else 0


def _integration_template(engine, n, which: str, default: str) -> str:
    for integ in engine.integrations.get(n.receiver, []):
        if integ.id == n.integration:
            cfg = getattr(integ, "config", None)
            return getattr(cfg, which, None) or (getattr(cfg, "summary", None) if which == "title" else None) or default
    return default


def _print_transitions(engine, before: dict, fired: set, rfc3339) -> None:
    for fp, a in engine.states.alerts.items():
        if before.get(fp) != a.state:
            labels = ", ".join(f'{k}="{v}"' for k, v in sorted(a.labels.items()))
            when = {"pending": a.active_at, "firing": a.fired_at, "resolved": a.resolved_at}[a.state]
            print(f"{rfc3339(when)}  {a.state.upper():8} {{{labels}}} value={a.value}")
            if a.state == "firing":
                fired.add(fp)


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
        print(f"{s['id']:36}  {s['status']['state']:8}  {s['endsAt']:24}  {s['createdBy'][:12]:12}  {ms}  # {s['comment']}")
    return 0


def run_silence_expire(args: argparse.Namespace) -> int:
    _request(args, "DELETE", f"/api/v2/silence/{args.id}")
    print(f"expired {args.id}")
    return 0

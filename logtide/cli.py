"""The `logtide` command. Built in: broker, topics, up. Each component adds its own subcommands
through the ``logtide.commands`` entry point group (the kernel knows no component)."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

import orjson

from logtide import log

EPILOG = """examples:
  logtide up --duration 60            everything on one machine with the embedded broker
  logtide broker --port 9092          only the embedded broker, in the foreground
  logtide topics --bootstrap 127.0.0.1:9092
  logtide check examples/process.yaml examples/alert.yaml    validate configs offline (roles recognized)
"""

CHECK_EPILOG = """How a file's role is recognized: by its top-level keys. Each role's config has keys no other
role has (agent: mode, include, checkpoint_dir ...; collect: work and one section per collector;
process: pipeline, sinks ...; sink: one section per sink; alert: rules_files, receivers, route ...;
alert rules: rules; up: roles, workdir ...); the kind sharing most keys with the file wins. Pass
--role NAME when a file is ambiguous or has none of them.

exit status: 0 when every file is valid; 2 with one 'file:line: field: reason' line per problem.

examples (the example files take secrets from $LOGTIDE_AUDIT_KEY and $SF_PRIVATE_KEY: a reference
that does not resolve is a problem too):
  LOGTIDE_AUDIT_KEY=k SF_PRIVATE_KEY=k logtide check examples/*.yaml
  logtide check --role alert-rules examples/alert-rules.yaml
"""


class UsageError(Exception):
    """A mistake in how the command was called; printed as one line."""


def expected_errors() -> tuple[type[Exception], ...]:
    """Errors a user can act on: one line on stderr, no traceback."""
    from logtide.broker import BrokerError
    from logtide.checkpoint import CheckpointError
    from logtide.config import ConfigError
    from logtide.envelope import EnvelopeError
    from logtide.cli import UsageError as ImportedUsageError  # differs from ours under `python -m logtide.cli`
    from logtide.transport import TransportError

    return (
        UsageError,
        ImportedUsageError,
        ConfigError,
        TransportError,
        BrokerError,
        CheckpointError,
        EnvelopeError,
        OSError,
    )


def cmd_broker(args: argparse.Namespace) -> int:
    import threading

    from logtide.broker import EmbeddedBroker
    from logtide.role import install_signal_handlers

    # Handlers first: a SIGTERM right after start must stop the broker, not orphan it.
    stop = threading.Event()
    install_signal_handlers(stop)
    broker = EmbeddedBroker(port=args.port, host=args.host).start()
    print(broker.bootstrap, flush=True)
    try:
        while not stop.wait(0.5):
            if broker.proc.poll() is not None:
                raise UsageError(f"broker exited with code {broker.proc.returncode}")
    finally:
        broker.stop()
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from logtide.role import command_kafka_settings, connect_checked
    from logtide.topics import describe

    rows = describe(connect_checked(command_kafka_settings(args)))
    if args.json:
        print(orjson.dumps(rows).decode())
        return 0
    width = max([len(r["topic"]) for r in rows] + [5])
    print(f"{'TOPIC':<{width}}  PARTITIONS  RECORDS  END OFFSETS")
    for r in rows:
        print(f"{r['topic']:<{width}}  {r['partitions']:>10}  {r['records']:>7}  {r['end_offsets']}")
    return 0


def file_kinds() -> dict:
    """Every kind of file `logtide check` knows: the installed roles (``logtide.roles``) and up configs."""
    from logtide.up import UpFile

    kinds = {"up": UpFile()}
    for ep in sorted(entry_points(group="logtide.roles"), key=lambda e: e.name):
        kind = ep.load()
        kinds[kind.name] = kind
    return kinds


def recognize(path: str, kinds: dict):
    """The kind whose distinctive top-level keys the file shares most (ConfigError when unclear)."""
    from logtide.config import ConfigError, load_yaml

    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: a config file is a mapping of keys")
    scores = {name: len(set(map(str, data)) & kind.keys()) for name, kind in kinds.items()}
    best = max(scores.values(), default=0)
    winners = sorted(n for n, v in scores.items() if v == best)
    if best == 0:
        raise ConfigError(
            f"{path}:1: cannot tell which role this file configures (top-level keys: "
            f"{', '.join(map(str, data)) or 'none'}); pass --role {'|'.join(sorted(kinds))}"
        )
    if len(winners) > 1:
        raise ConfigError(f"{path}:1: could configure {' or '.join(winners)}; pass --role NAME")
    return kinds[winners[0]]


def cmd_check(args: argparse.Namespace) -> int:
    from logtide.config import ConfigError
    from logtide.role import print_check

    kinds = file_kinds()
    if args.role and args.role not in kinds:
        raise UsageError(f"--role {args.role}: not a role (one of {', '.join(sorted(kinds))})")
    worst = 0
    for path in args.files:
        try:
            kind = kinds[args.role] if args.role else recognize(path, kinds)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            worst = 2
            continue
        worst = max(worst, print_check(kind, path))
    return worst


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logtide",
        description="logtide: log streaming and alerting on Kafka.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "broker",
        help="run the embedded Kafka broker (Tansu) in the foreground",
        description="Run the embedded, memory-only Kafka broker and print its bootstrap address.",
    )
    p.add_argument("--port", type=int, help="port to listen on (default: a free one)")
    p.add_argument("--host", default="127.0.0.1")
    p.set_defaults(func=cmd_broker)

    from logtide.role import add_kafka_arguments

    p = sub.add_parser("topics", help="list topics with partitions and end offsets")
    add_kafka_arguments(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_topics)

    from logtide.up import register as register_up

    register_up(sub)

    p = sub.add_parser(
        "check",
        help="validate config files offline, recognizing each file's role",
        description="Validate role config files without connecting to anything: keys, types, "
        "regexes, conditions, templates (rule files included), secrets, directories.",
        epilog=CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument(
        "--role",
        metavar="NAME",
        help="the files' role instead of recognizing it (agent, collect, process, sink, alert, alert-rules, up)",
    )
    p.set_defaults(func=cmd_check)

    for ep in sorted(entry_points(group="logtide.commands"), key=lambda e: e.name):
        try:
            ep.load()(sub)
        except Exception as exc:  # one broken component must not take the whole CLI down
            print(
                f"logtide: warning: command {ep.name!r} ({ep.value}) unavailable: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    log.setup(getattr(args, "log_level", None) or "info")
    try:
        return int(args.func(args) or 0)
    except expected_errors() as exc:
        print(f"logtide {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

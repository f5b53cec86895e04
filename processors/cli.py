"""`logtide process`: run a stream processor replica (more replicas with the same group share the
input partitions)."""

from __future__ import annotations

import argparse

from logtide.role import add_role_arguments, run_role

EPILOG = """examples:
  logtide process --config examples/process.yaml --bootstrap 127.0.0.1:9092
  logtide process --config examples/process.yaml --check     validate the config (pipeline included) and exit

The pipeline is an ordered list of steps (parse, normalize, redact, filter, sample, ratelimit, enrich,
aggregate, route); see examples/process.yaml. Bad records go to logtide.dlq with logtide.error.* headers.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "process",
        help="run a stream processor: logtide.raw.* → pipeline → logtide.route.<sink>",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_role_arguments(p, config_required=False)
    p.add_argument("--group", metavar="ID", help="consumer group id (overrides group_id)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from logtide.processors.app import ROLE

    return run_role(ROLE, args)

"""`logtide process`: run a stream processor replica (more replicas with the same group share the
input partitions)."""

from __future__ import annotations

import argparse
import threading

from logtide import log
from logtide.role import (
    add_role_arguments, apply_arguments, connect_checked, install_signal_handlers, run_services, start_health,
)

EPILOG = """examples:
  logtide process --config examples/process.yaml --bootstrap 127.0.0.1:9092
  logtide process --config examples/process.yaml --check     validate the config (pipeline included) and exit

The pipeline is an ordered list of steps (parse, normalize, redact, filter, sample, ratelimit, enrich,
aggregate, route); see examples/process.yaml. Bad records go to logtide.dlq with logtide.error.* headers.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("process", help="run a stream processor: logtide.raw.* → pipeline → logtide.route.<sink>",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_role_arguments(p, config_required=False)
    p.add_argument("--check", action="store_true", help="validate the config and the pipeline, then exit")
    p.add_argument("--group", metavar="ID", help="consumer group id (overrides group_id)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from logtide.processors.app import build_pipeline, load, Processor
    from logtide.processors.steps import StepContext

    config = apply_arguments(load(args.config), args)
    if args.group:
        config = config.model_copy(update={"group_id": args.group})
    log.setup(config.log_level)
    ctx = StepContext(sinks=tuple(config.sinks), component="processor")
    # Every config error (pipeline included) surfaces here, before anything connects.
    pipeline = build_pipeline(config, args.config or "<defaults>", ctx)
    if args.check:
        print(f"{args.config or '<defaults>'}: ok ({len(pipeline.steps)} steps: "
              f"{', '.join(s.name for s in pipeline.steps)})")
        return 0
    transport = connect_checked(config.kafka)
    proc = Processor(config, transport, pipeline, ctx)
    if config.create_topics:
        proc.ensure_topics()
    stop = threading.Event()
    install_signal_handlers(stop)
    health = start_health(config.http)
    health.add_readiness("processor", proc.ready)
    try:
        return run_services([proc], stop, health)
    finally:
        health.stop()

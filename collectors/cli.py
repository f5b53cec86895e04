"""`logtide collect --config FILE`: run the pull collectors the config names (CloudWatch Logs,
Salesforce event logs, Kubernetes API pod logs). Start as many replicas as you like with the same
config: they split the work items through a Kafka consumer group, and a replacement resumes from the
checkpoints in logtide.checkpoints."""

from __future__ import annotations

import argparse
import threading

from logtide import log
from logtide.config import ConfigError, load_config
from logtide.role import add_role_arguments, apply_arguments, connect_checked, install_signal_handlers, \
    run_services, start_health
from logtide.transport import TopicSpec

from logtide.collectors.config import CollectConfig, build

_log = log.get("collectors.cli")

EPILOG = """example:
  logtide collect --config examples/collect.yaml --bootstrap 127.0.0.1:9092

metrics (per collector): logtide_collector_events_total, _api_calls_total, _throttles_total,
_errors_total{kind}, _checkpoint_age_seconds, _source_lag_seconds, _work_items
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("collect", help="run pull collectors (CloudWatch, Salesforce, Kubernetes API) into Kafka",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_role_arguments(p, config_required=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from logtide.collectors.work import WorkGroup

    config = apply_arguments(load_config(args.config, CollectConfig), args)
    log.setup(config.log_level)
    transport = connect_checked(config.kafka)
    admin = transport.admin()
    try:
        week = str(7 * 86400_000)
        admin.create_topics([TopicSpec(getattr(config, n).topic, config.topic_partitions, config={"retention.ms": week})
                             for n in config.named()])
    finally:
        admin.close()
    stop = threading.Event()
    install_signal_handlers(stop)
    health = start_health(config.http)
    try:
        groups = []
        for name in config.named():
            try:
                collector = build(name, config, transport)
            except Exception as exc:  # e.g. kubernetes' ConfigException: no kubeconfig and not in a cluster
                raise ConfigError(f"{args.config}: collector {name} cannot start: {exc}") from None
            group = WorkGroup(transport, collector, config.work.session_timeout_seconds,
                              config.work.revoke_timeout_seconds)
            health.add_readiness(group.name, group.joined.is_set)
            groups.append(group)
        _log.info("collecting", extra={"collectors": config.named(), "bootstrap": config.kafka.bootstrap})
        return run_services(groups, stop, health)
    finally:
        health.stop()

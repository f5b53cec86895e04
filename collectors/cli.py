"""`logtide collect --config FILE`: run the pull collectors the config names (CloudWatch Logs,
Salesforce event logs, Kubernetes API pod logs). Start as many replicas as you like with the same
config: they split the work items through a Kafka consumer group, and a replacement resumes from the
checkpoints in logtide.checkpoints."""

from __future__ import annotations

import argparse

from logtide.role import add_role_arguments, run_role

EPILOG = """examples:
  logtide collect --config examples/collect.yaml --bootstrap 127.0.0.1:9092
  SF_PRIVATE_KEY=x logtide collect --check --config examples/collect.yaml

metrics (per collector): logtide_collector_events_total, _api_calls_total, _throttles_total,
_errors_total{kind}, _checkpoint_age_seconds, _source_lag_seconds, _work_items, _work_items_failing
(error kinds: access_denied, no_credentials, credentials, throttled, server, network, log_group_gone,
tls, item_crashed, ...; each is logged once, then every reminder_seconds while it lasts)
/healthz fails when work items crash repeatedly (http.health.max_failures within period_seconds).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "collect",
        help="run pull collectors (CloudWatch, Salesforce, Kubernetes API) into Kafka",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_role_arguments(p, config_required=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from logtide.collectors.role import ROLE

    return run_role(ROLE, args)

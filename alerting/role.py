"""`logtide alert`: the alerting engine as a role (consumer loop, ticker, delivery, API)."""

from __future__ import annotations

import os
import secrets as _secrets
from pathlib import Path

from logtide.config import ConfigError
from logtide.role import FileKind, Role, Runtime
from logtide.topics import dlq_spec
from logtide.transport import TopicSpec

from logtide.alerting.config import AlertConfig, load_alert_config

# A link to examples/alert-rules.yaml in the repo; a real file inside an installed wheel.
SAMPLE_RULES = Path(__file__).with_name("sample-rules.yaml")


def rules_problems(paths: list) -> list[str]:
    """Every problem of the rule files (conditions parsed, templates compiled), ``file:line`` each."""
    from logtide.alerting.rules import load_rules

    problems: list[str] = []
    for path in paths:
        try:
            load_rules([path])
        except ConfigError as exc:
            problems += str(exc).splitlines()
    if not problems:
        try:
            load_rules(paths)  # names unique across the files
        except ConfigError as exc:
            problems += str(exc).splitlines()
    return problems


class AlertRole(Role):
    name = "alert"
    config_model = AlertConfig

    def load_file(self, path: str) -> AlertConfig:
        return load_alert_config(path)

    def reads(self, config: AlertConfig) -> list[str]:
        return list(config.topics)

    def writes(self, config: AlertConfig) -> list[TopicSpec]:
        return [dlq_spec()]

    def directories(self, config: AlertConfig) -> dict[str, str]:
        return {"state_path": os.path.dirname(config.state_file()) or "."}

    def problems(self, config: AlertConfig, filename: str) -> list[str]:
        return rules_problems(config.rule_paths())

    def describe(self, config: AlertConfig) -> str:
        from logtide.alerting.rules import load_rules

        return (
            f"alert: {len(load_rules(config.rule_paths()))} rules over {', '.join(config.topics)}, "
            f"{len(config.receivers)} receivers"
        )

    def services(self, config: AlertConfig, runtime: Runtime, **loop_overrides) -> list:
        from logtide.alerting.engine import build

        engine, services = build(config, runtime.transport, status=runtime.status("alert-engine"), **loop_overrides)
        runtime.on_close(engine.store.close)
        return services

    def up_config(self, ctx) -> AlertConfig:
        """The sample rules and a local webhook receiver that prints every notification it gets
        (signatures verified). Options: ``rules``, ``topics``, ``api_port``, ``session_timeout_seconds``."""
        from logtide.alerting.receiver import PrintingReceiver

        opts = dict(ctx.options or {})
        secret = _secrets.token_hex(16)
        receiver = PrintingReceiver(secrets=[secret])
        ctx.extra_services.append(receiver)
        rules = opts.get("rules") or str(SAMPLE_RULES)
        return AlertConfig.model_validate(
            {
                "kafka": ctx.kafka.model_dump(),
                "topics": opts.get("topics") or ["logtide.route.monitoring"],
                "rules_files": [rules],
                "state_path": str(Path(ctx.workdir) / "alerting.db"),
                "external_url": "http://127.0.0.1",
                "api": {"host": "127.0.0.1", "port": int(opts.get("api_port", 0))},
                "route": {
                    "receiver": "local",
                    "group_by": ["alertname", "service_name"],
                    "group_wait": "5s",
                    "group_interval": "1m",
                    "repeat_interval": "1h",
                },
                "receivers": [{"name": "local", "webhook": [{"url": receiver.url, "secrets": [secret]}]}],
                **(
                    {"session_timeout_seconds": float(opts["session_timeout_seconds"])}
                    if "session_timeout_seconds" in opts
                    else {}
                ),
            }
        )


class AlertRulesFile(FileKind):
    """A rules file (examples/alert-rules.yaml) on its own: ``logtide check`` validates it too."""

    name = "alert-rules"

    def keys(self) -> frozenset[str]:
        return frozenset({"rules"})

    def check(self, path: str) -> tuple[list[str], str]:
        from logtide.alerting.rules import load_rules

        problems = rules_problems([path])
        return problems, ("" if problems else f"alert rules: {len(load_rules([path]))} rules")


ROLE = AlertRole()
RULES_FILE = AlertRulesFile()

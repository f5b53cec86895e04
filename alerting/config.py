"""The alerting role's configuration (``logtide alert --config examples/alert.yaml``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, model_validator

from logtide.config import ConfigError, Model, load_config
from logtide.role import RoleConfig
from logtide.topics import route

from logtide.alerting.inhibition import InhibitRule
from logtide.alerting.notifiers import Receiver
from logtide.alerting.routing import Route, check_tree
from logtide.alerting.timeintervals import NamedTimeInterval


class ApiSettings(Model):
    """The alerting HTTP API (alerts, groups, silences)."""

    host: str = "127.0.0.1"
    port: int = 9093
    #: Bearer token required for creating/expiring silences (``${ENV}`` or ``file:``); none = open.
    token: str | None = None


class ClockSettings(Model):
    """Windows run on event time, which no event moves past the wall clock (see alerting/clock.py).
    ``hybrid`` also lets the wall clock (minus ``lateness_seconds``) move time on when events stop, so
    absence rules and resolved notifications still happen on a quiet stream, and runs silences and
    group timers on the wall clock; ``event`` uses event timestamps only (replays, tests,
    ``alert test``)."""

    mode: str = Field("hybrid", pattern="^(hybrid|event)$")
    lateness_seconds: float = Field(30.0, ge=0)
    #: events stamped further ahead of the wall clock are dropped (counted per rule)
    max_future_seconds: float = Field(300.0, ge=0)
    #: after an outage the backlog is evaluated in event time back to this far; older is dropped (counted)
    catch_up_horizon_seconds: float = Field(900.0, gt=0)


class Limits(Model):
    #: groups (distinct group keys) tracked per rule; a rule's own ``max_groups`` overrides it. Past it
    #: events of new groups are dropped (logtide_alerting_groups_dropped_total{rule}, logged once).
    #: About 1 KiB of state per group (see README "Alerting cost"); ``max_keys_per_rule`` is the old name.
    max_groups_per_rule: int = Field(
        50_000, ge=1, validation_alias=AliasChoices("max_groups_per_rule", "max_keys_per_rule")
    )
    #: recent event ids remembered to drop duplicates re-sent upstream (0 = off)
    dedup_ids: int = Field(100_000, ge=0)
    resolved_retention_seconds: float = Field(3600.0, ge=0)


class ShardSettings(Model):
    """Scale-out by partition (see alerting/engine.py): ``all`` runs every rule (one replica);
    ``partitioned`` runs only rules whose group key includes the stream key, on the partitions
    this replica owns in the consumer group; ``global`` runs the other rules (one replica)."""

    mode: str = Field("all", pattern="^(all|partitioned|global)$")
    stream_key_fields: list[str] = Field(
        default_factory=lambda: ["k8s.namespace.name", "k8s.pod.name", "k8s.container.name"]
    )


class AlertConfig(RoleConfig):
    topics: list[str] = Field(default_factory=lambda: [route("monitoring")])
    group_id: str = "logtide-alerting"
    session_timeout_seconds: float = Field(
        45, ge=1, description="consumer group session: a killed replica's partitions move on after this"
    )
    rules_files: list[str] = Field(default_factory=list, description="rule YAML files, relative to this file")
    reload_interval_seconds: float = Field(5.0, gt=0)
    #: a batch is handed over when it has this many records or after max_wait (latency vs. overhead)
    batch_max_records: int = Field(2000, ge=1)
    batch_max_wait_seconds: float = Field(0.1, ge=0)
    state_path: str = "logtide-alerting.db"
    external_url: str = ""
    clock: ClockSettings = Field(default_factory=ClockSettings)
    limits: Limits = Field(default_factory=Limits)
    shard: ShardSettings = Field(default_factory=ShardSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    route: Route = Field(default_factory=lambda: Route(receiver="default"))
    receivers: list[Receiver] = Field(default_factory=lambda: [Receiver(name="default")])
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)
    time_intervals: list[NamedTimeInterval] = Field(default_factory=list)

    @model_validator(mode="after")
    def _tree(self) -> AlertConfig:
        names = [r.name for r in self.receivers]
        if len(set(names)) != len(names):
            raise ValueError(f"receiver names must be unique: {names}")
        check_tree(self.route, set(names), {t.name for t in self.time_intervals})
        return self

    #: where the config file lives (relative rule paths are resolved from there)
    base_dir: str = "."

    def rule_paths(self) -> list[Path]:
        base = Path(self.base_dir)
        return [p if p.is_absolute() else base / p for p in map(Path, self.rules_files)]

    def state_file(self) -> str:
        """Relative to the working directory (not the config's), like any path given on a command line."""
        return self.state_path


def load_alert_config(path: str | Path) -> AlertConfig:
    cfg = load_config(path, AlertConfig)
    if not cfg.rules_files:
        raise ConfigError(f"{path}: field 'rules_files': list at least one rules file")
    return cfg.model_copy(update={"base_dir": str(Path(path).resolve().parent)})

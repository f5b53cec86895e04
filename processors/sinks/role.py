"""`logtide sink`: the sinks a config names, each a consumer group of its route topic."""

from __future__ import annotations

import argparse

from logtide.config import ConfigError
from logtide.role import Role, Runtime
from logtide.topics import dlq_spec, route, route_spec
from logtide.transport import TopicSpec, Transport

from logtide.processors.sinks.config import SinkRoleConfig, group_of, topic_of
from logtide.processors.sinks.registry import SINKS
from logtide.processors.sinks.service import SinkService

SinkConfig = SINKS.sections_model(SinkRoleConfig, "SinkConfig")


def build_services(
    config: SinkRoleConfig, transport: Transport, only: list[str] | None = None, runtime: Runtime | None = None
) -> list[SinkService]:
    """The one way sink services are built (`logtide sink`, `logtide up`, tests, benches)."""
    services = []
    for name, settings in config.enabled().items():
        if only and name not in only:
            continue
        sink = SINKS[name].build(name, settings, transport)
        services.append(
            SinkService(
                transport,
                sink,
                topic=topic_of(name, settings),
                group_id=group_of(name, settings),
                max_batch=settings.max_batch,
                session_timeout_seconds=settings.session_timeout_seconds,
                dedup_capacity=settings.dedup_capacity,
                status=runtime.status(f"sink-{name}") if runtime is not None else None,
            )
        )
    return services


class SinkRole(Role):
    name = "sink"
    config_model = SinkConfig

    def configure(self, config: SinkRoleConfig, args: argparse.Namespace) -> SinkRoleConfig:
        from logtide.cli import UsageError

        enabled = list(config.enabled())
        if not enabled:
            raise ConfigError(f"{args.config}: no sink configured (add a {', '.join(SINKS.names())} section)")
        only = [s.strip() for s in args.only.split(",")] if getattr(args, "only", None) else None
        if only and (unknown := set(only) - set(enabled)):
            raise UsageError(f"--only names sinks that are not in the config: {', '.join(sorted(unknown))}")
        return config.model_copy(update={n: None for n in enabled if only and n not in only})

    def reads(self, config: SinkRoleConfig) -> list[str]:
        return [topic_of(n, s) for n, s in config.enabled().items()]

    def writes(self, config: SinkRoleConfig) -> list[TopicSpec]:
        return [dlq_spec()]  # records that are not envelopes

    def installation_topics(self, partitions: int) -> list[TopicSpec]:
        return [route_spec(route(n), partitions) for n in SINKS.names()]

    def directories(self, config: SinkRoleConfig) -> dict[str, str]:
        out = {}
        for name, settings in config.enabled().items():
            for fld, path in getattr(settings, "directories", lambda: {})().items():
                out[f"{name}.{fld}"] = path
        return out

    def problems(self, config: SinkRoleConfig, filename: str) -> list[str]:
        if not config.enabled():
            return [f"{filename}:1: no sink configured (add a {', '.join(SINKS.names())} section)"]
        return []

    def services(self, config: SinkRoleConfig, runtime: Runtime) -> list:
        return build_services(config, runtime.transport, runtime=runtime)

    def up_config(self, ctx) -> SinkRoleConfig:
        """Every sink, with local defaults under the workdir (see processors/sinks/up.py)."""
        from logtide.config import validate_config
        from logtide.processors.sinks.up import local_defaults

        opts = dict(ctx.options or {})
        defaults = local_defaults(ctx.workdir)
        data = {
            name: {**defaults[name], **(opts.get(name) or {})} for name in defaults if opts.get(name, {}) is not None
        }
        return validate_config({"kafka": ctx.kafka.model_dump(), **data}, SinkConfig, "logtide up roles.30-sink")


ROLE = SinkRole()

"""`logtide collect`: the pull collectors a config names, sharing work items among replicas."""

from __future__ import annotations

from logtide.config import ConfigError
from logtide.role import Role, Runtime
from logtide.topics import checkpoints_spec, raw_spec
from logtide.transport import TopicSpec

from logtide.collectors.config import CollectRoleConfig
from logtide.collectors.registry import COLLECTORS

CollectConfig = COLLECTORS.sections_model(CollectRoleConfig, "CollectConfig")


class CollectRole(Role):
    name = "collect"
    config_model = CollectConfig

    def writes(self, config: CollectRoleConfig) -> list[TopicSpec]:
        return [raw_spec(config.section(n).topic, config.topic_partitions) for n in config.named()] + [
            checkpoints_spec()
        ]

    def installation_topics(self, partitions: int) -> list[TopicSpec]:
        defaults = {c.settings.model_fields["topic"].default for c in map(COLLECTORS.__getitem__, COLLECTORS.names())}
        return [raw_spec(t, partitions) for t in sorted(defaults)] + [checkpoints_spec()]

    def describe(self, config: CollectRoleConfig) -> str:
        return f"collect: {', '.join(config.named())} -> " + ", ".join(
            sorted({config.section(n).topic for n in config.named()})
        )

    def services(self, config: CollectRoleConfig, runtime: Runtime) -> list:
        from logtide.collectors.work import WorkGroup

        groups = []
        for name in config.named():
            try:
                collector = COLLECTORS[name].build(config.section(name), runtime.transport)
            except Exception as exc:  # e.g. kubernetes' ConfigException: no kubeconfig and not in a cluster
                raise ConfigError(f"collector {name} cannot start: {exc}") from None
            group = WorkGroup(
                runtime.transport,
                collector,
                config.work.session_timeout_seconds,
                config.work.revoke_timeout_seconds,
                status=runtime.status(f"collect-{name}"),
            )
            runtime.health.add_readiness(group.name, group.joined.is_set)
            groups.append(group)
        return groups


ROLE = CollectRole()

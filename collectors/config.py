"""Config of `logtide collect`: the shared role settings plus one section per collector to run."""

from __future__ import annotations

from pydantic import Field, model_validator

from logtide.config import Model
from logtide.role import RoleConfig


class WorkSettings(Model):
    """How replicas share work items (consumer-group membership on the collector's work topic)."""

    #: A replica that stops heart-beating loses its items after this long (kill -9, network split).
    session_timeout_seconds: float = Field(default=10, ge=3)
    #: How long a replica may take to flush and checkpoint an item it is asked to give up.
    revoke_timeout_seconds: float = Field(default=60, gt=0)


class CollectRoleConfig(RoleConfig):
    """Every collector section present (see collectors.registry) is a collector this process runs."""

    work: WorkSettings = Field(default_factory=WorkSettings)
    topic_partitions: int = Field(default=3, ge=1, description="partitions of logtide.raw.<source> if created")

    @model_validator(mode="after")
    def _something_to_run(self):
        if not self.named():
            from logtide.collectors.registry import COLLECTORS

            raise ValueError(f"name at least one collector: a {', '.join(repr(n) for n in COLLECTORS.names())} section")
        return self

    def named(self) -> list[str]:
        return [
            n
            for n in type(self).model_fields
            if n not in CollectRoleConfig.model_fields and getattr(self, n) is not None
        ]

    def section(self, name: str):
        return getattr(self, name)


def __getattr__(name: str):
    if name == "CollectConfig":  # built from the registry once every collector registered itself
        from logtide.collectors.role import CollectConfig

        return CollectConfig
    raise AttributeError(name)

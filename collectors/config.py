"""Config of `logtide collect`: the shared role settings plus one section per collector to run."""

from __future__ import annotations

from pydantic import Field, model_validator

from logtide.config import Model
from logtide.role import RoleConfig

from logtide.collectors.cloudwatch.config import CloudWatchConfig
from logtide.collectors.k8s.config import KubernetesConfig
from logtide.collectors.salesforce.config import SalesforceConfig


class WorkSettings(Model):
    """How replicas share work items (consumer-group membership on the collector's work topic)."""

    #: A replica that stops heart-beating loses its items after this long (kill -9, network split).
    session_timeout_seconds: float = Field(default=10, ge=3)
    #: How long a replica may take to flush and checkpoint an item it is asked to give up.
    revoke_timeout_seconds: float = Field(default=60, gt=0)


class CollectConfig(RoleConfig):
    """Every section present (cloudwatch, salesforce, k8s) is a collector this process runs."""

    work: WorkSettings = Field(default_factory=WorkSettings)
    topic_partitions: int = Field(default=3, ge=1, description="partitions of logtide.raw.<source> if created")
    cloudwatch: CloudWatchConfig | None = None
    salesforce: SalesforceConfig | None = None
    k8s: KubernetesConfig | None = None

    @model_validator(mode="after")
    def _something_to_run(self):
        if not self.named():
            raise ValueError("name at least one collector: a 'cloudwatch', 'salesforce' or 'k8s' section")
        return self

    def named(self) -> list[str]:
        return [n for n in ("cloudwatch", "salesforce", "k8s") if getattr(self, n) is not None]


def build(name: str, config: CollectConfig, transport):
    """The collector object for one section (clients imported only for the collectors used)."""
    if name == "cloudwatch":
        from logtide.collectors.cloudwatch.collector import CloudWatchCollector
        return CloudWatchCollector(config.cloudwatch, transport)
    if name == "salesforce":
        from logtide.collectors.salesforce.collector import SalesforceCollector
        return SalesforceCollector(config.salesforce, transport)
    from logtide.collectors.k8s.collector import KubernetesCollector
    return KubernetesCollector(config.k8s, transport)

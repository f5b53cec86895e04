"""Kubernetes API collector: pod logs streamed from the API server (clusters without a DaemonSet, e.g. Fargate)."""

from logtide.collectors.k8s.config import KubernetesConfig
from logtide.collectors.registry import COLLECTORS


@COLLECTORS.register("k8s", KubernetesConfig)
def build(settings: KubernetesConfig, transport):
    from logtide.collectors.k8s.collector import KubernetesCollector

    return KubernetesCollector(settings, transport)

"""The envelope's ``resource`` for one container's file: OTel k8s attributes from path and metadata."""

from __future__ import annotations

import re

from logtide.agents.path_info import PodRef
from logtide.agents.pod_metadata import PodMeta

_HASH_SUFFIX = re.compile(r"-[0-9a-z]{5,10}$")
_OWNER_ATTR = {
    "ReplicaSet": "k8s.replicaset.name",
    "StatefulSet": "k8s.statefulset.name",
    "DaemonSet": "k8s.daemonset.name",
    "Job": "k8s.job.name",
    "CronJob": "k8s.cronjob.name",
}


def k8s_resource(ref: PodRef, meta: PodMeta | None, node: str | None, labels: bool, annotations: bool) -> dict:
    res = {
        "k8s.namespace.name": ref.namespace,
        "k8s.pod.name": ref.pod,
        "k8s.container.name": ref.container,
    }
    if ref.uid:
        res["k8s.pod.uid"] = ref.uid
    if ref.restart is not None:
        res["k8s.container.restart_count"] = ref.restart
    if node:
        res["k8s.node.name"] = node
    service = None
    if meta is not None:
        res["k8s.pod.uid"] = meta.uid
        if meta.node:
            res["k8s.node.name"] = meta.node
        if meta.owner_kind and meta.owner_name:
            res[_OWNER_ATTR.get(meta.owner_kind, "k8s.owner.name")] = meta.owner_name
            if meta.owner_kind == "ReplicaSet" and "pod-template-hash" in meta.labels:
                # Deployment pods are owned by a ReplicaSet named <deployment>-<pod-template-hash>.
                res["k8s.deployment.name"] = _HASH_SUFFIX.sub("", meta.owner_name)
        image = meta.images.get(ref.container)
        if image:
            name, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
            res["container.image.name"] = name
            if tag:
                res["container.image.tag"] = tag
        if labels:
            for k, v in meta.labels.items():
                res[f"k8s.pod.labels.{k}"] = v
        if annotations:
            for k, v in meta.annotations.items():
                res[f"k8s.pod.annotations.{k}"] = v
        service = (
            meta.labels.get("app.kubernetes.io/name")
            or meta.labels.get("app")
            or res.get("k8s.deployment.name")
            or res.get("k8s.statefulset.name")
            or res.get("k8s.daemonset.name")
        )
    res["service.name"] = service or ref.container
    return res

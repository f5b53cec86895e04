"""Which containers' logs are left out: namespace include/exclude globs and the pod/namespace
annotations ``logtide.io/exclude: "true"`` and ``logtide.io/exclude-containers: "a,b"``."""

from __future__ import annotations

import fnmatch

from logtide.agents.config import KubernetesSettings
from logtide.agents.path_info import PodRef
from logtide.agents.pod_metadata import EXCLUDE_ANNOTATION, EXCLUDE_CONTAINERS_ANNOTATION, PodMeta


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "yes", "1")


def exclusion_reason(
    ref: PodRef, meta: PodMeta | None, namespace_annotations: dict, settings: KubernetesSettings
) -> str | None:
    """Why this container is excluded ("namespace", "annotation", "container"), or None."""
    ns = ref.namespace
    if settings.namespaces_include and not any(fnmatch.fnmatchcase(ns, p) for p in settings.namespaces_include):
        return "namespace"
    if any(fnmatch.fnmatchcase(ns, p) for p in settings.namespaces_exclude):
        return "namespace"
    if _true(namespace_annotations.get(EXCLUDE_ANNOTATION)):
        return "annotation"
    if meta is not None:
        if _true(meta.annotations.get(EXCLUDE_ANNOTATION)):
            return "annotation"
        names = {c.strip() for c in (meta.annotations.get(EXCLUDE_CONTAINERS_ANNOTATION) or "").split(",")}
        if ref.container in names:
            return "container"
    return None

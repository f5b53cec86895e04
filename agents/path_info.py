"""What a container log file's path says about its pod (the kubelet's layouts).

- ``/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`` (the real files)
- ``/var/log/containers/<pod>_<namespace>_<container>-<container id>.log`` (symlinks to them)
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple


class PodRef(NamedTuple):
    namespace: str
    pod: str
    uid: str | None
    container: str
    restart: int | None
    container_id: str | None

    @property
    def key(self) -> str:
        """The stream key in Kafka (one container's order is kept)."""
        return f"{self.namespace}/{self.pod}/{self.container}"


_CONTAINERS = re.compile(r"^(?P<pod>[^_]+)_(?P<ns>[^_]+)_(?P<container>.+)-(?P<id>[0-9a-f]{64})\.log$")


def from_pods_path(path: str) -> PodRef | None:
    parts = path.split(os.sep)
    if len(parts) < 3 or ".log" not in parts[-1]:
        return None
    pod_dir, container, name = parts[-3], parts[-2], parts[-1]
    fields = pod_dir.split("_")
    if len(fields) != 3 or not all(fields):
        return None
    restart = name.split(".log", 1)[0]  # "3.log", or rotated by the kubelet: "3.log.20240501-120000"
    return PodRef(fields[0], fields[1], fields[2], container, int(restart) if restart.isdigit() else None, None)


def from_containers_path(path: str) -> PodRef | None:
    m = _CONTAINERS.match(os.path.basename(path))
    if not m:
        return None
    return PodRef(m["ns"], m["pod"], None, m["container"], None, m["id"])


def pod_ref(path: str, real_path: str | None = None) -> PodRef | None:
    """Parse the kubelet's layout from the file's real path first, then from the path it was found at."""
    for candidate in (real_path, path):
        if candidate:
            ref = from_pods_path(candidate) or from_containers_path(candidate)
            if ref is not None:
                return ref
    return None

"""`logtide up` part: the three sinks with local defaults under the workdir.

Audit archive in ``<workdir>/audit`` (HMAC key generated once in ``<workdir>/audit.key``), Parquet in
``<workdir>/parquet`` (query it: ``logtide query --path <workdir>/parquet "..."``), monitoring counters
on the shared /metrics. Per-sink settings can be given under ``roles: {30-sink: {...}}`` in up.yaml
with the same sections as `logtide sink` (monitoring, audit, analytics).
"""

from __future__ import annotations

import os
import secrets

from logtide.config import validate_config

from logtide.processors.sinks.build import build_services
from logtide.processors.sinks.config import SinkConfig


def _key(path) -> str:
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip()


def up(ctx) -> list:
    opts = dict(ctx.options or {})
    quick = {"session_timeout_seconds": 10}  # one machine: a group join in ~5 s instead of ~23 s
    defaults = {
        "monitoring": {**quick},
        "audit": {**quick, "storage": {"path": str(ctx.workdir / "audit")}, "hmac_key": _key(ctx.workdir / "audit.key")},
        "analytics": {**quick, "parquet": {"path": str(ctx.workdir / "parquet"), "compact_after_seconds": 0}},
    }
    data = {name: {**defaults[name], **(opts.get(name) or {})} for name in defaults if opts.get(name, {}) is not None}
    config = validate_config({"kafka": ctx.kafka.model_dump(), **data}, SinkConfig, "logtide up roles.30-sink")
    services = build_services(config, ctx.transport)
    for svc in services:
        ctx.health.add_readiness(svc.name, svc.ready)
    return services

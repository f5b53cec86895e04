"""`logtide up` part: the agent in files mode, tailing ``<workdir>/agent-logs/*.log`` (nothing writes
there unless you do; idle it costs a glob a few seconds). ``roles: {"10-agent": {...}}`` in the up
config gives any agent config field, plus ``path`` as a shorthand for ``include: [path]``."""

from __future__ import annotations

import os

from logtide.agents.config import AgentConfig
from logtide.config import validate_config


def up(ctx) -> list:
    from logtide.agents.cli import build_agent

    options = dict(ctx.options or {})
    logs = ctx.workdir / "agent-logs"
    os.makedirs(logs, exist_ok=True)
    path = options.pop("path", None)
    data = {"mode": "files", "include": [path or str(logs / "*.log")],
            "checkpoint_dir": str(ctx.workdir / "agent-state"), "read": {"scan_interval_seconds": 2.0}}
    data.update(options)
    data["kafka"] = ctx.kafka.model_dump()
    config = validate_config(data, AgentConfig, "logtide up roles.10-agent")
    return [build_agent(config, ctx.transport)]

"""`logtide up` part: the agent in files mode, tailing ``<workdir>/agent-logs/*.log`` (nothing writes
there unless you do; idle it costs a glob a few seconds). ``roles: {"10-agent": {...}}`` in the up
config gives any agent config field, plus ``path`` as a shorthand for ``include: [path]``."""

from __future__ import annotations


def up(ctx) -> list:
    from logtide.agents.cli import ROLE

    return ROLE.up(ctx)

"""`logtide up` part: the alerting engine with the sample rules (examples/alert-rules.yaml) and a
local webhook receiver that prints every notification it gets (signatures verified).

Options under ``roles: {"40-alert": {...}}`` in the up config: ``rules`` (a rules file),
``topics`` (default: logtide.route.monitoring), ``api_port`` (default: any free port),
``session_timeout_seconds`` (consumer group).
"""

from __future__ import annotations

from logtide import log

from logtide.alerting.role import ROLE, SAMPLE_RULES  # noqa: F401 - SAMPLE_RULES: where it always was

_log = log.get("alerting.up")


def up(ctx) -> list:
    services = ROLE.up(ctx)
    api = next(s for s in services if s.name == "alert-api")
    print(f"logtide up: alerting API {api.url}/api/v2/alerts  webhook receiver {services[0].url}", flush=True)
    return services

"""`logtide up` part: the alerting engine with the sample rules (examples/alert-rules.yaml) and a
local webhook receiver that prints every notification it gets (signatures verified).

Options under ``roles: {"40-alert": {...}}`` in the up config: ``rules`` (a rules file),
``topics`` (default: logtide.route.monitoring), ``api_port`` (default: any free port),
``session_timeout_seconds`` (consumer group).
"""

from __future__ import annotations

import secrets as _secrets
from pathlib import Path

from logtide import log

from logtide.alerting.config import AlertConfig
from logtide.alerting.engine import build
from logtide.alerting.receiver import PrintingReceiver

_log = log.get("alerting.up")

# A link to examples/alert-rules.yaml in the repo; a real file inside an installed wheel.
SAMPLE_RULES = Path(__file__).with_name("sample-rules.yaml")


def up(ctx) -> list:
    opts = dict(ctx.options or {})
    secret = _secrets.token_hex(16)
    receiver = PrintingReceiver(secrets=[secret])
    rules = opts.get("rules") or str(SAMPLE_RULES)
    config = AlertConfig.model_validate({
        "kafka": ctx.kafka.model_dump(),
        "topics": opts.get("topics") or ["logtide.route.monitoring"],
        "rules_files": [rules],
        "state_path": str(Path(ctx.workdir) / "alerting.db"),
        "external_url": "http://127.0.0.1",
        "api": {"host": "127.0.0.1", "port": int(opts.get("api_port", 0))},
        "route": {"receiver": "local", "group_by": ["alertname", "service_name"], "group_wait": "5s",
                  "group_interval": "1m", "repeat_interval": "1h"},
        "receivers": [{"name": "local", "webhook": [{"url": receiver.url, "secrets": [secret]}]}],
    })
    overrides = {"session_timeout_seconds": float(opts["session_timeout_seconds"])} if "session_timeout_seconds" in opts else {}
    engine, services = build(config, ctx.transport, **overrides)
    api = services[-1]
    print(f"logtide up: alerting API {api.url}/api/v2/alerts  rules {rules}  webhook receiver {receiver.url}",
          flush=True)
    return [receiver] + services

"""`logtide up`: the whole platform on one machine.

Starts the embedded broker when no bootstrap servers are configured, then runs every role that
contributes to ``logtide up`` through the ``logtide.up`` entry point group (the demo source, the
agent, processors, sinks, alerting …) the way ``logtide <role>`` runs one (``logtide.role``): their
directories checked first, the topics of every registered role created, each service in its own
thread, sharing one /metrics port.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import orjson
from pydantic import Field

from logtide import log
from logtide.broker import EmbeddedBroker, default_log_path
from logtide.config import ConfigError, load_config
from logtide.health import HealthServer
from logtide.role import (
    FileKind,
    Role,
    RoleConfig,
    Runtime,
    Service,
    apply_arguments,
    check_directories,
    connect_checked,
    install_signal_handlers,
    run_services,
    start_roles,
)
from logtide.topics import describe
from logtide.transport import KafkaSettings, TopicSpec, Transport

_log = log.get("logtide.up")


class UpConfig(RoleConfig):
    """Config of `logtide up`: shared Kafka/HTTP settings plus optional per-role sections."""

    workdir: str | None = Field(default=None, description="where roles keep local state (default: a temp dir)")
    partitions: int = Field(default=3, ge=1, description="partitions of each raw/route topic created at start")
    #: Per-role settings, validated by each role's own model (keys are the entry point names).
    roles: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: Roles to leave out, by entry point name.
    disable: list[str] = Field(default_factory=list)


@dataclass
class UpContext:
    """What a role gets to build its part of `logtide up`."""

    kafka: KafkaSettings
    transport: Transport | None
    workdir: Path
    health: HealthServer | None
    options: dict[str, Any] = field(default_factory=dict)
    #: Set by `logtide up --rate`: events per second for demo sources.
    rate: float = 200.0
    #: Partitions of the topics roles create.
    partitions: int = 3
    #: Services a role's up_config started besides its own (e.g. a local webhook receiver).
    extra_services: list = field(default_factory=list)


class UpFile(FileKind):
    """An up config (examples/up.yaml), for ``logtide check``."""

    name = "up"

    def keys(self) -> frozenset[str]:
        return frozenset(UpConfig.model_fields) - frozenset(RoleConfig.model_fields)

    def check(self, path: str) -> tuple[list[str], str]:
        try:
            config = load_config(path, UpConfig)
        except ConfigError as exc:
            return str(exc).splitlines(), ""
        return [], f"up: {len(config.roles)} role sections, {len(config.disable)} disabled"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "up",
        help="run everything on one machine (embedded broker, demo source, all roles)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  logtide up --duration 60   run a minute, then print JSON counts per topic",
    )
    p.add_argument("--config", "-c", metavar="FILE", help="YAML config (examples/up.yaml)")
    p.add_argument("--bootstrap", metavar="HOST:PORT", help="use this Kafka instead of the embedded broker")
    p.add_argument("--http-port", type=int, metavar="N", help="port for /metrics, /healthz, /readyz (default 9464)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds and print counts per topic")
    p.add_argument("--rate", type=float, default=200.0, metavar="N", help="demo events per second (default 200)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run)


def contributors() -> list[tuple[str, Any]]:
    return [(ep.name, ep) for ep in sorted(entry_points(group="logtide.up"), key=lambda e: e.name)]


def registered_roles() -> list[Role]:
    """Every role installed (``logtide.roles`` entry points), whether `up` runs it or not."""
    out = []
    for ep in sorted(entry_points(group="logtide.roles"), key=lambda e: e.name):
        kind = ep.load()
        if isinstance(kind, Role):
            out.append(kind)
    return out


def installation_topics(partitions: int, roles: list[Role]) -> list[TopicSpec]:
    """The topics of a whole installation: those every registered role (and ``roles``) declares for it."""
    specs: dict[str, TopicSpec] = {}
    for role in registered_roles() + roles:
        for spec in role.installation_topics(partitions):
            specs.setdefault(spec.name, spec)
    return list(specs.values())


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, UpConfig) if args.config else UpConfig()
    config = apply_arguments(config, args)
    workdir = Path(config.workdir or tempfile.mkdtemp(prefix="logtide-up-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # Every role's config first: a mistake or an unwritable directory stops us before anything starts.
    parts: list[tuple[Role, RoleConfig, str]] = []
    extra: list[Service] = []
    for name, ep in contributors():
        if name in config.disable:
            continue
        role = ep.load()
        ctx = UpContext(
            kafka=config.kafka,
            transport=None,
            workdir=workdir,
            health=None,
            options=config.roles.get(name, {}),
            rate=args.rate,
            partitions=config.partitions,
        )
        parts.append((role, role.up_config(ctx), f"{args.config or 'logtide up'} roles.{name}"))
        extra += ctx.extra_services
    check_directories(parts)
    stop = threading.Event()
    install_signal_handlers(stop)  # before the broker starts: a signal must never orphan it
    broker = None
    if not config.kafka.bootstrap:
        broker = EmbeddedBroker(log_file=default_log_path()).start()
        config = config.model_copy(update={"kafka": config.kafka.model_copy(update={"bootstrap": broker.bootstrap})})
        _log.info("embedded broker started", extra={"bootstrap": broker.bootstrap, "log": str(broker.log_file)})
        parts = [(role, cfg.model_copy(update={"kafka": config.kafka}), where) for role, cfg, where in parts]
    started = time.monotonic()
    health = None
    runtime = None
    try:
        transport = connect_checked(config.kafka)
        admin = transport.admin()
        try:
            admin.create_topics(installation_topics(config.partitions, [role for role, _, _ in parts]))
        finally:
            admin.close()
        health = HealthServer(config.http.host, config.http.port).start()
        runtime = Runtime(config.kafka, transport, health, config.http.health)
        services = extra + start_roles(parts, runtime)
        print(
            f"logtide up: kafka {config.kafka.bootstrap}  metrics {health.url}/metrics  "
            f"roles: {', '.join(s.name for s in services) or 'none'}  (Ctrl-C stops)",
            flush=True,
        )
        code = run_services(services, stop, health, duration=args.duration)
        if args.duration:
            summary = {
                "bootstrap": config.kafka.bootstrap,
                "seconds": round(time.monotonic() - started, 1),
                "services": [s.name for s in services],
                "topics": {t["topic"]: t["records"] for t in describe(transport)},
            }
            print(orjson.dumps(summary).decode(), flush=True)
        return code
    finally:
        if runtime is not None:
            runtime.close()
        if health is not None:
            health.stop()
        if broker is not None:
            broker.stop()
            if os.path.exists(broker.log_file) and os.path.getsize(broker.log_file) == 0:
                os.unlink(broker.log_file)

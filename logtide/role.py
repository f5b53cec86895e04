"""What every long-running role shares, and the one way each of them starts.

A role (``agent``, ``collect``, ``process``, ``sink``, ``alert``, the demo source) is a ``Role``: it
declares its config model, the topics it reads and writes, the local directories it needs, and builds
a *named* set of services. ``run_role`` does the rest, the same for every role:

    config (file + flags) → directories writable? (exit 2 naming the field, before anything connects)
    → health endpoint → signals → Kafka (waits while it does not answer: /readyz false)
    → create the topics it writes → build the services → run them until SIGINT/SIGTERM.

A consumer whose input topic does not exist yet waits for it (``logtide.consume.BatchLoop``), /readyz
false meanwhile. ``logtide up`` runs several roles through the same steps (``start_roles``).
``check_file`` validates a config offline (``logtide <role> --check``, ``logtide check FILE…``).
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from collections.abc import Callable

from pydantic import ConfigDict, Field

from logtide import log
from logtide.config import ConfigError, Model, line_of, load_config, load_yaml
from logtide.health import HealthPolicy, HealthServer, HttpSettings, ServiceStatus
from logtide.transport import KafkaSettings, TopicSpec, Transport, TransportError, TransportRefused, connect, tls

_log = log.get("logtide.role")


class RoleConfig(Model):
    """Fields every role's config has; a component's config model subclasses this."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    log_level: str = "info"


class Service(Protocol):
    """A unit of work a role runs in its own thread until ``stop`` is set."""

    name: str

    def run(self, stop: threading.Event) -> None: ...


def add_role_arguments(parser: argparse.ArgumentParser, config_required: bool = False) -> None:
    parser.add_argument(
        "--config", "-c", required=config_required, metavar="FILE", help="YAML config file (see examples/)"
    )
    parser.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        help="Kafka bootstrap servers (over $LOGTIDE_BOOTSTRAP over kafka.bootstrap in the config)",
    )
    parser.add_argument("--http-port", type=int, metavar="N", help="port for /metrics, /healthz, /readyz")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="log level")
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate the config offline (regexes, conditions, templates, directories, secrets) "
        "and exit: 0, or 2 with one 'file:line: field: reason' line per problem",
    )


def kafka_settings(config_value: KafkaSettings, flag: str | None) -> KafkaSettings:
    """Bootstrap precedence: --bootstrap flag, then $LOGTIDE_BOOTSTRAP, then the config file."""
    bootstrap = flag or os.environ.get("LOGTIDE_BOOTSTRAP") or config_value.bootstrap
    return config_value.model_copy(update={"bootstrap": bootstrap})


class _KafkaBlock(Model):
    """What a command that runs no role reads of a role's config file: its ``kafka:`` block (the rest
    is that role's business and is not checked here)."""

    model_config = ConfigDict(extra="ignore")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)


def add_kafka_arguments(parser: argparse.ArgumentParser) -> None:
    """--bootstrap, --config and --client for the commands that talk to Kafka without running a role
    (``logtide topics``, the day-2 tools)."""
    parser.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        help="Kafka bootstrap servers (over $LOGTIDE_BOOTSTRAP over the --config file's kafka.bootstrap)",
    )
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="a logtide config file (any role's: its kafka: block is read) saying how to reach Kafka: "
        "TLS, SASL, client properties (default: $LOGTIDE_KAFKA_CONFIG)",
    )
    parser.add_argument(
        "--client",
        choices=["auto", "confluent", "kafka-python"],
        default=None,
        help="Kafka client library (default: the --config file's kafka.client, else the fastest installed)",
    )


def command_kafka_settings(args: argparse.Namespace) -> KafkaSettings:
    """How such a command reaches Kafka: the ``kafka:`` block of --config / $LOGTIDE_KAFKA_CONFIG (the
    block every role's config has, so a TLS or SASL cluster is reached with a role's own file), then
    --bootstrap / $LOGTIDE_BOOTSTRAP over its bootstrap and --client over its client. A wrong file is a
    ConfigError naming file:line and field; no bootstrap at all is one too."""
    path = getattr(args, "config", None) or os.environ.get("LOGTIDE_KAFKA_CONFIG")
    base = load_config(path, _KafkaBlock).kafka if path else KafkaSettings()
    if getattr(args, "client", None):
        base = base.model_copy(update={"client": args.client})
    settings = kafka_settings(base, getattr(args, "bootstrap", None))
    if not settings.bootstrap:
        raise ConfigError(
            "no Kafka to talk to: pass --bootstrap HOST:PORT, set LOGTIDE_BOOTSTRAP, "
            "or --config FILE with kafka.bootstrap"
        )
    return settings


def apply_arguments(config: RoleConfig, args: argparse.Namespace) -> RoleConfig:
    """Apply the shared flags over a loaded config."""
    update: dict[str, Any] = {"kafka": kafka_settings(config.kafka, getattr(args, "bootstrap", None))}
    if getattr(args, "http_port", None) is not None:
        update["http"] = config.http.model_copy(update={"port": args.http_port})
    if getattr(args, "log_level", None):
        update["log_level"] = args.log_level
    return config.model_copy(update=update)


def connect_checked(settings: KafkaSettings, timeout: float = 10.0) -> Transport:
    """Connect and make sure the cluster answers, so an unreachable broker is one clear error at start.

    Retries for ``timeout`` seconds (a broker that is just starting gets a chance), each attempt
    bounded, so the whole check never takes much longer than ``timeout``. Over TLS, a handshake of
    our own comes first (logtide/transport/tls.py): a refusal (untrusted CA, wrong host, client
    certificate, plaintext listener, unreadable key), like a refused SASL login, is
    ``TransportRefused`` at once, not retried.
    """
    transport = connect(settings)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        attempt = max(1.0, min(5.0, deadline - time.monotonic()))
        try:
            if tls.check(settings, timeout=attempt):
                transport.reach(attempt)
                return transport
            last = TransportError("no bootstrap server accepts connections")
        except TransportRefused:
            raise
        except TransportError as exc:
            last = exc
        if time.monotonic() + 1 >= deadline:
            break
        time.sleep(1)
    reason = str(last).removeprefix(f"cannot reach Kafka at {settings.bootstrap}: ")
    raise TransportError(
        f"Kafka at {settings.bootstrap} is unreachable after {timeout:.0f}s ({reason}): "
        "check kafka.bootstrap, $LOGTIDE_BOOTSTRAP or --bootstrap, and that the broker runs"
    )


def connect_waiting(settings: KafkaSettings, stop: threading.Event, status: ServiceStatus) -> Transport | None:
    """Connect, waiting as long as it takes (a pod may start before the broker answers): ``status``
    says so on /readyz meanwhile. None when ``stop`` was set first. A refusal is raised at once."""
    while not stop.is_set():
        try:
            transport = connect_checked(settings, timeout=5.0)
            status.ready()
            return transport
        except TransportRefused:
            raise  # a refusal (TLS, SASL) does not heal by waiting: one line, exit 2
        except TransportError as exc:
            status.waiting(str(exc))
        stop.wait(2.0)
    return None


def install_signal_handlers(stop: threading.Event) -> None:
    """SIGINT/SIGTERM set ``stop`` (services drain and checkpoint); a second SIGINT exits at once."""

    def handler(signum, frame):
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        _log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)


def run_services(
    services: list[Service],
    stop: threading.Event,
    health: HealthServer | None = None,
    duration: float | None = None,
    on_tick: Callable[[], None] | None = None,
) -> int:
    """Run each service in a thread until ``stop`` (or ``duration``); a crashed service stops all.

    Returns 0 on a clean stop, 1 when a service crashed.
    """
    crashed: list[str] = []

    def wrap(svc: Service) -> None:
        try:
            svc.run(stop)
        except Exception:
            _log.exception("service crashed", extra={"service": svc.name})
            crashed.append(svc.name)
            stop.set()

    threads = [threading.Thread(target=wrap, args=(s,), name=s.name, daemon=True) for s in services]
    if health is not None:
        health.add_liveness("services", lambda: all(t.is_alive() for t in threads) or stop.is_set())
    for t in threads:
        t.start()
    deadline = time.monotonic() + duration if duration else None
    while not stop.is_set():
        if deadline and time.monotonic() >= deadline:
            stop.set()
            break
        stop.wait(0.2)
        if on_tick:
            on_tick()
    for t in threads:
        t.join(timeout=30)
        if t.is_alive():
            _log.error("service did not stop within 30s", extra={"service": t.name})
    return 1 if crashed else 0


def start_health(http: HttpSettings) -> HealthServer:
    server = HealthServer(http.host, http.port).start()
    _log.info("serving /metrics /healthz /readyz", extra={"url": server.url})
    return server


# --- the role abstraction -------------------------------------------------------------------------


@dataclass
class Runtime:
    """What a role gets to build its services: Kafka, the health endpoint, and a status per service."""

    kafka: KafkaSettings
    transport: Transport
    health: HealthServer
    policy: HealthPolicy = field(default_factory=HealthPolicy)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def status(self, name: str) -> ServiceStatus:
        """The status object a service reports its failures and waits to (/healthz, /readyz)."""
        status = ServiceStatus(name, self.policy)
        self.health.add_status(status)
        return status

    def on_close(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` after every service stopped (e.g. close a state store)."""
        self.closers.append(fn)

    def close(self) -> None:
        for fn in reversed(self.closers):
            try:
                fn()
            except Exception:  # noqa: BLE001 - one failing cleanup must not skip the others; logged
                _log.exception("cleanup failed")
        self.closers.clear()


class FileKind:
    """A kind of YAML file ``logtide check`` recognizes and validates offline."""

    #: how the kind is called on the command line (``logtide check --role NAME``)
    name = ""

    def keys(self) -> frozenset[str]:
        """Top-level keys only this kind of file has (how ``logtide check`` tells the kinds apart)."""
        return frozenset()

    def check(self, path: str) -> tuple[list[str], str]:
        """Every problem as a ``file:line: field: reason`` line, and a summary when there is none."""
        raise NotImplementedError


class Role(FileKind):
    """A long-running role. Subclasses set ``name`` and ``config_model`` and build ``services``."""

    config_model: type[RoleConfig] = RoleConfig

    # --- declarations
    def keys(self) -> frozenset[str]:
        return frozenset(self.config_model.model_fields) - frozenset(RoleConfig.model_fields)

    def reads(self, config: RoleConfig) -> list[str]:
        """Topics (or patterns with '*') it consumes; a consumer waits for a topic that is not there."""
        return []

    def writes(self, config: RoleConfig) -> list[TopicSpec]:
        """Topics it produces to, created at start with their kind's settings (``logtide.topics``)."""
        return []

    def installation_topics(self, partitions: int) -> list[TopicSpec]:
        """Topics ``logtide up`` creates for this role even when it does not run it (later pods find them)."""
        return []

    def directories(self, config: RoleConfig) -> dict[str, str]:
        """Local directories it writes, by config field (dotted): each must be writable at start."""
        return {}

    def problems(self, config: RoleConfig, filename: str) -> list[str]:
        """Offline checks beyond the config model (a pipeline, rule files), as ``file:line: ...`` lines."""
        return []

    def describe(self, config: RoleConfig) -> str:
        """What the config makes the role do, for the ``--check`` line."""
        return (
            f"{self.name}: reads {', '.join(self.reads(config)) or 'nothing'}; "
            f"writes {', '.join(t.name for t in self.writes(config)) or 'nothing'}"
        )

    # --- building
    def load_file(self, path: str) -> RoleConfig:
        return load_config(path, self.config_model)

    def default_config(self, args: argparse.Namespace) -> RoleConfig:
        """The config when no --config is given (roles that require one say so)."""
        from logtide.cli import UsageError

        raise UsageError(f"give --config FILE (see examples/{self.name}.yaml)")

    def configure(self, config: RoleConfig, args: argparse.Namespace) -> RoleConfig:
        """Apply the role's own flags (beyond the shared ones) over a loaded config."""
        return config

    def load(self, args: argparse.Namespace) -> tuple[RoleConfig, str]:
        path = getattr(args, "config", None)
        config = self.load_file(path) if path else self.default_config(args)
        return self.configure(apply_arguments(config, args), args), path or "command line"

    def services(self, config: RoleConfig, runtime: Runtime) -> list[Service]:
        """The named services the role runs (each service's ``name`` is its name on /readyz)."""
        raise NotImplementedError

    # --- offline check
    def check(self, path: str) -> tuple[list[str], str]:
        try:
            config = self.load_file(path)
        except ConfigError as exc:
            return str(exc).splitlines(), ""
        problems = directory_problems(self, config, path, create=False) + self.problems(config, path)
        return problems, ("" if problems else self.describe(config))

    # --- `logtide up`
    def up_config(self, ctx) -> RoleConfig:
        """The config this role runs with in ``logtide up`` (``ctx`` is ``logtide.up.UpContext``)."""
        raise NotImplementedError

    def up(self, ctx) -> list[Service]:
        """Prepare and build this role's part of ``logtide up`` on ``ctx``'s transport and health server."""
        config = self.up_config(ctx)
        parts = [(self, config, f"logtide up roles.{self.name}")]
        check_directories(parts)
        runtime = Runtime(ctx.kafka, ctx.transport, ctx.health, config.http.health)
        return list(ctx.extra_services) + start_roles(parts, runtime)


# --- directories ------------------------------------------------------------------------------------


def directory_problem(path: str, create: bool) -> str | None:
    """Why ``path`` cannot be used as a writable directory (None when it can).

    Checked with a real write: root passes every permission check, but not a read-only mount or a
    path under a regular file. With ``create`` the directory is made; otherwise its nearest existing
    ancestor must be a writable directory (the role makes the rest at start).
    """
    p = Path(path).expanduser()
    try:
        if create:
            p.mkdir(parents=True, exist_ok=True)
        probe = p
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        if not probe.is_dir():
            return f"{probe} is not a directory"
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        return f"{exc.strerror.lower()} ({exc.filename or p})" if exc.strerror else str(exc)
    return None


def directory_problems(role: Role, config: RoleConfig, filename: str, create: bool) -> list[str]:
    dirs = role.directories(config)
    if not dirs:
        return []
    data = _yaml_or_none(filename)
    out = []
    for fld, path in dirs.items():
        problem = directory_problem(path, create)
        if problem:
            line = line_of(data, tuple(fld.split("."))) if data is not None else None
            out.append(
                f"{filename}:{line}: field '{fld}': directory {path} is not writable: {problem}"
                if line
                else f"{filename}: field '{fld}': directory {path} is not writable: {problem}"
            )
    return out


def _yaml_or_none(filename: str):
    try:
        return load_yaml(filename) if filename and os.path.isfile(filename) else None
    except ConfigError:
        return None


# --- running ----------------------------------------------------------------------------------------


def start_roles(parts: list[tuple[Role, RoleConfig, str]], runtime: Runtime) -> list[Service]:
    """Create every topic the roles write, build their services and register them on /readyz."""
    specs: dict[str, TopicSpec] = {}
    for role, config, _ in parts:
        for spec in role.writes(config):
            specs.setdefault(spec.name, spec)
    if specs:
        admin = runtime.transport.admin()
        try:
            admin.create_topics(list(specs.values()))
        finally:
            admin.close()
    services: list[Service] = []
    for role, config, _ in parts:
        for svc in role.services(config, runtime):
            ready = getattr(svc, "ready", None)
            if callable(ready):
                runtime.health.add_readiness(svc.name, ready)
            services.append(svc)
    return services


def check_directories(parts: list[tuple[Role, RoleConfig, str]]) -> None:
    """Make and probe every directory the roles need; ConfigError (exit 2) naming field and path."""
    problems = [p for role, config, filename in parts for p in directory_problems(role, config, filename, True)]
    if problems:
        raise ConfigError("\n".join(problems))


def print_check(kind: FileKind, path: str) -> int:
    """``--check``: one ``file: ok (...)`` line, or every problem on stderr and exit code 2."""
    import sys

    problems, summary = kind.check(path)
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        return 2
    print(f"{path}: ok ({summary})")
    return 0


def run_role(role: Role, args: argparse.Namespace) -> int:
    """The whole life of one role's process (``logtide agent|collect|process|sink|alert``)."""
    if getattr(args, "check", False):
        if not getattr(args, "config", None):
            from logtide.cli import UsageError

            raise UsageError("--check needs --config FILE")
        return print_check(role, args.config)
    config, filename = role.load(args)
    log.setup(config.log_level)
    if not config.kafka.bootstrap:
        from logtide.cli import UsageError

        raise UsageError("no Kafka: set kafka.bootstrap, $LOGTIDE_BOOTSTRAP or --bootstrap")
    # Everything that can be refused without connecting is refused now, with file:line (exit 2).
    problems = role.problems(config, filename)
    if problems:
        raise ConfigError("\n".join(problems))
    check_directories([(role, config, filename)])
    stop = threading.Event()
    install_signal_handlers(stop)
    health = start_health(config.http)
    kafka = ServiceStatus("kafka", config.http.health)
    health.add_status(kafka)
    runtime = None
    try:
        transport = connect_waiting(config.kafka, stop, kafka)
        if transport is None:
            return 0
        runtime = Runtime(config.kafka, transport, health, config.http.health)
        services = start_roles([(role, config, filename)], runtime)
        _log.info(
            f"{role.name} starting", extra={"services": [s.name for s in services], "bootstrap": config.kafka.bootstrap}
        )
        return run_services(services, stop, health, duration=getattr(args, "duration", None))
    finally:
        if runtime is not None:
            runtime.close()
        health.stop()

"""What every long-running role shares: its config base, CLI flags, Kafka settings precedence,
and running its services in threads with a health endpoint and a clean stop on SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from typing import Any, Callable, Protocol

from pydantic import Field

from logtide import log
from logtide.config import Model
from logtide.health import HealthServer, HttpSettings
from logtide.transport import KafkaSettings, Transport, TransportError, TransportRefused, connect, tls

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
    parser.add_argument("--config", "-c", required=config_required, metavar="FILE",
                        help="YAML config file (see examples/)")
    parser.add_argument("--bootstrap", metavar="HOST:PORT",
                        help="Kafka bootstrap servers (over $LOGTIDE_BOOTSTRAP over kafka.bootstrap in the config)")
    parser.add_argument("--http-port", type=int, metavar="N", help="port for /metrics, /healthz, /readyz")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="log level")


def kafka_settings(config_value: KafkaSettings, flag: str | None) -> KafkaSettings:
    """Bootstrap precedence: --bootstrap flag, then $LOGTIDE_BOOTSTRAP, then the config file."""
    bootstrap = flag or os.environ.get("LOGTIDE_BOOTSTRAP") or config_value.bootstrap
    return config_value.model_copy(update={"bootstrap": bootstrap})


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
    raise TransportError(f"Kafka at {settings.bootstrap} is unreachable after {timeout:.0f}s ({reason}): "
                         "check kafka.bootstrap, $LOGTIDE_BOOTSTRAP or --bootstrap, and that the broker runs")


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


def run_services(services: list[Service], stop: threading.Event, health: HealthServer | None = None,
                 duration: float | None = None, on_tick: Callable[[], None] | None = None) -> int:
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

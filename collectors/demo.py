"""Demo source for `logtide up`: synthetic but realistic application logs into logtide.raw.demo.

Several services on a pretend cluster write JSON and plain lines at mixed levels, with occasional
Java and Python stack traces and e-mail addresses (for the redaction step to find). The shape is that
of events from the node agent, so the rest of the pipeline treats them the same way.

The services are healthy (mostly INFO, a rare error) except one that misbehaves for a while, so the
example alert rules have something to page about and nothing else: by default ``payments`` has an
error burst (half its logs ERROR, some FATAL) from 30 s to 90 s after the start, then goes silent
from 120 s to 270 s, and the cycle repeats every 10 minutes (``incident`` under ``roles.00-demo``).
"""

from __future__ import annotations

from typing import Literal

import random
import threading
import time
import uuid
from dataclasses import dataclass
from collections.abc import Callable

import orjson
from prometheus_client import Counter

from pydantic import Field

from logtide import envelope, log
from logtide.role import Role, RoleConfig, Runtime
from logtide.sender import EventSender
from logtide.topics import raw, raw_spec
from logtide.transport import TopicSpec

TOPIC = raw("demo")
_log = log.get("collectors.demo")

DEMO_EVENTS = Counter("logtide_demo_events_total", "Synthetic events produced by the demo source", ["service"])

SERVICES = [
    # (service, namespace, style)
    ("checkout", "shop", "json"),
    ("payments", "shop", "json"),
    ("catalog", "shop", "plain"),
    ("auth", "platform", "json"),
    ("ingress-nginx", "ingress", "access"),
    ("billing-worker", "finance", "python"),
]
USERS = ["alice@example.com", "bob.smith@corp.example", "carol@example.org", "dave@mail.example.net"]
PATHS = ["/api/cart", "/api/checkout", "/api/items/42", "/login", "/healthz", "/api/pay"]
LEVELS = [("INFO", 800), ("DEBUG", 120), ("WARN", 78), ("ERROR", 2)]  # a healthy service
BURST_LEVELS = [("INFO", 45), ("ERROR", 50), ("FATAL", 5)]  # the misbehaving one, for a while


@dataclass
class Incident:
    """One service misbehaves for a while, every ``period_seconds`` (times from the demo's start)."""

    service: str = "payments"
    burst_from_seconds: float = 30.0
    burst_to_seconds: float = 90.0
    silent_from_seconds: float = 120.0
    silent_to_seconds: float = 270.0
    period_seconds: float = 600.0

    def phase(self, elapsed: float) -> str:
        t = elapsed % self.period_seconds
        if self.burst_from_seconds <= t < self.burst_to_seconds:
            return "burst"
        if self.silent_from_seconds <= t < self.silent_to_seconds:
            return "silent"
        return "healthy"


JAVA_TRACE = (
    "java.lang.IllegalStateException: payment provider timeout after 3000ms\n"
    "\tat com.example.payments.Gateway.charge(Gateway.java:118)\n"
    "\tat com.example.payments.CheckoutService.pay(CheckoutService.java:57)\n"
    "\tat java.base/java.lang.Thread.run(Thread.java:833)"
)
PY_TRACE = (
    "Traceback (most recent call last):\n"
    '  File "/app/worker.py", line 88, in handle\n'
    "    invoice = build_invoice(order)\n"
    '  File "/app/invoice.py", line 23, in build_invoice\n'
    "    total = sum(line.amount for line in order.lines)\n"
    "AttributeError: 'NoneType' object has no attribute 'lines'"
)


class DemoLogs:
    """Generates one event at a time; deterministic for a given seed."""

    def __init__(
        self, seed: int | None = None, incident: Incident | None = None, clock: Callable[[], float] = time.monotonic
    ):
        self.rng = random.Random(seed)
        self.run_id = uuid.UUID(int=self.rng.getrandbits(128)).hex[:12]
        self.seq = 0
        self.incident = incident
        self.clock = clock
        self.started = clock()
        self._levels = [lv for lv, _ in LEVELS]
        self._weights = [w for _, w in LEVELS]
        self._burst_levels = [lv for lv, _ in BURST_LEVELS]
        self._burst_weights = [w for _, w in BURST_LEVELS]

    def _line(self, service: str, style: str, level: str) -> str:
        rng = self.rng
        user = rng.choice(USERS)
        ms = rng.randint(2, 900)
        if style == "json":
            rec = {
                "level": level.lower(),
                "msg": self._message(service, level),
                "user": user,
                "latency_ms": ms,
                "trace_id": "%032x" % rng.getrandbits(128),
            }
            if level in ("ERROR", "FATAL") and rng.random() < 0.5:
                rec["stack"] = JAVA_TRACE
            return orjson.dumps(rec).decode()
        if style == "access":
            status = 500 if level in ("ERROR", "FATAL") else (404 if level == "WARN" else 200)
            ip = f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
            return (
                f"{ip} - - [{time.strftime('%d/%b/%Y:%H:%M:%S +0000', time.gmtime())}] "
                f'"GET {rng.choice(PATHS)} HTTP/1.1" {status} {rng.randint(80, 9000)} {ms / 1000:.3f}'
            )
        text = f"{level} [{service}] {self._message(service, level)} user={user} took={ms}ms"
        if style == "python" and level in ("ERROR", "FATAL"):
            text += "\n" + PY_TRACE
        return text

    def _message(self, service: str, level: str) -> str:
        if level == "FATAL":
            return "payment provider unreachable: giving up"
        if level == "ERROR":
            return self.rng.choice(
                ["request failed", "upstream timeout", "database connection refused", "payment declined by provider"]
            )
        if level == "WARN":
            return self.rng.choice(["slow query", "retrying request", "cache miss storm"])
        return self.rng.choice(["request served", "order created", "item viewed", "session refreshed"])

    def next(self) -> tuple[dict, bytes]:
        phase = self.incident.phase(self.clock() - self.started) if self.incident else "healthy"
        while True:
            service, namespace, style = self.rng.choice(SERVICES)
            if phase == "healthy" or service != self.incident.service:
                level = self.rng.choices(self._levels, self._weights)[0]
                break
            if phase == "burst":
                level = self.rng.choices(self._burst_levels, self._burst_weights)[0]
                break
            # silent: this service logs nothing, the others carry on
        self.seq += 1
        pod = f"{service}-7d9f8b{self.seq % 3}-x{self.seq % 5}"
        now = time.time_ns()
        event = envelope.new_event(
            id=envelope.make_id("demo", self.run_id, self.seq),
            body=self._line(service, style, level),
            source="demo",
            time=now,
            observed_time=now,
            resource={
                "k8s.namespace.name": namespace,
                "k8s.pod.name": pod,
                "k8s.container.name": service,
                "k8s.node.name": "demo-node-1",
                "service.name": service,
            },
        )
        return event, f"{namespace}/{pod}/{service}".encode()


class DemoSource:
    """Produces demo events at ``rate`` per second until stopped."""

    name = "demo-source"

    def __init__(
        self,
        sender: EventSender,
        rate: float = 200.0,
        seed: int | None = None,
        limit: int | None = None,
        incident: Incident | None = None,
    ):
        self.sender = sender
        self.rate = rate
        self.gen = DemoLogs(seed, incident)
        self.limit = limit
        self.acked = 0

    def _ack(self, event: dict) -> None:
        self.acked += 1
        DEMO_EVENTS.labels(event["resource"]["service.name"]).inc()

    def run(self, stop: threading.Event) -> None:
        interval = 1.0 / self.rate if self.rate > 0 else 0.0
        next_at = time.monotonic()
        sent = 0
        while not stop.is_set() and (self.limit is None or sent < self.limit):
            event, key = self.gen.next()
            self.sender.send(TOPIC, event, key, on_ack=self._ack)
            sent += 1
            self.sender.poll(0)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                stop.wait(delay)
        self.sender.flush(30)
        self.sender.producer.close()
        _log.info("demo source stopped", extra={"sent": sent, "acked": self.acked})


class DemoConfig(RoleConfig):
    """The demo source in `logtide up` (``roles: {00-demo: {rate: 50}}``)."""

    rate: float = Field(200.0, ge=0, description="events per second")
    partitions: int = Field(3, ge=1)
    incident: Incident | Literal[False] = Field(
        default_factory=Incident, description="one service misbehaves for a while; false: none"
    )


class DemoRole(Role):
    name = "demo"
    config_model = DemoConfig

    def writes(self, config: DemoConfig) -> list[TopicSpec]:
        return [raw_spec(TOPIC, config.partitions)]

    def installation_topics(self, partitions: int) -> list[TopicSpec]:
        return [raw_spec(TOPIC, partitions)]

    def services(self, config: DemoConfig, runtime: Runtime) -> list:
        return [
            DemoSource(
                EventSender(runtime.transport.producer(), "demo"), rate=config.rate, incident=config.incident or None
            )
        ]

    def up_config(self, ctx) -> DemoConfig:
        return DemoConfig(
            kafka=ctx.kafka,
            rate=ctx.options.get("rate", ctx.rate),
            partitions=ctx.partitions,
            incident=ctx.options.get("incident", {}),
        )


ROLE = DemoRole()


def up(ctx) -> list:
    """`logtide up` part: the demo source (options ``rate`` and ``incident``: the Incident fields, or
    false for healthy services only)."""
    return ROLE.up(ctx)

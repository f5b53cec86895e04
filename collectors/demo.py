"""Demo source for `logtide up`: synthetic but realistic application logs into logtide.raw.demo.

Several services on a pretend cluster write JSON and plain lines at mixed levels, with occasional
Java and Python stack traces and e-mail addresses (for the redaction step to find). The shape is that
of events from the node agent, so the rest of the pipeline treats them the same way.
"""

from __future__ import annotations

import random
import threading
import time
import uuid

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
LEVELS = [("INFO", 70), ("DEBUG", 12), ("WARN", 10), ("ERROR", 7), ("FATAL", 1)]
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

    def __init__(self, seed: int | None = None):
        self.rng = random.Random(seed)
        self.run_id = uuid.UUID(int=self.rng.getrandbits(128)).hex[:12]
        self.seq = 0
        self._levels = [lv for lv, _ in LEVELS]
        self._weights = [w for _, w in LEVELS]

    def _line(self, service: str, style: str, level: str) -> str:
        rng = self.rng
        user = rng.choice(USERS)
        ms = rng.randint(2, 900)
        if style == "json":
            rec = {"level": level.lower(), "msg": self._message(service, level), "user": user,
                   "latency_ms": ms, "trace_id": "%032x" % rng.getrandbits(128)}
            if level in ("ERROR", "FATAL") and rng.random() < 0.5:
                rec["stack"] = JAVA_TRACE
            return orjson.dumps(rec).decode()
        if style == "access":
            status = 500 if level in ("ERROR", "FATAL") else (404 if level == "WARN" else 200)
            ip = f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
            return (f'{ip} - - [{time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())}] '
                    f'"GET {rng.choice(PATHS)} HTTP/1.1" {status} {rng.randint(80, 9000)} {ms / 1000:.3f}')
        text = f"{level} [{service}] {self._message(service, level)} user={user} took={ms}ms"
        if style == "python" and level in ("ERROR", "FATAL"):
            text += "\n" + PY_TRACE
        return text

    def _message(self, service: str, level: str) -> str:
        if level in ("ERROR", "FATAL"):
            return self.rng.choice(["request failed", "upstream timeout", "database connection refused",
                                    "payment declined by provider"])
        if level == "WARN":
            return self.rng.choice(["slow query", "retrying request", "cache miss storm"])
        return self.rng.choice(["request served", "order created", "item viewed", "session refreshed"])

    def next(self) -> tuple[dict, bytes]:
        service, namespace, style = self.rng.choice(SERVICES)
        level = self.rng.choices(self._levels, self._weights)[0]
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

    def __init__(self, sender: EventSender, rate: float = 200.0, seed: int | None = None, limit: int | None = None):
        self.sender = sender
        self.rate = rate
        self.gen = DemoLogs(seed)
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


class DemoRole(Role):
    name = "demo"
    config_model = DemoConfig

    def writes(self, config: DemoConfig) -> list[TopicSpec]:
        return [raw_spec(TOPIC, config.partitions)]

    def installation_topics(self, partitions: int) -> list[TopicSpec]:
        return [raw_spec(TOPIC, partitions)]

    def services(self, config: DemoConfig, runtime: Runtime) -> list:
        return [DemoSource(EventSender(runtime.transport.producer(), "demo"), rate=config.rate)]

    def up_config(self, ctx) -> DemoConfig:
        return DemoConfig(kafka=ctx.kafka, rate=ctx.options.get("rate", ctx.rate), partitions=ctx.partitions)


ROLE = DemoRole()


def up(ctx) -> list:
    """`logtide up` part: the demo source (rate from `logtide up --rate`)."""
    return ROLE.up(ctx)

"""The HTTP endpoint every long-running role serves: /metrics, /healthz, /readyz.

/healthz: the process can do its job: its loops are turning and no service failed more than
``http.health.max_failures`` times within ``http.health.period_seconds`` (Fluent Bit's health check).
/readyz: that, and every readiness check passes (Kafka reachable, input topics there, sink writable).
Both answer JSON naming the failing checks, and under ``reasons`` why, where a check can say.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections.abc import Callable

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from pydantic import Field

from logtide import log
from logtide.config import Model

_log = log.get("logtide.health")

Check = Callable[[], bool]


class HealthPolicy(Model):
    """When repeated failures of one service make /healthz fail (then Kubernetes restarts the pod)."""

    max_failures: int = Field(5, ge=1, description="/healthz fails at this many failures of one service ...")
    period_seconds: float = Field(300.0, gt=0, description="... within this many seconds")


class HttpSettings(Model):
    """Where a role serves /metrics, /healthz and /readyz (port 0 = any free port)."""

    host: str = "0.0.0.0"
    port: int = 9464
    health: HealthPolicy = Field(default_factory=HealthPolicy)


class ServiceStatus:
    """What one service tells the health endpoint: its failures (crash loops) and what it waits for.

    The runner hands one to each service. ``failed(reason)`` counts a failure (a work item crashed, a
    loop restarted); ``waiting(reason)`` / ``ready()`` say why the service cannot serve yet (a topic
    that does not exist, a broker that does not answer). Liveness fails while ``policy.max_failures``
    failures lie within ``policy.period_seconds``; older ones no longer count (a recovered service
    turns green on its own).
    """

    def __init__(self, name: str, policy: HealthPolicy | None = None, clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.policy = policy or HealthPolicy()
        self._clock = clock
        self._failures: deque[float] = deque()
        self._last_failure = ""
        self._waiting: str | None = None
        self._lock = threading.Lock()

    def failed(self, reason: str) -> None:
        with self._lock:
            self._failures.append(self._clock())
            self._last_failure = reason
            while len(self._failures) > self.policy.max_failures:
                self._failures.popleft()

    def waiting(self, reason: str) -> None:
        if reason != self._waiting:
            _log.warning("waiting", extra={"service": self.name, "reason": reason})
        self._waiting = reason

    def ready(self) -> None:
        self._waiting = None

    def failures(self) -> int:
        """Failures within the period."""
        with self._lock:
            since = self._clock() - self.policy.period_seconds
            while self._failures and self._failures[0] < since:
                self._failures.popleft()
            return len(self._failures)

    def live_problem(self) -> str | None:
        n = self.failures()
        if n >= self.policy.max_failures:
            return f"failed {n} times within {self.policy.period_seconds:g}s, last: {self._last_failure}"
        return None

    def ready_problem(self) -> str | None:
        return self.live_problem() or self._waiting


class HealthServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, registry=REGISTRY):
        self.registry = registry
        self._live: dict[str, Check] = {}
        self._ready: dict[str, Check] = {}
        self._statuses: dict[str, ServiceStatus] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body, ctype, code = generate_latest(server.registry), CONTENT_TYPE_LATEST, 200
                elif path in ("/healthz", "/readyz"):
                    failing, reasons = server.report(ready=path == "/readyz")
                    answer: dict = {"ok": not failing, "failing": failing}
                    if reasons:
                        answer["reasons"] = reasons
                    body = orjson.dumps(answer)
                    ctype, code = "application/json", 200 if not failing else 503
                else:
                    body, ctype, code = b"not found: try /metrics, /healthz or /readyz\n", "text/plain", 404
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        try:
            self._httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise OSError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror} "
                "(choose another port with http.port in the config)"
            ) from None
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="health-http", daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        host = self._httpd.server_address[0]
        return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{self.port}"

    def add_liveness(self, name: str, check: Check) -> None:
        with self._lock:
            self._live[name] = check

    def add_readiness(self, name: str, check: Check) -> None:
        with self._lock:
            self._ready[name] = check

    def add_status(self, status: ServiceStatus) -> None:
        """A service's status counts for /healthz (repeated failures) and /readyz (what it waits for)."""
        with self._lock:
            self._statuses[status.name] = status

    def report(self, ready: bool) -> tuple[list[str], dict[str, str]]:
        """Names of the failing checks and statuses, and the reasons the statuses give."""
        failing = self.failing({**self._live, **self._ready} if ready else self._live)
        reasons: dict[str, str] = {}
        with self._lock:
            statuses = list(self._statuses.values())
        for status in statuses:
            problem = status.ready_problem() if ready else status.live_problem()
            if problem:
                reasons[status.name] = problem
        return sorted(set(failing) | set(reasons)), reasons

    def failing(self, checks: dict[str, Check]) -> list[str]:
        out = []
        with self._lock:
            items = list(checks.items())
        for name, check in items:
            try:
                if not check():
                    out.append(name)
            except Exception:  # a check that raises is a failing check
                out.append(name)
        return sorted(out)

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

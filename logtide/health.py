"""The HTTP endpoint every long-running role serves: /metrics, /healthz, /readyz.

/healthz: the process is alive (its loops are turning). /readyz: every registered readiness check
passes (e.g. Kafka reachable, sink writable). Both answer JSON naming the failing checks.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from logtide.config import Model

Check = Callable[[], bool]


class HttpSettings(Model):
    """Where a role serves /metrics, /healthz and /readyz (port 0 = any free port)."""

    host: str = "0.0.0.0"
    port: int = 9464


class HealthServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, registry=REGISTRY):
        self.registry = registry
        self._live: dict[str, Check] = {}
        self._ready: dict[str, Check] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body, ctype, code = generate_latest(server.registry), CONTENT_TYPE_LATEST, 200
                elif path in ("/healthz", "/readyz"):
                    failing = server.failing(server._live if path == "/healthz" else {**server._live, **server._ready})
                    body = orjson.dumps({"ok": not failing, "failing": failing})
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
            raise OSError(f"cannot serve metrics on {host}:{port}: {exc.strerror} "
                          "(choose another port with http.port in the config)") from None
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

    def start(self) -> "HealthServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

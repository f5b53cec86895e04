"""A local webhook receiver for ``logtide up`` and for trying notifications out: it verifies the
signature (when given secrets), prints one line per notification and each alert, and answers 200
(401 on a bad signature)."""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections.abc import Callable

import orjson

from logtide.alerting.notifiers.webhook import verify


class PrintingReceiver:
    name = "alert-webhook-receiver"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        secrets: list[str] | None = None,
        out: Callable[[str], None] | None = None,
    ):
        self.secrets = secrets or []
        self.out = out or (lambda line: print(line, file=sys.stdout, flush=True))
        self.received = 0
        recv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if recv.secrets and not verify(self.headers, body, recv.secrets):
                    self.send_response(401)
                    self.end_headers()
                    recv.out("webhook receiver: refused a request with a bad or missing signature")
                    return
                self.send_response(200)
                self.end_headers()
                recv.received += 1
                try:
                    recv.out(summary(orjson.loads(body)))
                except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                    recv.out(f"webhook receiver: {len(body)} bytes (not an Alertmanager payload)")

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> PrintingReceiver:
        threading.Thread(target=self.httpd.serve_forever, name="webhook-receiver", daemon=True).start()
        return self

    def run(self, stop: threading.Event) -> None:
        self.start()
        stop.wait()
        self.close()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def summary(payload: dict) -> str:
    lines = [
        f"ALERT {payload['status'].upper()} receiver={payload['receiver']} group={payload['groupKey']} "
        f"({len(payload['alerts'])} alerts)"
    ]
    for a in payload["alerts"]:
        labels = " ".join(f"{k}={v}" for k, v in sorted(a["labels"].items()))
        summ = a.get("annotations", {}).get("summary", "")
        lines.append(f"  {a['status']:8} {a['fingerprint']} {labels}" + (f"  — {summ}" if summ else ""))
    return "\n".join(lines)

"""A loopback HTTP double: a real server on 127.0.0.1 in a thread, answering through one method.

Subclass it and override ``handle(method, path, headers, body) -> (status, headers, body)``, or
pass ``handler=`` a function of the same shape; every such request is recorded in ``requests``.
Doubles that stream (chunked watches, a body cut mid-way) pass their own ``request_handler`` class
instead and keep only the server's life cycle from here; ``tls=(cert, key)`` serves HTTPS.
"""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections.abc import Callable

Reply = tuple[int, dict[str, str], bytes]


class HttpDouble:
    protocol_version = "HTTP/1.1"

    def __init__(
        self,
        handler: Callable[[str, str, dict, bytes], Reply] | None = None,
        *,
        request_handler: type[BaseHTTPRequestHandler] | None = None,
        tls: tuple[str, str] | None = None,
    ):
        self._handler = handler
        if request_handler is None:  # (a double with its own handler keeps its own bookkeeping)
            self.requests: list[tuple[str, str, dict, bytes]] = []
            self.lock = threading.Lock()
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = double.protocol_version

            def log_message(self, *a):
                pass

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    # the client died mid-upload: like a real server, the request never reaches
                    # the application (a sink retries it after its restart)
                    self.close_connection = True
                    return
                with double.lock:
                    double.requests.append((self.command, self.path, dict(self.headers), body))
                status, headers, reply = double.handle(self.command, self.path, self.headers, body)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815 - http.server's naming

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), request_handler or Handler)
        self.scheme = "http"
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def handle(self, method: str, path: str, headers, body: bytes) -> Reply:
        if self._handler is None:
            return 404, {}, b""
        return self._handler(method, path, headers, body)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    close = stop

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

"""A small HTTP proxy in front of moto's server that injects AWS faults: throttling storms, 5xx,
expired credentials, a missing IAM permission, empty FilterLogEvents pages that carry a nextToken (as
real CloudWatch sends), and pages that come stream by stream (no interleaving)."""

from __future__ import annotations

import http.client
import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlparse

from tests.support.http import HttpDouble

FAULTS = {
    "throttle": (400, "ThrottlingException", "Rate exceeded"),
    "server": (503, "ServiceUnavailableException", "The service is unavailable"),
    "expired": (400, "ExpiredTokenException", "The security token included in the request is expired"),
    "denied": (
        400,
        "AccessDeniedException",
        "User: arn:aws:sts::123456789012:assumed-role/reader/i-1 is not "
        "authorized to perform: logs:FilterLogEvents on resource: arn:aws:logs:us-east-1:123456789012:"
        "log-group:x:log-stream: because no identity-based policy allows the logs:FilterLogEvents action",
    ),
}


class AwsFaultProxy(HttpDouble):
    def __init__(self, upstream: str):
        self.upstream = urlparse(upstream)
        self.lock = threading.Lock()
        self.pending: list[str] = []  # faults to answer the next requests with, in order
        self.empty_pages = 0  # how many empty pages to put before each first FilterLogEvents page
        self.stream_by_stream = False  # drop FilterLogEvents' interleaved flag: pages come stream by stream
        self.delay = 0.0  # seconds to hold each FilterLogEvents answer (a slow region)
        self.requests: list[str] = []  # X-Amz-Target of every request seen
        self.faults_sent = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                target = self.headers.get("X-Amz-Target", "")
                with proxy.lock:
                    proxy.requests.append(target)
                    fault = proxy.pending.pop(0) if proxy.pending else None
                    empties = proxy.empty_pages
                    stream_by_stream, delay = proxy.stream_by_stream, proxy.delay
                if fault:
                    status, code, msg = FAULTS[fault]
                    with proxy.lock:
                        proxy.faults_sent += 1
                    return self._reply(status, json.dumps({"__type": code, "message": msg}).encode())
                if target.endswith("FilterLogEvents") and (stream_by_stream or delay):
                    req = json.loads(body)
                    if stream_by_stream:
                        req.pop("interleaved", None)
                    body = json.dumps(req).encode()
                    time.sleep(delay)
                if target.endswith("FilterLogEvents") and empties:
                    req = json.loads(body)
                    token = req.get("nextToken", "")
                    if not token.startswith("empty-"):
                        # First page: answer empty pages with tokens before the real ones.
                        return self._reply(
                            200,
                            json.dumps(
                                {"events": [], "nextToken": f"empty-1-{token}", "searchedLogStreams": []}
                            ).encode(),
                        )
                    n, _, real = token[len("empty-") :].partition("-")
                    if int(n) < empties:
                        return self._reply(
                            200, json.dumps({"events": [], "nextToken": f"empty-{int(n) + 1}-{real}"}).encode()
                        )
                    if real:
                        req["nextToken"] = real
                    else:
                        req.pop("nextToken")
                    body = json.dumps(req).encode()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=30)
                conn.request("POST", self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                self._reply(resp.status, data, resp.getheader("Content-Type", "application/x-amz-json-1.1"))

            def _reply(self, status, data, ctype="application/x-amz-json-1.1"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        super().__init__(request_handler=Handler)

    def inject(self, fault: str, count: int) -> None:
        with self.lock:
            self.pending += [fault] * count

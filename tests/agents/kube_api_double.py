"""A small Kubernetes API server double over HTTP for the agent's tests.

Serves what the agent's `kubernetes` client asks for:
  GET /api/v1/pods?fieldSelector=spec.nodeName=<node>            PodList (only that node's pods)
  GET /api/v1/pods?watch=true&resourceVersion=N&timeoutSeconds=T   JSON lines: {"type", "object"}
  GET /api/v1/namespaces[?watch=true]                              the same for namespaces
Tests change pods/namespaces (add, label, annotate, delete) and every open watch receives the event.
``down()`` makes it answer 503 and drop open watches (the API server is unreachable).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

from tests.support.http import HttpDouble


def pod(
    namespace: str,
    name: str,
    uid: str,
    node: str = "node-1",
    labels: dict | None = None,
    annotations: dict | None = None,
    containers: dict | None = None,
    owner: tuple | None = None,
) -> dict:
    md = {"name": name, "namespace": namespace, "uid": uid, "labels": labels or {}, "annotations": annotations or {}}
    if owner:
        md["ownerReferences"] = [
            {"kind": owner[0], "name": owner[1], "controller": True, "uid": "o-" + uid, "apiVersion": "apps/v1"}
        ]
    containers = containers or {"app": "registry.example/app:1.2.3"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": md,
        "spec": {"nodeName": node, "containers": [{"name": n, "image": i} for n, i in containers.items()]},
        "status": {"phase": "Running", "containerStatuses": [{"name": n, "restartCount": 0} for n in containers]},
    }


def namespace(name: str, annotations: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "annotations": annotations or {}}}


class KubeApiDouble(HttpDouble):
    def __init__(self):
        self._lock = threading.Lock()
        self.version = 100
        self.objects: dict[str, dict[str, dict]] = {"pods": {}, "namespaces": {}}
        self.watchers: dict[str, list[queue.Queue]] = {"pods": [], "namespaces": []}
        self.history: dict[str, list[tuple[int, dict]]] = {"pods": [], "namespaces": []}  # for resourceVersion
        self.requests: list[str] = []
        self.is_down = False
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                url = urlparse(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                double.requests.append(self.path)
                kind = {"/api/v1/pods": "pods", "/api/v1/namespaces": "namespaces"}.get(url.path)
                if double.is_down:
                    return self._send(503, {"kind": "Status", "code": 503, "message": "down for the test"})
                if kind is None:
                    return self._send(404, {"kind": "Status", "code": 404, "message": "not found"})
                if q.get("watch") in ("true", "1", "True"):
                    return self._watch(kind, q)
                items = double.list(kind, q.get("fieldSelector"))
                self._send(
                    200,
                    {
                        "kind": "PodList" if kind == "pods" else "NamespaceList",
                        "apiVersion": "v1",
                        "metadata": {"resourceVersion": str(double.version)},
                        "items": items,
                    },
                )

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _watch(self, kind, q):
                selector = q.get("fieldSelector")
                deadline = time.monotonic() + float(q.get("timeoutSeconds", "60"))
                inbox: queue.Queue = queue.Queue()
                since = int(q.get("resourceVersion") or 0)
                with double._lock:
                    # as the real API server: first what happened after the given resourceVersion
                    for version, ev in double.history[kind]:
                        if version > since:
                            inbox.put(ev)
                    double.watchers[kind].append(inbox)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    while time.monotonic() < deadline:
                        try:
                            ev = inbox.get(timeout=0.2)
                        except queue.Empty:
                            continue
                        if ev is None:  # down(): drop the connection
                            return
                        if not double.matches(ev["object"], selector):
                            continue
                        line = json.dumps(ev).encode() + b"\n"
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with double._lock:
                        double.watchers[kind].remove(inbox)
                    self.close_connection = True

            def log_message(self, *args):
                pass

        super().__init__(request_handler=Handler)

    @staticmethod
    def matches(obj: dict, selector: str | None) -> bool:
        if not selector:
            return True
        field, _, value = selector.partition("=")
        if field == "spec.nodeName":
            return (obj.get("spec") or {}).get("nodeName") == value
        return True

    def list(self, kind: str, selector: str | None) -> list[dict]:
        with self._lock:
            return [o for o in self.objects[kind].values() if self.matches(o, selector)]

    def _key(self, obj: dict) -> str:
        md = obj["metadata"]
        return f"{md.get('namespace', '')}/{md['name']}"

    def put(self, kind: str, obj: dict) -> None:
        """Add or replace an object; watchers get ADDED or MODIFIED."""
        with self._lock:
            self.version += 1
            obj["metadata"]["resourceVersion"] = str(self.version)
            key = self._key(obj)
            kind_of_event = "MODIFIED" if key in self.objects[kind] else "ADDED"
            self.objects[kind][key] = obj
            self._publish(kind, {"type": kind_of_event, "object": obj})

    def _publish(self, kind: str, event: dict) -> None:
        self.history[kind].append((self.version, event))
        for w in self.watchers[kind]:
            w.put(event)

    def delete(self, kind: str, obj: dict) -> None:
        with self._lock:
            self.version += 1
            self.objects[kind].pop(self._key(obj), None)
            self._publish(kind, {"type": "DELETED", "object": obj})

    def watching(self, kind: str) -> int:
        with self._lock:
            return len(self.watchers[kind])

    def down(self) -> None:
        self.is_down = True
        with self._lock:
            for ws in self.watchers.values():
                for w in ws:
                    w.put(None)

    def up(self) -> None:
        self.is_down = False

    def close(self) -> None:
        self.down()
        self.stop()

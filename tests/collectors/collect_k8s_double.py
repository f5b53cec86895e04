"""A Kubernetes API server double over HTTP: list and watch pods (chunked JSON lines), and pod logs
with timestamps, follow, sinceTime (whole seconds, as the real one) and previous. The test drives it:
add pods, write log lines, restart containers, delete pods, break every open log stream."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

from logtide.timeutil import format_rfc3339, require_rfc3339

from tests.support.http import HttpDouble


def stamp(ns: int) -> str:
    return format_rfc3339(ns)


def selected(pod: dict, query: dict) -> bool:
    """Equality-based labelSelector (k=v,k2=v2), the part of the syntax the tests use."""
    labels = pod["metadata"].get("labels") or {}
    for term in filter(None, (query.get("labelSelector") or "").split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def parse_since(text: str) -> int:
    return require_rfc3339(text)


class KubernetesDouble(HttpDouble):
    def __init__(self):
        self.cond = threading.Condition()
        self.rv = 1
        self.pods: dict[tuple[str, str], dict] = {}
        self.logs: dict[tuple[str, str, str], list[list[tuple[int, str]]]] = {}  # instances of a container
        self.events: list[tuple[int, str, dict]] = []
        self.generation = 0  # bumped by break_streams(): open log streams end
        self.fail_log_requests = 0
        self.log_requests: list[dict] = []
        self.closing = False
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _json(self, status: int, obj):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _start_chunked(self, ctype: str):
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

            def _chunk(self, data: bytes):
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def do_GET(self):  # noqa: N802
                url = urlparse(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                parts = url.path.strip("/").split("/")
                try:
                    if parts[:3] == ["api", "v1", "namespaces"] and parts[4:] == ["pods"]:
                        return (
                            self._watch(parts[3], q)
                            if q.get("watch") in ("true", "1", "True")
                            else self._list(parts[3], q)
                        )
                    if parts[:3] == ["api", "v1", "namespaces"] and len(parts) == 7 and parts[6] == "log":
                        return self._log(parts[3], parts[5], q)
                except (BrokenPipeError, ConnectionResetError):
                    return
                self._json(404, {"kind": "Status", "code": 404, "message": "not found"})

            def _list(self, ns, q):
                with double.cond:
                    items = [p for (n, _), p in double.pods.items() if n == ns and selected(p, q)]
                    rv = double.rv
                self._json(
                    200,
                    {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": str(rv)}, "items": items},
                )

            def _watch(self, ns, q):
                since = int(q.get("resourceVersion") or 0)
                deadline = time.monotonic() + float(q.get("timeoutSeconds", 30))
                self._start_chunked("application/json")
                sent = since
                while time.monotonic() < deadline and not double.closing:
                    with double.cond:
                        todo = [
                            (rv, t, p)
                            for rv, t, p in double.events
                            if rv > sent and p["metadata"]["namespace"] == ns and selected(p, q)
                        ]
                        if not todo:
                            double.cond.wait(0.2)
                            continue
                    for rv, t, p in todo:
                        self._chunk(json.dumps({"type": t, "object": p}).encode() + b"\n")
                        sent = rv
                self._chunk(b"")

            def _log(self, ns, pod, q):
                container = q.get("container")
                with double.cond:
                    double.log_requests.append(dict(q, pod=pod))
                    if double.fail_log_requests:
                        double.fail_log_requests -= 1
                        fail = True
                    else:
                        fail = False
                    instances = double.logs.get((ns, pod, container))
                if fail:
                    return self._json(500, {"kind": "Status", "code": 500, "message": "internal error"})
                if instances is None or (ns, pod) not in double.pods:
                    return self._json(404, {"kind": "Status", "code": 404, "message": "pod not found"})
                previous = q.get("previous") == "true"
                if previous and len(instances) < 2:
                    return self._json(
                        400, {"kind": "Status", "code": 400, "message": "previous terminated container not found"}
                    )
                index = len(instances) - (2 if previous else 1)
                since = parse_since(q["sinceTime"]) if "sinceTime" in q else 0
                follow = q.get("follow") == "true" and not previous
                gen = double.generation
                self._start_chunked("text/plain")
                sent = 0
                while True:
                    with double.cond:
                        lines = instances[index][sent:]
                        sent += len(lines)
                        ended = (
                            not follow
                            or len(instances) - 1 != index
                            or double.generation != gen
                            or (ns, pod) not in double.pods
                            or double.closing
                        )
                        if not lines and not ended:
                            double.cond.wait(0.2)
                            continue
                    data = "".join(f"{stamp(ts)} {text}\n" for ts, text in lines if ts >= since)
                    if data:
                        self._chunk(data.encode())
                    if ended and not lines:
                        break
                self._chunk(b"")

        super().__init__(request_handler=Handler)

    def stop(self):
        with self.cond:
            self.closing = True
            self.cond.notify_all()
        super().stop()

    # --- driving it -----------------------------------------------------------------------------

    def _event(self, kind: str, pod: dict):
        self.rv += 1
        pod["metadata"]["resourceVersion"] = str(self.rv)
        self.events.append((self.rv, kind, json.loads(json.dumps(pod))))
        self.cond.notify_all()

    def add_pod(self, ns: str, name: str, containers=("app",), labels=None, restarts: int = 0) -> dict:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": str(uuid.uuid4()), "labels": labels or {"app": name}},
            "spec": {"nodeName": "node-1", "containers": [{"name": c, "image": "busybox"} for c in containers]},
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": c,
                        "image": "busybox",
                        "imageID": "sha256:1",
                        "ready": True,
                        "restartCount": restarts,
                        "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}},
                    }
                    for c in containers
                ],
            },
        }
        with self.cond:
            self.pods[(ns, name)] = pod
            for c in containers:
                self.logs[(ns, name, c)] = [[] for _ in range(restarts + 1)]
            self._event("ADDED", pod)
        return pod

    def write(self, ns: str, pod: str, container: str, text: str, ts_ns: int | None = None):
        with self.cond:
            self.logs[(ns, pod, container)][-1].append((ts_ns or time.time_ns(), text))
            self.cond.notify_all()

    def restart(self, ns: str, pod: str, container: str):
        """The container exits and kubelet starts a new instance (restartCount + 1)."""
        with self.cond:
            self.logs[(ns, pod, container)].append([])
            p = self.pods[(ns, pod)]
            for st in p["status"]["containerStatuses"]:
                if st["name"] == container:
                    st["restartCount"] += 1
            self._event("MODIFIED", p)

    def delete_pod(self, ns: str, name: str):
        with self.cond:
            pod = self.pods.pop((ns, name))
            self._event("DELETED", pod)

    def break_streams(self):
        with self.cond:
            self.generation += 1
            self.cond.notify_all()

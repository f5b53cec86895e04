"""Helpers of the sink tests: events, producing them, waiting with a deadline."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from logtide import envelope
from logtide.broker import free_port
from logtide.transport import KafkaSettings, connect

#: The `logtide` command as CI runs it (not `-m logtide.cli`: that would load the CLI module twice).
LOGTIDE = [sys.executable, "-c", "import sys; from logtide.cli import main; sys.exit(main(sys.argv[1:]))"]


def make_event(i: int, *, run: str = "t", source: str = "k8s", **over) -> dict:
    ev = envelope.new_event(
        id=envelope.make_id(run, i), body=f"GET /api/item/{i} 200 user=u{i % 7}", source=source,
        time=1_763_700_000_000_000_000 + i * 1_000_000, severity_text=("INFO", "WARN", "ERROR")[i % 3],
        attributes={"status": 200 + i % 3, "user": f"u{i % 7}"},
        resource={"k8s.namespace.name": f"ns{i % 2}", "service.name": f"svc{i % 4}", "k8s.pod.name": f"pod-{i % 5}"},
        routes=["audit", "analytics", "monitoring"])
    ev.update(over)
    ev["ingest_time"] = ev["observed_time"]
    return ev


def produce(broker: str, topic: str, events: list[dict], *, raw: list[bytes] | None = None,
            headers=None) -> None:
    """Events (with ``headers(event)`` as their Kafka headers, if given), then raw values."""
    producer = connect(KafkaSettings(bootstrap=broker, client="confluent")).producer()
    try:
        for ev in events:
            producer.produce(topic, envelope.encode(ev), key=ev["resource"].get("k8s.pod.name", "").encode(),
                             headers=headers(ev) if headers else None)
        for value in raw or []:
            producer.produce(topic, value, key=b"bad")
        assert producer.flush(30) == 0
    finally:
        producer.close()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2, describe=None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    state = describe() if describe else last
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {state!r})")


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if not path:
        raise FileNotFoundError(f"PostgreSQL {name} not found: apt-get install -y postgresql")
    return path


def start_postgres(fsync: bool = True):
    """Start a private PostgreSQL cluster in a temp dir on a free port: (dsn, stop function).

    Under root, initdb and the server run as the ``postgres`` user (PostgreSQL refuses root).
    Tests turn fsync off (speed; durability is PostgreSQL's own business there), the bench keeps it.
    """
    base = tempfile.mkdtemp(prefix="logtide-pg-")
    data = os.path.join(base, "data")
    as_user: list[str] = []
    if os.geteuid() == 0:
        import pwd
        pw = pwd.getpwnam("postgres")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(as_user + [_pg_bin("initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True)
    subprocess.run(as_user + [_pg_bin("pg_ctl"), "-D", data, "-l", os.path.join(base, "log"), "-w", "-t", "60",
                              "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync={'on' if fsync else 'off'}",
                              "start"],
                   check=True, capture_output=True)

    def stop():
        subprocess.run(as_user + [_pg_bin("pg_ctl"), "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
    return f"postgresql://postgres@127.0.0.1:{port}/postgres", stop


class PostServer:
    """A loopback HTTP server whose POSTs go to ``accept(path, headers, body) -> (status, body)``."""

    def __init__(self, accept):
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                if len(body) < length:
                    # The client died mid-upload (the kill -9 tests): like a real server, the request
                    # never reaches the application; the sink retries it after its restart.
                    self.close_connection = True
                    return
                status, reply = accept(self.path, self.headers, body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

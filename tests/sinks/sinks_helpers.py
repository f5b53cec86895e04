"""Helpers of the sink tests: events, producing them, waiting with a deadline."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile

from logtide import envelope
from logtide.broker import free_port

from tests.support.events import make_event as support_event
from tests.support.http import HttpDouble
from tests.support.kafka import produce as support_produce
from tests.support.wait import wait_for

__all__ = ["LOGTIDE", "PostServer", "make_event", "produce", "start_postgres", "wait_for"]

#: The `logtide` command as CI runs it (not `-m logtide.cli`: that would load the CLI module twice).
LOGTIDE = [sys.executable, "-c", "import sys; from logtide.cli import main; sys.exit(main(sys.argv[1:]))"]


def make_event(i: int, *, run: str = "t", source: str = "k8s", **over) -> dict:
    ev = support_event(
        i,
        run=run,
        body=f"GET /api/item/{i} 200 user=u{i % 7}",
        source=source,
        time_ns=1_763_700_000_000_000_000 + i * 1_000_000,
        severity_text=("INFO", "WARN", "ERROR")[i % 3],
        attributes={"status": 200 + i % 3, "user": f"u{i % 7}"},
        resource={"k8s.namespace.name": f"ns{i % 2}", "service.name": f"svc{i % 4}", "k8s.pod.name": f"pod-{i % 5}"},
        routes=["audit", "analytics", "monitoring"],
    )
    ev.update(over)
    ev["ingest_time"] = ev["observed_time"]
    return ev


def produce(broker: str, topic: str, events: list[dict], *, raw: list[bytes] | None = None, headers=None) -> None:
    """Events (with ``headers(event)`` as their Kafka headers, if given), then raw values."""

    def key(ev: dict) -> bytes:
        return ev["resource"].get("k8s.pod.name", "").encode()

    if headers:
        for ev in events:
            support_produce(broker, topic, [(key(ev), envelope.encode(ev))], headers=headers(ev))
    else:
        support_produce(broker, topic, [(key(ev), envelope.encode(ev)) for ev in events])
    if raw:
        support_produce(broker, topic, [(b"bad", value) for value in raw])


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
    subprocess.run(
        as_user + [_pg_bin("initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        as_user
        + [
            _pg_bin("pg_ctl"),
            "-D",
            data,
            "-l",
            os.path.join(base, "log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync={'on' if fsync else 'off'}",
            "start",
        ],
        check=True,
        capture_output=True,
    )

    def stop():
        subprocess.run(as_user + [_pg_bin("pg_ctl"), "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)

    return f"postgresql://postgres@127.0.0.1:{port}/postgres", stop


class PostServer(HttpDouble):
    """A loopback HTTP server whose POSTs go to ``accept(path, headers, body) -> (status, body)``."""

    protocol_version = "HTTP/1.0"  # one request per connection, as the sinks' tests were written for

    def __init__(self, accept):
        self.accept = accept
        super().__init__()

    def handle(self, method, path, headers, body):
        status, reply = self.accept(path, headers, body)
        return status, {"Content-Type": "application/json"}, reply

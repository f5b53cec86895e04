"""Fixtures for the alerting tests: a webhook receiver over HTTP that verifies signatures and
records deliveries, Debian's Alertmanager on a free port, and event/config builders."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time

import orjson
import pytest
import requests

from logtide.broker import free_port
from logtide.cli import main
from logtide.envelope import new_event

from logtide.alerting.config import AlertConfig
from logtide.alerting.notifiers.webhook import verify

from tests.support.http import HttpDouble

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


class Receiver(HttpDouble):
    """Records every POST; ``status`` sets the answer (e.g. 503 to play a broken receiver);
    ``secrets`` makes it verify X-Logtide-Signature and answer 401 on a mismatch."""

    def __init__(self, secrets=None):
        self.secrets = secrets or []
        self.status = 200
        self.extra_headers: dict[str, str] = {}
        self.deliveries: list[dict] = []
        self.attempts = 0
        self.bad_signatures = 0
        super().__init__()
        self.got = threading.Condition(self.lock)

    def handle(self, method, path, headers, body):
        with self.lock:
            self.attempts += 1
            status = self.status
            if status == 200 and self.secrets and not verify(headers, body, self.secrets):
                self.bad_signatures += 1
                status = 401
            if status == 200:
                self.deliveries.append(
                    {"path": path, "headers": dict(headers), "body": orjson.loads(body), "raw": body, "at": time.time()}
                )
                self.got.notify_all()
            return status, dict(self.extra_headers), b"{}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def wait_for(self, n: int, timeout: float = 15.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.deliveries) < n and time.monotonic() < deadline:
                self.got.wait(0.1)
            return list(self.deliveries)

    def bodies(self) -> list[dict]:
        with self.lock:
            return [d["body"] for d in self.deliveries]


class Ran:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def logtide(capsys):
    """Run the `logtide` command in this process (the CLI's own code path, without the import cost)."""

    def run(*args):
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: --help, usage errors
            code = exc.code
        out = capsys.readouterr()
        return Ran(code, out.out, out.err)

    return run


@pytest.fixture
def receiver():
    r = Receiver(secrets=["old-secret"])
    yield r
    r.close()


def event(i: int, t: int, service: str = "checkout", level: str = "ERROR", body: str = "boom", **attrs) -> dict:
    return new_event(
        id=f"ev-{service}-{i}-{t}",
        body=body,
        source="test",
        time=t,
        observed_time=t,
        severity_text=level,
        attributes=attrs,
        resource={
            "service.name": service,
            "k8s.namespace.name": "shop",
            "k8s.pod.name": f"{service}-0",
            "k8s.container.name": service,
        },
    )


def config(receiver_url: str | None = None, **over) -> AlertConfig:
    """An event-clock config with one signed webhook receiver (rotation: new secret first)."""
    base = {
        "clock": {"mode": "event"},
        "route": {
            "receiver": "hook",
            "group_by": ["alertname", "service_name"],
            "group_wait": "10s",
            "group_interval": "1m",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "hook",
                "webhook": [{"url": receiver_url or "http://127.0.0.1:9/", "secrets": ["new-secret", "old-secret"]}],
                "retry": {"initial_seconds": 0.05, "max_seconds": 0.3},
            }
        ],
        "api": {"host": "127.0.0.1", "port": 0},
        "http": {"host": "127.0.0.1", "port": 0},
    }
    base.update(over)
    return AlertConfig.model_validate(base)


@contextlib.contextmanager
def running_alertmanager(d, config_text: str):
    """Debian's prometheus-alertmanager on a free port (no clustering), with ``config_text`` and
    storage in the directory ``d``; yields its URL."""
    if not os.path.exists(ALERTMANAGER):
        pytest.fail(f"{ALERTMANAGER} missing: apt-get install -y prometheus-alertmanager")
    d.mkdir(parents=True, exist_ok=True)
    cfg = d / "alertmanager.yml"
    cfg.write_text(config_text)
    port = free_port()
    log = open(d / "am.log", "wb")
    proc = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={cfg}",
            f"--storage.path={d / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                if requests.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"alertmanager did not start: {(d / 'am.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        stop_process(proc, 10)
        log.close()
        shutil.rmtree(d, ignore_errors=True)


def stop_process(proc: subprocess.Popen, timeout: float) -> int | None:
    """SIGTERM, then SIGKILL when it has not exited within ``timeout``."""
    proc.terminate()
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(10)


@contextlib.contextmanager
def serving(engine, settings):
    """The engine's HTTP API (``settings``: ApiSettings) in a thread; yields its URL."""
    from logtide.alerting.api import AlertApi

    server = AlertApi(engine, settings)
    stop = threading.Event()
    t = threading.Thread(target=server.run, args=(stop,), daemon=True)
    t.start()
    try:
        yield server.url
    finally:
        stop.set()
        t.join(10)


@pytest.fixture(scope="session")
def alertmanager(tmp_path_factory):
    """Debian's Alertmanager with a black-hole receiver (the default resolve_timeout, 5m)."""
    with running_alertmanager(
        tmp_path_factory.mktemp("alertmanager"),
        "route:\n  receiver: blackhole\n  group_wait: 1h\nreceivers:\n  - name: blackhole\n",
    ) as url:
        yield url

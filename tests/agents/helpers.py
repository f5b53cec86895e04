"""Helpers for the agent's tests: run the agent in a thread, write CRI/docker lines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

from logtide.agents.agent import Agent
from logtide.agents.config import AgentConfig
from logtide.agents.pod_metadata import PodMetadata
from logtide.checkpoint import SqliteCheckpoints
from logtide.transport import KafkaSettings, connect

# Shared with every folder (tests/support); importable from here as before.
from tests.support.kafka import TopicReader
from tests.support.metrics import metric
from tests.support.wait import wait_for

__all__ = ["RunningAgent", "TopicReader", "cri", "log_dir", "metric", "wait_for"]


def cri(
    message: str | bytes, stream: str = "stdout", tag: str = "F", ts: str = "2024-05-01T12:00:00.123456789Z"
) -> bytes:
    if isinstance(message, str):
        message = message.encode()
    return f"{ts} {stream} {tag} ".encode() + message + b"\n"


def write_cri(path, *messages: str) -> None:
    """Append messages to a container log file as CRI "F" lines (creating its directories)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        for m in messages:
            f.write(cri(m))


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start_agent_process(config_path, bootstrap: str, python_args: tuple = ("-m", "logtide.cli")) -> subprocess.Popen:
    """`logtide agent --config FILE` as a process (``python_args``: how python runs the CLI)."""
    return subprocess.Popen(
        [sys.executable, *python_args, "agent", "--config", str(config_path), "--bootstrap", bootstrap],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop_agent_process(proc: subprocess.Popen, timeout: float = 30) -> tuple[int, bytes]:
    """SIGTERM (killed if it does not stop in ``timeout``); returns its exit code and stderr."""
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


def log_dir(tmp_path, **files: bytes):
    """A directory ``logs`` under tmp_path with the given files (name with '_' for '.': app_log=...)."""
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    for name, data in files.items():
        (logs / name.replace("_", ".")).write_bytes(data)
    return logs


class RunningAgent:
    """An Agent in a thread of this process (metrics readable); ``stop()`` drains and checkpoints."""

    def __init__(self, settings: KafkaSettings, checkpoint_dir, metadata: bool = False, **fields):
        data = {
            "mode": "files",
            "checkpoint_dir": str(checkpoint_dir),
            "kafka": settings.model_dump(),
            "http": {"port": 0},
            "read": {
                "scan_interval_seconds": 0.1,
                "rotate_wait_seconds": 0.3,
                "fingerprint_wait_seconds": 0.2,
                "idle_poll_seconds": 0.02,
            },
            "partial": {"timeout_seconds": 0.5},
            "multiline": {"timeout_seconds": 0.2},
        }
        for k, v in fields.items():
            if isinstance(v, dict) and isinstance(data.get(k), dict):
                data[k] = {**data[k], **v}
            else:
                data[k] = v
        self.config = AgentConfig.model_validate(data)
        transport = connect(settings)
        self.checkpoints = SqliteCheckpoints(f"{checkpoint_dir}/checkpoints.sqlite")
        self.metadata = PodMetadata(self.config.kubernetes) if metadata else None
        producer = transport.producer(
            linger_ms=5, report_successes=False, max_buffer_bytes=self.config.queue.client_buffer_bytes()
        )
        self.agent = Agent(self.config, producer, self.checkpoints, self.metadata)
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self.agent.run(self.stop_event)
        except BaseException as exc:  # noqa: BLE001 - surfaced by stop()
            self.error = exc

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.stop_event.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "agent did not stop"
        if self.error:
            raise self.error

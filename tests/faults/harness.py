"""Kill -9 a role repeatedly while it works, restart it, and let the last run finish."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable


class RoleProcess:
    """One role as users run it: `logtide <role> ...` in its own process group."""

    def __init__(self, args: list[str], env: dict | None = None, log_path: str | None = None):
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.kills = 0

    def start(self) -> None:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "logtide.cli", *self.args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if out is not subprocess.DEVNULL:
            out.close()
        self.starts += 1

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.kills += 1

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM (a clean stop: drain and checkpoint), then SIGKILL if it hangs."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None

    def alive(self) -> bool:
        return bool(self.proc) and self.proc.poll() is None


def kill_loop(
    role: RoleProcess,
    kills: int,
    done: Callable[[], bool],
    *,
    min_gap: float = 1.5,
    max_gap: float = 4.0,
    finish_timeout: float = 90.0,
    seed: int = 1,
) -> None:
    """Start the role, kill -9 it ``kills`` times at random moments, then let it run until ``done()``."""
    rng = random.Random(seed)
    role.start()
    for _ in range(kills):
        time.sleep(rng.uniform(min_gap, max_gap))
        role.kill9()
        role.start()
    deadline = time.monotonic() + finish_timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"role {role.args[0]} did not finish within {finish_timeout}s after {role.kills} kills"
            )
        if not role.alive():
            raise AssertionError(f"role {role.args[0]} exited with {role.proc.returncode}; see {role.log_path}")
        time.sleep(0.5)

"""The agent's checkpoint disk fills up: a small tmpfs under checkpoint_dir (256 KiB: SQLite in WAL mode
needs its 32 KiB shared-memory file and a WAL beside the database, so 64 KiB is full before the first
write), filled to the last byte by the test at a chosen moment. The agent says so clearly (an error log
line, logtide_agent_checkpoint_errors_total) and keeps sending; its SQLite file is never corrupt and keeps
the last good checkpoint; when space returns it checkpoints again; every line reaches Kafka.
Needs root for mount (CI runs as root)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
import urllib.request

import orjson
import pytest

from tests.faults.chain import RAW, Chain, wait_until
from tests.faults.conftest import report

CONTAINERS = {"auth": "Hadoop_2k.log", "web": "Apache_2k.log"}


def mount_tmpfs(path, size: str = "256k") -> bool:
    os.makedirs(path, exist_ok=True)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, timeout=10
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def fill(path) -> str:
    """Fill the file system of ``path`` to the last byte; returns the filler file."""
    filler = os.path.join(str(path), "filler")
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0")
        except OSError:
            pass
    return filler


def checkpoints(path) -> dict[str, dict]:
    """The checkpoint store as a fresh reader sees it (read-only); fails on a corrupt file."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {k: orjson.loads(v) for k, v in db.execute("SELECT key, value FROM checkpoints")}
    finally:
        db.close()


def metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def agent_metrics(chain: Chain) -> str:
    """The agent's /metrics page (its URL is in its log: it listens on a free port)."""
    url = None
    for line in open(chain.workdir / "agent.log", "rb"):
        try:
            url = orjson.loads(line).get("url") or url
        except orjson.JSONDecodeError:
            continue
    assert url, "agent did not log its HTTP address"
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        return resp.read().decode()


@pytest.mark.timeout(150)
def test_checkpoint_disk_full_is_reported_and_leaves_the_last_good_checkpoint(own_broker, tmp_path):
    chain = Chain(tmp_path, own_broker, CONTAINERS, roles=("agent",))
    chain.roles["agent"].args[-1] = "info"  # the HTTP port is logged at info
    chain.create_topics()
    mounted = mount_tmpfs(chain.checkpoints)
    if not mounted:
        pytest.fail("mount -t tmpfs refused: run as root (the RLIMIT_FSIZE variant is not implemented)")
    db_path = chain.checkpoints / "checkpoints.sqlite"
    filler = None
    try:
        total = chain.writer.total
        half = {c: len(v) // 2 for c, v in chain.writer.lines.items()}
        # first half, checkpointed
        for c, lines in chain.writer.lines.items():
            chain.writer.files[c].write(b"".join(_cri(b) for b in lines[: half[c]]))
            chain.writer.written[c] = half[c]
        chain.start()
        first = sum(half.values())
        wait_until(lambda: chain.distinct(RAW) >= first, 60, "the first half in Kafka", chain)
        wait_until(
            lambda: (
                os.path.exists(db_path)
                and sum(v.get("offset", 0) for v in checkpoints(db_path).values())
                >= sum(os.path.getsize(f.name) for f in chain.writer.files.values())
            ),
            30,
            "the first half checkpointed",
            chain,
        )
        good = checkpoints(db_path)

        filler = fill(chain.checkpoints)
        for c, lines in chain.writer.lines.items():  # the second half while the disk is full
            chain.writer.files[c].write(b"".join(_cri(b) for b in lines[half[c] :]))
            chain.writer.written[c] = len(lines)
        wait_until(lambda: chain.distinct(RAW) >= total, 60, "the second half in Kafka (sending goes on)", chain)
        time.sleep(2)
        log = open(chain.workdir / "agent.log", "rb").read().decode("utf-8", "replace")
        assert "disk is full" in log or "No space left" in log, log[-3000:]
        errors = metric(agent_metrics(chain), "logtide_agent_checkpoint_errors_total")
        assert errors > 0
        state_while_full = checkpoints(db_path)  # opens, intact, the last good checkpoint
        assert state_while_full == good or all(state_while_full[k]["offset"] >= good[k]["offset"] for k in good)

        os.remove(filler)  # space returns
        filler = None
        sizes = sum(os.path.getsize(f.name) for f in chain.writer.files.values())
        wait_until(
            lambda: sum(v.get("offset", 0) for v in checkpoints(db_path).values()) >= sizes,
            60,
            "checkpoints written again once space returned",
            chain,
        )
        codes = chain.stop()
    finally:
        for role in chain.roles.values():
            role.kill9()
        chain.close_readers()
        if filler:
            os.remove(filler)
        subprocess.run(["umount", "-l", str(chain.checkpoints)], capture_output=True, timeout=10)
    assert codes == {"agent": 0}, codes
    ids = chain.topic_ids(RAW)
    assert len(ids) == total
    report(
        "disk_full",
        {"lines": total, "lost": 0, "duplicates": sum(ids.values()) - len(ids), "checkpoint_errors_counted": errors},
    )


def _cri(body: bytes) -> bytes:
    from tests.faults.chain import cri_line

    return cri_line(body, time.time_ns())

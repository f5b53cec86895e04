"""kill -9 of the agent (a real `logtide agent` subprocess) mid-stream, a rotation while it is down, and a
restart: every line written is in Kafka, counted by deterministic id; duplicates only from the
unacknowledged window, and a duplicate has the same id and the same body."""

from __future__ import annotations

import collections
import hashlib
import os
import signal
import threading
import time

import pytest

from tests.agents.helpers import TopicReader, cri, start_agent_process, stop_agent_process
from logtide.checkpoint import SqliteCheckpoints
from logtide.envelope import make_id

CONFIG = """
mode: kubernetes
pods_root: {pods}
containers_root: {pods}/none
topic: {topic}
checkpoint_dir: {ck}
checkpoint_interval_seconds: 1.0
format: cri
http: {{port: 0}}
kubernetes: {{enabled: false}}
multiline: {{enabled: false}}
queue: {{max_records: 500}}
read: {{scan_interval_seconds: 0.1, rotate_wait_seconds: 0.5, idle_poll_seconds: 0.02, chunk_bytes: 16384}}
"""


class ContainerWriter:
    """Writes corpus lines as CRI records (long ones split in P pieces) and remembers each record's id."""

    def __init__(self, path: str, lines: list[bytes]):
        self.path = path
        self.lines = lines
        self.next = 0
        self.expected: dict[tuple[int, int], str] = {}  # (offset, file) → body
        self._open()

    def _open(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.f = open(self.path, "ab", buffering=0)
        self.identity = None
        self.offset = 0

    def rotate(self, suffix: str):
        """The kubelet's rotation: rename the file away, start a new one."""
        self.f.close()
        os.rename(self.path, self.path + suffix)
        self._open()

    def write(self, n: int):
        buf = b""
        for line in self.lines[self.next : self.next + n]:
            start = self.offset + len(buf)
            pieces = [line[i : i + 200] for i in range(0, len(line), 200)] or [b""]
            for k, piece in enumerate(pieces):
                buf += cri(piece, tag="P" if k < len(pieces) - 1 else "F", ts="2024-05-01T12:00:00.%09dZ" % self.next)
            self.expected[(start, self.generation_key())] = line.decode("utf-8", "replace")
        self.next += n
        self.f.write(buf)
        self.offset += len(buf)
        if self.identity is None:
            st = os.fstat(self.f.fileno())
            head = open(self.path, "rb").read(64)
            self.identity = f"{st.st_dev}:{st.st_ino}:{hashlib.blake2b(head, digest_size=8).hexdigest()}:0"
        return self.next < len(self.lines)

    def generation_key(self) -> int:
        """Which file the writer writes now (the one before a rotation, or the new one)."""
        return id(self.f)

    def finish_ids(self, identities: dict[int, str]) -> dict[str, tuple[str, int, str]]:
        """id → (file identity, offset, body) of every record written, ids as the agent makes them."""
        return {
            make_id(identities[gen], start): (identities[gen], start, body)
            for (start, gen), body in self.expected.items()
        }


@pytest.mark.timeout(90)
def test_kill9_mid_stream_rotation_while_down_restart_loses_nothing(tmp_path, broker, new_topic, corpus_dir):
    topic = new_topic(3)
    pods = tmp_path / "pods"
    config = tmp_path / "agent.yaml"
    config.write_text(CONFIG.format(pods=pods, topic=topic, ck=tmp_path / "ck"))
    corpus = [
        open(os.path.join(corpus_dir, name), "rb").read().splitlines() for name in ("Hadoop_2k.log", "Mac_2k.log")
    ]
    writers = [
        ContainerWriter(str(pods / f"corpus_c{n}-0_uid-{n}" / f"c{n}" / "0.log"), lines)
        for n, lines in enumerate(corpus)
    ]
    identities: dict[int, str] = {}

    def write_some(batches: int):
        for _ in range(batches):
            for w in writers:
                w.write(50)
                identities[w.generation_key()] = w.identity
            time.sleep(0.01)

    write_some(10)
    reader = TopicReader(broker, topic, partitions=3)
    agent = start_agent_process(config, broker)
    try:
        stop_writing = threading.Event()

        def background():
            while not stop_writing.is_set() and writers[0].next < 1500:
                write_some(1)
                time.sleep(0.02)

        t = threading.Thread(target=background, daemon=True)
        t.start()
        reader.read_until(lambda evs: len(evs) >= 1200 or agent.poll() is not None, timeout=40)
        assert agent.poll() is None, agent.communicate()[1].decode()[-2000:]
        os.kill(agent.pid, signal.SIGKILL)  # mid-stream: the writer is still writing
        agent.wait(10)
        # where the killed agent's checkpoints stood: only records at or after them may come twice
        store = SqliteCheckpoints(tmp_path / "ck" / "checkpoints.sqlite")
        checkpointed = {"{dev}:{ino}:{fp}:{gen}".format(**v["identity"]): v["offset"] for _, v in store.items()}
        store.close()
        stop_writing.set()
        t.join(10)
        # while the agent is down: more lines, then the kubelet rotates c0's file, and more lines
        write_some(2)
        writers[0].rotate(".20240501-120000")
        write_some(4)
        agent = start_agent_process(config, broker)
        write_some(100)  # the rest (2000 lines per container)
        expected: dict[str, tuple[str, int, str]] = {}
        for w in writers:
            expected.update(w.finish_ids(identities))
        assert len(expected) == sum(len(c) for c in corpus)
        reader.read_until(lambda evs: {e["id"] for e in evs} >= set(expected), timeout=40)
        events = reader.settle(1.0)
    finally:
        returncode, err = stop_agent_process(agent, 20)
    assert returncode == 0, err.decode()[-2000:]
    copies = collections.Counter(e["id"] for e in events)
    assert set(copies) == set(expected), "no line lost, no unknown record"
    for key, e in zip(reader.keys, events):
        assert e["body"] == expected[e["id"]][2], "a duplicate carries the same id and the same body"
        # also the lines of the file rotated while the agent was down keep their container's key
        assert key.decode() == f"corpus/{e['resource']['k8s.pod.name']}/{e['resource']['k8s.container.name']}"
    # only the window of the killed agent that was not yet checkpointed comes twice (the unacknowledged
    # queue plus what was acknowledged since the last checkpoint write)
    twice = [expected[i] for i, n in copies.items() if n > 1]
    assert checkpointed, "the killed agent had written checkpoints"
    for identity, start, _ in twice:
        assert start >= checkpointed.get(identity, 0), (identity, start, checkpointed.get(identity))
    assert all(n <= 2 for n in copies.values())
    reader.close()

"""The agent against the real embedded broker with real files: rotation by rename and by copytruncate,
deletion while running, the Loghub corpus as CRI and docker container output, and backpressure."""

from __future__ import annotations

import os
import shutil
import time

import orjson
import pytest

from tests.agents.helpers import RunningAgent, TopicReader, cri, log_dir, metric, wait_for
from logtide.agents.parser.docker import PIECE_BYTES

CORPUS_FILES = ("OpenSSH_2k.log", "Zookeeper_2k.log", "HDFS_2k.log")


def _lines(prefix: str, start: int, stop: int) -> bytes:
    return b"".join(b"%s line %06d with some text\n" % (prefix.encode(), i) for i in range(start, stop))


@pytest.mark.timeout(60)
def test_rotation_rename_copytruncate_and_delete_while_running(tmp_path, memory_kafka, memory_topic):
    topic = memory_topic(1)
    logs = tmp_path / "logs"
    logs.mkdir()
    app, other = logs / "app.log", logs / "other.log"
    app.write_bytes(_lines("a", 0, 200))
    writer = open(other, "ab", buffering=0)  # a writer that keeps its fd across rename/delete
    writer.write(_lines("o", 0, 100))
    before = {k: metric("logtide_agent_rotations_total", kind=k) for k in ("rename", "truncate", "delete")}
    finished = metric("logtide_agent_files_finished_total")
    reader = TopicReader(memory_kafka, topic)
    expected = {f"a line {i:06d} with some text" for i in range(200)} | {
        f"o line {i:06d} with some text" for i in range(100)
    }
    with RunningAgent(memory_kafka, tmp_path / "ck", include=[str(logs / "*.log")], topic=topic):
        reader.count(300)
        # 1. rename rotation: other.log -> other.log.1 (not matched); the writer still appends to the old file
        os.rename(other, logs / "other.log.1")
        writer.write(_lines("o", 100, 150))
        writer.close()
        (logs / "other.log").write_bytes(_lines("n", 0, 50))
        expected |= {f"o line {i:06d} with some text" for i in range(100, 150)}
        expected |= {f"n line {i:06d} with some text" for i in range(50)}
        reader.count(400)
        # 2. copytruncate of app.log: copy, truncate in place, keep writing
        shutil.copy(app, logs / "app.log.1")
        with open(app, "r+b") as f:
            f.truncate(0)
        time.sleep(0.3)
        with open(app, "ab") as f:
            f.write(_lines("t", 0, 80))
        expected |= {f"t line {i:06d} with some text" for i in range(80)}
        reader.count(480)
        # 3. delete a file while its writer still writes: the agent reads it to the end
        writer = open(logs / "other.log", "ab", buffering=0)
        os.unlink(logs / "other.log")
        writer.write(_lines("d", 0, 30))
        writer.close()
        expected |= {f"d line {i:06d} with some text" for i in range(30)}
        reader.count(510)
        wait_for(lambda: metric("logtide_agent_files_finished_total") >= finished + 2, what="rotated files finished")
    events = reader.settle(0.5)
    bodies = [e["body"] for e in events]
    assert len(bodies) == len(set(bodies)) == 510  # nothing twice, nothing lost
    assert set(bodies) == expected
    ids = [e["id"] for e in events]
    assert len(set(ids)) == 510, "ids stay unique across truncation generations (same offsets again)"
    assert metric("logtide_agent_rotations_total", kind="rename") >= before["rename"] + 1
    assert metric("logtide_agent_rotations_total", kind="truncate") >= before["truncate"] + 1
    assert metric("logtide_agent_rotations_total", kind="delete") >= before["delete"] + 1
    by_body = {e["body"]: e for e in events}
    assert by_body["a line 000000 with some text"]["source"] == "file"
    assert by_body["a line 000000 with some text"]["attributes"]["log.file.path"] == str(app)
    assert reader.headers == [[]] * 510  # no Kafka headers: the value is the whole record
    reader.close()


def _container_file(path, lines: list[bytes], fmt: str, split: int = 120) -> None:
    """Write corpus lines as a container runtime would: CRI (long lines split in P pieces, here every
    ``split`` bytes) or docker (pieces of 16 KiB)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        for i, line in enumerate(lines):
            ts = "2024-05-01T12:%02d:%02d.%09dZ" % (i // 3600 % 60, i // 60 % 60, i)
            stream = "stderr" if i % 7 == 0 else "stdout"
            if fmt == "cri":
                pieces = [line[j : j + split] for j in range(0, len(line), split)] or [b""]
                for n, piece in enumerate(pieces):
                    f.write(cri(piece, stream, "P" if n < len(pieces) - 1 else "F", ts))
            else:
                # docker cuts only at its 16 KiB buffer: a shorter log without newline is a whole line
                text = line.decode("utf-8", "replace")
                pieces = [text[j : j + PIECE_BYTES] for j in range(0, len(text), PIECE_BYTES)] or [""]
                for n, piece in enumerate(pieces):
                    end = "" if n < len(pieces) - 1 else "\n"
                    f.write(orjson.dumps({"log": piece + end, "stream": stream, "time": ts}) + b"\n")


@pytest.mark.timeout(60)
def test_loghub_corpus_as_cri_and_docker_container_output(tmp_path, memory_kafka, memory_topic, corpus_dir):
    topic = memory_topic(3)
    pods = tmp_path / "pods"
    containers = tmp_path / "containers"
    containers.mkdir()
    expected: dict[str, list[str]] = {}
    merged_before = metric("logtide_agent_partial_merges_total")
    for n, name in enumerate(CORPUS_FILES):
        lines = open(os.path.join(corpus_dir, name), "rb").read().splitlines()
        container = name.split("_")[0].lower()
        real = pods / f"corpus_{container}-0_uid-{n}" / container / "0.log"
        _container_file(str(real), lines, "cri" if n % 2 == 0 else "docker")
        # the kubelet's symlink under /var/log/containers points at the same file: read once
        os.symlink(real, containers / f"{container}-0_corpus_{container}-{'%064x' % n}.log")
        expected[f"corpus/{container}-0/{container}"] = [ln.decode("utf-8", "replace") for ln in lines]
    total = sum(len(v) for v in expected.values())
    reader = TopicReader(memory_kafka, topic, partitions=3)
    with RunningAgent(
        memory_kafka,
        tmp_path / "ck",
        mode="kubernetes",
        pods_root=str(pods),
        containers_root=str(containers),
        kubernetes={"enabled": False},
        multiline={"enabled": False},
        topic=topic,
    ):
        reader.count(total, timeout=40)
    events = reader.settle(0.5)
    assert len(events) == total
    got: dict[str, list[str]] = {}
    for key, ev in zip(reader.keys, events):
        got.setdefault(key.decode(), []).append(ev)
    for key, lines in expected.items():
        evs = got[key]  # one key per container keeps its order in one partition
        assert [e["body"] for e in evs] == lines
        ns, pod, container = key.split("/")
        r = evs[0]["resource"]
        assert (r["k8s.namespace.name"], r["k8s.pod.name"], r["k8s.container.name"]) == (ns, pod, container)
        assert evs[0]["source"] == "k8s" and evs[0]["time"] is not None
        assert {e["attributes"]["log.iostream"] for e in evs} == {"stdout", "stderr"}
    assert metric("logtide_agent_partial_merges_total") > merged_before


@pytest.mark.timeout(40)
def test_backpressure_pauses_reading_when_kafka_is_unreachable(tmp_path, new_topic):
    from logtide.checkpoint import SqliteCheckpoints
    from logtide.transport import KafkaSettings

    logs = log_dir(tmp_path, big_log=_lines("b", 0, 20_000))
    dead = KafkaSettings(bootstrap="127.0.0.1:1", client="confluent")
    agent = RunningAgent(
        dead,
        tmp_path / "ck",
        include=[str(logs / "*.log")],
        queue={"max_records": 200},
        read={"chunk_bytes": 4096},
        shutdown_timeout_seconds=0.5,
    )
    with agent:
        wait_for(lambda: agent.agent.sender.in_flight >= 200, what="the queue to fill")
        time.sleep(1.0)
        inflight = agent.agent.sender.in_flight
        position = next(iter(agent.agent.files.values())).tailer.position
        # reading paused at the bound (plus at most one chunk of lines), not at the file's end
        assert inflight <= 200 + 4096 // 20
        assert position < 20_000 * 30 / 4
        assert metric("logtide_agent_backpressure_seconds_total") > 0
        assert agent.agent.kafka_ok() and not agent.agent.kafka_ok(stall_seconds=0.5), "/readyz would fail"
    ((key, state),) = SqliteCheckpoints(tmp_path / "ck" / "checkpoints.sqlite").items()
    assert state["offset"] == 0, "nothing was acknowledged, so the checkpoint did not move"

"""The peers' own test vectors (tests/agents/peer_vectors/*.yaml: Fluent Bit, Filebeat, and the cases of
issue 21) through `logtide agent` as a process: each case is one container's log file in a kubelet-shaped
tree (<pods>/<ns>_<pod>_<uid>/<container>/0.log), its settings given by a `sources` path-glob entry; the
records of each stream are compared one by one with the expected ones (body, time, flags)."""

from __future__ import annotations

import glob
import os

import orjson
import pytest
import yaml

from logtide.agents.parser.docker import PIECE_BYTES
from logtide.agents.parser.timestamps import TimestampParser
from tests.agents.helpers import TopicReader, cri, start_agent_process, stop_agent_process

VECTORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer_vectors")


def load_cases() -> list[dict]:
    cases = []
    for path in sorted(glob.glob(os.path.join(VECTORS, "*.yaml"))):
        for case in yaml.safe_load(open(path, encoding="utf-8")):
            case["file"] = os.path.basename(path)
            cases.append(case)
    return cases


def file_bytes(case: dict) -> bytes:
    """The container log file of a case, as the runtime would have written it."""
    out = b""
    for i, line in enumerate(case["input"]):
        if isinstance(line, dict) and "hex" in line:  # bytes that are not UTF-8
            out += bytes.fromhex(line["hex"]) + b"\n"
        elif isinstance(line, dict):  # a long docker line, cut as docker cuts it
            spec = line["docker_pieces"]
            text = spec["text_repeat"][0] * spec["text_repeat"][1]
            pieces = [text[j : j + PIECE_BYTES] for j in range(0, len(text), PIECE_BYTES)]
            for n, piece in enumerate(pieces):
                out += (
                    orjson.dumps(
                        {
                            "log": piece + ("\n" if n == len(pieces) - 1 else ""),
                            "stream": spec["stream"],
                            "time": "2024-05-01T12:00:00.%09dZ" % i,
                        }
                    )
                    + b"\n"
                )
        elif case["wrap"] == "cri":
            out += cri(line, ts="2024-05-01T12:00:00.%09dZ" % i)
        else:
            out += line.encode() + b"\n"
    return out


def expected_records(case: dict) -> dict[str, list[dict]]:
    """stream → the records expected on it, in order: body plus the flags and time to check."""
    by_stream: dict[str, list[dict]] = {}
    for exp in case["expected"]:
        exp = {"body": exp} if isinstance(exp, str) else dict(exp)
        if "join_input" in exp:
            a, b = exp.pop("join_input")
            exp["body"] = "\n".join(case["input"][a:b])
        if "body_repeat" in exp:
            s, n = exp.pop("body_repeat")
            exp["body"] = s * n
        rec = {
            "body": exp["body"],
            "parse_error": exp.get("parse_error", False),
            "unfinished": exp.get("unfinished", False),
        }
        if "time" in exp:
            rec["time"] = None if exp["time"] is None else TimestampParser().parse(exp["time"].encode())
        by_stream.setdefault(exp.get("stream", "stdout"), []).append(rec)
    return by_stream


def got_record(event: dict, with_time: bool) -> dict:
    attrs = event["attributes"]
    rec = {
        "body": event["body"],
        "parse_error": attrs.get("logtide.parse_error") == "bad_format",
        "unfinished": attrs.get("logtide.partial_unfinished", False),
    }
    if with_time:
        rec["time"] = event["time"]
    return rec


CONFIG = {
    "mode": "kubernetes",
    "http": {"port": 0},
    "kubernetes": {"enabled": False},
    "read": {"scan_interval_seconds": 0.1, "idle_poll_seconds": 0.02, "fingerprint_wait_seconds": 0},
    "partial": {"timeout_seconds": 0.5},
    "multiline": {"timeout_seconds": 0.3},
}


@pytest.mark.timeout(120)
def test_peer_vectors_through_the_agent_process(tmp_path, broker, new_topic):
    cases = load_cases()
    topic = new_topic(3)
    pods = tmp_path / "pods"
    sources, keys = [], {}
    for i, case in enumerate(cases):
        pod_dir = pods / f"vectors_c{i:02d}-0_uid-{i}"
        (pod_dir / "app").mkdir(parents=True)
        (pod_dir / "app" / "0.log").write_bytes(file_bytes(case))
        sources.append({"path": f"{pod_dir}/*/*.log", "format": case.get("format"), "multiline": case["multiline"]})
        keys[f"vectors/c{i:02d}-0/app"] = case
    config = dict(
        CONFIG,
        pods_root=str(pods),
        containers_root=str(tmp_path / "none"),
        topic=topic,
        checkpoint_dir=str(tmp_path / "ck"),
        sources=sources,
    )
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(config))
    total = sum(len(c["expected"]) for c in cases)
    reader = TopicReader(broker, topic, partitions=3)
    agent = start_agent_process(tmp_path / "agent.yaml", broker)
    try:
        reader.read_until(lambda evs: len(evs) >= total or agent.poll() is not None, timeout=60)
        events = reader.settle(1.0)
    finally:
        returncode, err = stop_agent_process(agent)
    assert returncode == 0, err.decode()[-3000:]
    assert b"Traceback" not in err, err.decode()[-3000:]
    got: dict[str, list[dict]] = {}
    for key, ev in zip(reader.keys, events):
        got.setdefault(key.decode(), []).append(ev)
    failures = []
    for key, case in keys.items():
        expected = expected_records(case)
        with_time = {s: any("time" in r for r in recs) for s, recs in expected.items()}
        streams: dict[str, list[dict]] = {}
        for ev in got.get(key, []):
            stream = ev["attributes"]["log.iostream"]
            streams.setdefault(stream, []).append(got_record(ev, with_time.get(stream, False)))
        for stream in set(expected) | set(streams):
            exp = expected.get(stream, [])
            if with_time.get(stream):  # only the records the data gives a time for are checked for it
                exp_times = [r.get("time", "any") for r in exp]
                streams[stream] = [
                    dict(g, time=g["time"] if t != "any" else "any") for g, t in zip(streams.get(stream, []), exp_times)
                ] + streams.get(stream, [])[len(exp) :]
                exp = [dict(r, time=r.get("time", "any")) for r in exp]
            if streams.get(stream, []) != exp:
                failures.append(
                    f"{case['file']} {case['name']} ({case['source']}) {stream}:\n"
                    f"  expected {exp}\n  got      {streams.get(stream, [])}"
                )
    assert not failures, "\n".join(failures)
    reader.close()

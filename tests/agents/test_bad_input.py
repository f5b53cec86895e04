"""Bad input from the issue: the agent keeps going, counts and reports each case, never crashes."""

from __future__ import annotations

import os

import pytest

from logtide.agents.discovery import Found
from tests.agents.helpers import RunningAgent, TopicReader, cri, log_dir, metric, wait_for

BAD = ("invalid_utf8", "line_too_long", "bad_timestamp", "partial_unfinished", "file_vanished", "bad_format")


@pytest.mark.timeout(60)
def test_bad_input_is_counted_and_the_agent_keeps_going(tmp_path, memory_kafka, memory_topic):
    topic = memory_topic(1)
    pods = tmp_path / "pods"
    c = pods / "ns_bad-0_uid-bad" / "app"
    c.mkdir(parents=True)
    before = {k: metric("logtide_agent_bad_input_total", kind=k) for k in BAD}
    ten_mb = b"x" * (10 * 1024 * 1024)
    (c / "0.log").write_bytes(
        cri(b"bad utf-8 \xff\xfe here")
        + cri("broken timestamp line", ts="2024-05-01T99:00:00Z")
        + cri(ten_mb)  # one 10 MB line in one CRI record
        + b"".join(cri(ten_mb[i : i + 16384], tag="P") for i in range(0, 2 * 1024 * 1024, 16384))
        + cri("end of the split 2 MB line")
        + b"garbage that is not CRI\n"
        + cri("starts but never ends", stream="stderr", tag="P")
        + cri("still going after all that")
    )
    # listed by the glob but gone when opened: a dangling symlink (the kubelet removed the file)
    os.symlink(tmp_path / "gone.log", pods / "ns_bad-0_uid-bad" / "app" / "1.log")
    reader = TopicReader(memory_kafka, topic)
    with RunningAgent(
        memory_kafka,
        tmp_path / "ck",
        mode="kubernetes",
        pods_root=str(pods),
        containers_root=str(tmp_path / "none"),
        kubernetes={"enabled": False},
        topic=topic,
        read={"max_line_bytes": 256 * 1024},
        partial={"max_bytes": 1024 * 1024, "timeout_seconds": 0.5},
    ) as agent:
        reader.read_until(lambda evs: any(e["body"] == "starts but never ends" for e in evs))
        # a file that disappears between listing and opening
        gone = Found(str(tmp_path / "vanished.log"), str(tmp_path / "vanished.log"), 1, 1, 100, 0.0)
        wait_for(lambda: agent.agent.files, what="a file")
        assert agent.agent.open_file("1:1", gone, 0.0) is None
    events = reader.settle(0.5)
    by_body = {e["body"][:40]: e for e in events}
    assert "bad utf-8 \ufffd\ufffd here" in by_body
    assert by_body["broken timestamp line"]["time"] is None
    long_one = [e for e in events if e["body"].startswith("xxxx")]
    assert len(long_one) == 2
    assert all(e["attributes"]["logtide.truncated"] is True for e in long_one)
    assert len(long_one[0]["body"]) < 300 * 1024 and len(long_one[1]["body"]) <= 1024 * 1024
    assert not any(e["body"].endswith("end of the split 2 MB line") for e in events), "cut at partial.max_bytes"
    assert "garbage that is not CRI" in by_body
    assert by_body["starts but never ends"]["attributes"]["logtide.partial_unfinished"] is True
    assert "still going after all that" in by_body
    for kind in BAD:
        assert metric("logtide_agent_bad_input_total", kind=kind) > before[kind], kind


@pytest.mark.timeout(30)
def test_rate_limit_drops_and_counts(tmp_path, memory_kafka, memory_topic):
    topic = memory_topic(1)
    logs = log_dir(tmp_path, storm_log=b"".join(b"storm %05d\n" % i for i in range(3000)))
    dropped = metric("logtide_agent_dropped_records_total", reason="rate_limited")
    reader = TopicReader(memory_kafka, topic)
    with RunningAgent(
        memory_kafka,
        tmp_path / "ck",
        include=[str(logs / "*.log")],
        topic=topic,
        rate_limit={"lines_per_second": 10, "burst": 500},
    ):
        wait_for(
            lambda: metric("logtide_agent_dropped_records_total", reason="rate_limited") >= dropped + 2000, what="drops"
        )
        reader.count(500)
        # stop only once every line was read (sent or dropped): on a fast transport the storm is
        # still being read when 500 have arrived
        wait_for(
            lambda: (
                len(reader.settle(0.2)) + metric("logtide_agent_dropped_records_total", reason="rate_limited") - dropped
                >= 3000
            ),
            timeout=20,
            what="every line sent or dropped",
        )
    events = reader.settle(0.5)
    assert 500 <= len(events) < 1000
    assert len(events) + metric("logtide_agent_dropped_records_total", reason="rate_limited") - dropped == 3000

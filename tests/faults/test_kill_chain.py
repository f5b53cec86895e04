"""kill -9 of every role of the chain, repeatedly, while lines are being written; restart; then count
every line from the files to each sink: 0 lost, duplicates only with equal ids, 0 after sink dedup.

files (Loghub lines in CRI framing) → agent → logtide.raw.k8s → processor → logtide.route.{audit,analytics}
→ sink (audit archive, Parquet). The collectors' kill -9 is tests/collectors/test_collect_scaleout.py
(a replica killed mid-stream, its share taken over, 0 lost); the alerting engine's restart with its
notification log is tests/alerting; the sinks' own kill -9 with PostgreSQL/Loki is tests/sinks/test_sink_e2e.py.
"""

from __future__ import annotations

import collections
import threading

import pytest

from tests.faults.chain import AUDITED, RAW, Chain, wait_until
from tests.faults.conftest import FULL, report
from tests.faults.harness import kill_loop

#: CI: 3 containers (6000 lines) and 3 kills per role; FAULT_FULL=1: 8 containers (16000 lines), 8 kills.
CONTAINERS = [
    "Hadoop_2k.log",
    "OpenSSH_2k.log",
    "Spark_2k.log",
    "HDFS_2k.log",
    "Zookeeper_2k.log",
    "Apache_2k.log",
    "Linux_2k.log",
    "OpenStack_2k.log",
][: 8 if FULL else 3]
KILLS = 8 if FULL else 3
WRITE_S = 40.0 if FULL else 14.0


@pytest.mark.timeout(600 if FULL else 170)
def test_kill9_every_role_during_the_stream_loses_nothing(own_broker, tmp_path):
    containers = {AUDITED if i == 0 else f"svc{i}": name for i, name in enumerate(CONTAINERS)}
    chain = Chain(tmp_path, own_broker, containers)
    chain.create_topics()
    total = chain.writer.total
    writer = threading.Thread(target=chain.writer.write_all, args=(WRITE_S,), daemon=True)
    writer.start()
    errors: list[BaseException] = []

    def killer(name: str, seed: int):
        try:
            # processor and sink restarts cost a group rejoin (~3-6 s): kill them a little less often
            gap = (1.5, 3.5) if name == "agent" else (2.5, 5.0)
            kill_loop(chain.roles[name], KILLS, lambda: True, min_gap=gap[0], max_gap=gap[1], seed=seed)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    killers = [threading.Thread(target=killer, args=(name, n), daemon=True) for n, name in enumerate(chain.roles)]
    try:
        for t in killers:
            t.start()
        for t in killers:
            t.join(300)
        writer.join(120)
        assert not errors, errors
        assert chain.writer.written == {c: len(v) for c, v in chain.writer.lines.items()}

        # everything written is in Kafka: one distinct id per line, and duplicates are exact copies
        wait_until(lambda: chain.distinct(RAW) >= total, 120, "every line in logtide.raw.k8s", chain)
        raw = chain.raw_events()
        by_id: dict[str, dict] = {}
        for e in raw:
            first = by_id.setdefault(e["id"], e)
            assert first["body"] == e["body"] and first["time"] == e["time"], "a duplicate differs from its original"
        assert len(by_id) == total, f"lost {total - len(by_id)} of {total} lines between the files and Kafka"
        bodies = collections.Counter((e["resource"]["k8s.container.name"], e["body"]) for e in by_id.values())
        written = collections.Counter(
            (c, line.decode("utf-8", "replace")) for c, lines in chain.writer.lines.items() for line in lines
        )
        assert bodies == written, "every line arrived once (by id) with its own text"
        audited = {i for i, e in by_id.items() if e["resource"]["k8s.container.name"] == AUDITED}

        # ... and at each sink, after its dedup: exactly once
        wait_until(
            lambda: chain.parquet_counts()[1] >= total and len(chain.audit_ids()) >= len(audited),
            150,
            "every line in the sinks",
            chain,
            describe=lambda: f"parquet {chain.parquet_counts()}, audit {len(chain.audit_ids())}/{len(audited)}",
        )
        codes = chain.stop()
    finally:
        for role in chain.roles.values():
            role.kill9()
        chain.close_readers()
    assert codes == {"agent": 0, "process": 0, "sink": 0}, codes

    analytics_copies = chain.topic_ids("logtide.route.analytics")
    audit_copies = chain.topic_ids("logtide.route.audit")
    assert set(analytics_copies) == set(by_id) and set(audit_copies) == audited

    parquet = chain.parquet_ids()
    assert set(parquet) == set(by_id) and max(parquet.values()) == 1, "Parquet: each line exactly once"
    assert chain.query("SELECT count(*) AS n, count(DISTINCT id) AS d FROM events") == [{"n": total, "d": total}]
    audit = chain.audit_ids()
    assert set(audit) == audited and max(audit.values()) == 1, "audit archive: each line exactly once"
    verify = chain.audit_verify()
    assert verify.returncode == 0, verify.stdout + verify.stderr

    figures = {
        "lines": total,
        "audited_lines": len(audited),
        "kills": {name: role.kills for name, role in chain.roles.items()},
        "lost": 0,
        "raw_duplicates": len(raw) - len(by_id),
        "route_duplicates": sum(analytics_copies.values())
        - len(analytics_copies)
        + sum(audit_copies.values())
        - len(audit_copies),
        "sink_duplicates": 0,
    }
    report("kill_chain", figures)

"""Kafka unreachable (a TCP proxy cut) while `logtide agent` and `logtide process` run and lines keep
being written: both hold back, then catch up when the broker returns; 0 lost; their memory stays bounded
(the agent's unacknowledged queue and the processor's batch bound it, not the length of the outage)."""

from __future__ import annotations

import threading
import time

import pytest

from tests.faults.chain import RAW, Chain, rss_kb, wait_until
from tests.faults.conftest import FULL, OUTAGE_S, report

CONTAINERS = {"auth": "Hadoop_2k.log", "web": "Apache_2k.log", "ssh": "OpenSSH_2k.log"}
if FULL:
    CONTAINERS.update({"spark": "Spark_2k.log", "hdfs": "HDFS_2k.log", "zk": "Zookeeper_2k.log"})
#: a role process above this resident size after an outage would mean it buffers the outage in memory
RSS_LIMIT_MB = 400


class RssSampler(threading.Thread):
    """Peak resident size of each role process, sampled every 0.2 s."""

    def __init__(self, chain: Chain):
        super().__init__(daemon=True)
        self.chain = chain
        self.peak_kb = {name: 0 for name in chain.roles}
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for name, role in self.chain.roles.items():
                if role.proc is not None:
                    self.peak_kb[name] = max(self.peak_kb[name], rss_kb(role.proc.pid))
            time.sleep(0.2)


@pytest.mark.timeout(OUTAGE_S + 150)
def test_agent_and_processor_hold_back_during_outage_and_catch_up(fault_broker, tmp_path):
    chain = Chain(tmp_path, fault_broker.bootstrap, CONTAINERS, roles=("agent", "process"))
    chain.create_topics()
    total = chain.writer.total
    sampler = RssSampler(chain)
    try:
        chain.start()
        sampler.start()
        writer = threading.Thread(target=chain.writer.write_all, args=(OUTAGE_S + 4,), daemon=True)
        writer.start()
        # the chain works before the cut
        wait_until(lambda: chain.distinct("logtide.route.analytics") > 0, 60, "first events routed", chain)
        before_cut = dict(sampler.peak_kb)
        fault_broker.proxy.cut()
        cut_at = time.monotonic()
        writer.join(OUTAGE_S + 30)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - cut_at)))
        assert not chain.dead_roles(), "a role gave up while Kafka was away: " + str(chain.dead_roles())
        during_cut = dict(sampler.peak_kb)
        fault_broker.proxy.heal()
        healed_at = time.monotonic()
        assert chain.writer.written == {c: len(v) for c, v in chain.writer.lines.items()}

        wait_until(
            lambda: chain.distinct("logtide.route.analytics") >= total,
            120,
            "every line routed after the broker came back",
            chain,
            describe=lambda: f"{chain.distinct('logtide.route.analytics')}/{total}",
        )
        caught_up_s = time.monotonic() - healed_at
        codes = chain.stop()
    finally:
        sampler.stop.set()
        for role in chain.roles.values():
            role.kill9()
        chain.close_readers()
    assert codes == {"agent": 0, "process": 0}, codes
    raw = chain.topic_ids(RAW)
    routed = chain.topic_ids("logtide.route.analytics")
    assert len(raw) == total and set(routed) == set(raw), "0 lost"
    peak_mb = {name: round(kb / 1024, 1) for name, kb in sampler.peak_kb.items()}
    assert all(mb < RSS_LIMIT_MB for mb in peak_mb.values()), peak_mb
    report(
        "chain_outage",
        {
            "outage_s": OUTAGE_S,
            "lines": total,
            "lost": 0,
            "raw_duplicates": sum(raw.values()) - len(raw),
            "route_duplicates": sum(routed.values()) - len(routed),
            "caught_up_s_after_heal": round(caught_up_s, 1),
            "peak_rss_mb": peak_mb,
            "peak_rss_mb_before_cut": {n: round(kb / 1024, 1) for n, kb in before_cut.items()},
            "peak_rss_mb_end_of_cut": {n: round(kb / 1024, 1) for n, kb in during_cut.items()},
        },
    )

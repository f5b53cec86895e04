"""`logtide up`'s alerting part (sample rules, printing webhook receiver), hot reload of rules
(bad edits refused, good ones applied), and the partition split for scale-out."""

import threading
import time

import pytest
import yaml

from alert_helpers import S, T0, config, event

from logtide import envelope
from logtide.health import HealthServer
from logtide.transport import TopicPartition, connect
from logtide.up import UpContext

from logtide.alerting.engine import AlertEngine, Ticker
from logtide.alerting.rules import parse_rules
from logtide.alerting.store import Store
from logtide.alerting.up import up


@pytest.mark.timeout(90)
def test_up_runs_sample_rules_and_prints_notifications(tmp_path, fast_kafka, new_topic, capsys):
    topic = new_topic(1)
    health = HealthServer("127.0.0.1", 0)
    ctx = UpContext(
        kafka=fast_kafka,
        transport=connect(fast_kafka),
        workdir=tmp_path,
        health=health,
        options={"topics": [topic], "session_timeout_seconds": 6},
    )
    services = up(ctx)
    names = [s.name for s in services]
    assert names[0] == "alert-webhook-receiver" and "alert-engine" in names
    stop = threading.Event()
    threads = [threading.Thread(target=s.run, args=(stop,), daemon=True) for s in services]
    for t in threads:
        t.start()
    try:
        p = ctx.transport.producer()
        e = event(1, time.time_ns(), service="payments", level="FATAL", body="payment provider down")
        p.produce(topic, envelope.encode(e), key=b"k")
        p.flush(10)
        deadline = time.monotonic() + 40
        out = ""
        while "ALERT FIRING" not in out and time.monotonic() < deadline:
            time.sleep(0.2)
            out += capsys.readouterr().out
        assert "ALERT FIRING receiver=local" in out
        assert "alertname=FatalLogged" in out and "service_name=payments" in out
        assert "payment provider down" in out  # the sample event reached the annotation template
    finally:
        stop.set()
        for t in threads:
            t.join(30)


RULES = """rules:
  - name: Boom
    kind: match
    condition: body contains "boom"
    group_by: [service.name]
"""


def test_hot_reload_refuses_bad_edits_and_applies_good_ones(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    eng = AlertEngine(config(), parse_rules(yaml.safe_load(RULES), str(path)), Store(":memory:"), notify=lambda n: None)
    ticker = Ticker(eng, [path])
    eng.ingest([(event(1, T0), 0)])
    assert len(eng.states.alerts) == 1
    path.write_text(RULES.replace('"boom"', '"boom" and'))  # broken condition
    time.sleep(0.01)
    assert ticker.reload_if_changed() is False
    assert list(eng.evaluators) == ["Boom"] and len(eng.states.alerts) == 1  # old rules keep running
    path.write_text(RULES.replace("Boom", "Bang") + "    window: 2m\n")
    assert ticker.reload_if_changed() is True
    assert list(eng.evaluators) == ["Bang"]
    # the removed rule's alert resolves (and its resolved notification goes out), the new one fires
    eng.ingest([(event(2, T0 + S), 0)])
    states = {a.labels["alertname"]: a.state for a in eng.states.alerts.values()}
    assert states == {"Boom": "resolved", "Bang": "firing"}


SHARDED = """rules:
  - name: PerPod
    kind: threshold
    count: 2
    group_by: [k8s.namespace.name, k8s.pod.name, k8s.container.name]
  - name: PerService
    kind: threshold
    count: 2
    group_by: [service.name]
"""


def test_partitioned_and_global_replicas_split_the_rules(tmp_path):
    rules = parse_rules(yaml.safe_load(SHARDED), "r.yaml")
    part = AlertEngine(config(shard={"mode": "partitioned"}), rules, Store(tmp_path / "p.db"), notify=lambda n: None)
    glob = AlertEngine(config(shard={"mode": "global"}), rules, Store(":memory:"), notify=lambda n: None)
    assert list(part.evaluators) == ["PerPod"] and list(glob.evaluators) == ["PerService"]
    part.ingest([(event(1, T0), 0), (event(2, T0 + S), 0), (event(3, T0, service="cart"), 1)])
    part.persist()
    assert len(part.states.alerts) == 1
    # partition 0 moves to another replica: its state leaves memory here, stays in the store
    part.partitions_revoked([TopicPartition("t", 0)])
    assert part.states.alerts == {} and list(part.evaluators["PerPod"].series) == [("shop", "cart-0", "cart")]
    part.partitions_assigned([TopicPartition("t", 0)])
    assert ("shop", "checkout-0", "checkout") in part.evaluators["PerPod"].series
    assert [a.labels["k8s_pod_name"] for a in part.states.alerts.values()] == ["checkout-0"]

"""Pod metadata and exclusions through the real `kubernetes` client talking HTTP to an API server double
(list with fieldSelector, watch streams, label/annotation changes, deletion, the server going down)."""

from __future__ import annotations

import time

import pytest

from tests.agents.helpers import RunningAgent, TopicReader, metric, wait_for, write_cri
from tests.agents.kube_api_double import namespace, pod


def _kube(api_url: str, **overrides) -> dict:
    return {
        "api_server": api_url,
        "node_name": "node-1",
        "retry_seconds": 0.2,
        "wait_for_metadata_seconds": 3.0,
        "watch_timeout_seconds": 30,
        **overrides,
    }


@pytest.mark.timeout(60)
def test_metadata_exclusions_watch_changes_and_api_down(tmp_path, memory_kafka, memory_topic, api):
    topic = memory_topic(1)
    pods = tmp_path / "pods"
    api.put("namespaces", namespace("shop"))
    api.put("namespaces", namespace("quiet", {"logtide.io/exclude": "true"}))
    web = pod(
        "shop",
        "web-7d9f8b-x1",
        "uid-web",
        labels={"app": "web", "pod-template-hash": "7d9f8b"},
        annotations={"logtide.io/exclude-containers": "sidecar"},
        containers={"app": "registry.example/web:1.4.2", "sidecar": "envoy:1.29"},
        owner=("ReplicaSet", "web-7d9f8b"),
    )
    api.put("pods", web)
    api.put("pods", pod("shop", "noisy-1", "uid-noisy", annotations={"logtide.io/exclude": "true"}))
    api.put("pods", pod("quiet", "q-1", "uid-q"))
    api.put("pods", pod("shop", "elsewhere-1", "uid-else", node="node-2"))
    web_log = pods / "shop_web-7d9f8b-x1_uid-web" / "app" / "0.log"
    write_cri(web_log, "web line 1")
    write_cri(pods / "shop_web-7d9f8b-x1_uid-web" / "sidecar" / "0.log", "sidecar line (excluded container)")
    write_cri(pods / "shop_noisy-1_uid-noisy" / "app" / "0.log", "noisy line (excluded pod)")
    write_cri(pods / "quiet_q-1_uid-q" / "app" / "0.log", "quiet line (excluded namespace annotation)")
    write_cri(pods / "kube-system_dns-1_uid-dns" / "dns" / "0.log", "dns line (excluded namespace glob)")
    errors_before = metric("logtide_agent_kube_api_errors_total")
    reader = TopicReader(memory_kafka, topic)
    with RunningAgent(
        memory_kafka,
        tmp_path / "ck",
        metadata=True,
        mode="kubernetes",
        pods_root=str(pods),
        containers_root=str(tmp_path / "none"),
        topic=topic,
        kubernetes=_kube(api.url, namespaces_exclude=["kube-*"]),
    ) as agent:
        metadata = agent.metadata
        first = reader.count(1)[0]
        time.sleep(0.5)
        assert [e["body"] for e in reader.settle(0.3)] == ["web line 1"]
        r = first["resource"]
        assert r["k8s.pod.labels.app"] == "web"
        assert r["k8s.replicaset.name"] == "web-7d9f8b" and r["k8s.deployment.name"] == "web"
        assert (r["container.image.name"], r["container.image.tag"]) == ("registry.example/web", "1.4.2")
        assert r["k8s.node.name"] == "node-1" and r["k8s.pod.uid"] == "uid-web" and r["service.name"] == "web"
        assert any("fieldSelector=spec.nodeName%3Dnode-1" in q for q in api.requests if q.startswith("/api/v1/pods"))
        assert metadata.pod(agent.agent.files[next(iter(agent.agent.files))].ref) is not None
        with metadata._lock:
            assert "uid-else" not in metadata._pods, "only this node's pods are listed"

        # a label change arrives through the watch and shows on the next lines
        ref = agent.agent.files[next(iter(agent.agent.files))].ref
        api.put(
            "pods", {**web, "metadata": {**web["metadata"], "labels": {**web["metadata"]["labels"], "tier": "front"}}}
        )
        wait_for(lambda: metadata.pod(ref).labels.get("tier") == "front", what="the watch event")
        write_cri(web_log, "web line 2")
        reader.count(2)
        assert reader.events[1]["resource"].get("k8s.pod.labels.tier") == "front", reader.events[1]

        # a new pod: its file appears before the watch tells us about it; its lines still get metadata
        write_cri(pods / "shop_late-1_uid-late" / "app" / "0.log", "late line")
        api.put("pods", pod("shop", "late-1", "uid-late", labels={"app": "late"}))
        reader.count(3)
        assert reader.events[2]["resource"].get("k8s.pod.labels.app") == "late"

        # the pod is deleted: its metadata is kept a while for the file's last lines
        api.delete("pods", web)
        wait_for(lambda: metadata.pod(ref).deleted_at is not None, what="deletion seen")
        write_cri(web_log, "web line 3 after deletion")
        reader.count(4)
        assert reader.events[3]["resource"]["k8s.pod.labels.app"] == "web"

        # the API server goes down: lines keep flowing with the cached metadata, errors are counted
        api.down()
        wait_for(lambda: metric("logtide_agent_kube_api_errors_total") > errors_before, what="an API error")
        write_cri(web_log, "web line 4 while the API is down")
        reader.count(5)
        assert reader.events[4]["resource"]["k8s.pod.labels.app"] == "web"
        api.up()
        wait_for(lambda: api.watching("pods") >= 1, timeout=10, what="the watch to come back")
    events = reader.settle(0.5)
    assert [e["body"] for e in events] == [
        "web line 1",
        "web line 2",
        "late line",
        "web line 3 after deletion",
        "web line 4 while the API is down",
    ]


@pytest.mark.timeout(30)
def test_api_server_unreachable_from_the_start(tmp_path, memory_kafka, memory_topic):
    topic = memory_topic(1)
    pods = tmp_path / "pods"
    write_cri(pods / "shop_a-1_uid-a" / "app" / "0.log", "no api, still shipped")
    errors_before = metric("logtide_agent_kube_api_errors_total")
    reader = TopicReader(memory_kafka, topic)
    with RunningAgent(
        memory_kafka,
        tmp_path / "ck",
        metadata=True,
        mode="kubernetes",
        kubernetes=_kube("http://127.0.0.1:1"),
        pods_root=str(pods),
        containers_root=str(tmp_path / "none"),
        topic=topic,
    ):
        (ev,) = reader.count(1)
        wait_for(lambda: metric("logtide_agent_kube_api_errors_total") > errors_before, what="errors counted")
    assert ev["body"] == "no api, still shipped"
    assert ev["resource"]["k8s.pod.name"] == "a-1" and "k8s.pod.labels.app" not in ev["resource"]

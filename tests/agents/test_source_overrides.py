"""Per-source settings: the annotations logtide.io/parser and logtide.io/multiline (pod-wide or
``-<container>``; the pod's, else its namespace's), read from the Kubernetes API double, win over the
`sources` path globs and the top level; an invalid annotation is ignored, counted and logged; the
settings follow an annotation change."""

from __future__ import annotations

import pytest

from logtide.agents.config import AgentConfig
from logtide.agents.pod_metadata import PodMeta
from tests.agents.helpers import RunningAgent, TopicReader, metric, wait_for, write_cri
from tests.agents.kube_api_double import namespace, pod

TRACE = ["ERROR request failed", "\tat a.B.c(B.java:1)", "\tat d.E.f(E.java:2)"]


@pytest.mark.timeout(60)
def test_pod_annotations_choose_parser_and_multiline(tmp_path, fast_kafka, new_topic, api):
    topic = new_topic(1)
    pods = tmp_path / "pods"
    api.put("namespaces", namespace("shop"))
    api.put(
        "pods",
        pod("shop", "dated-1", "uid-dated", annotations={"logtide.io/multiline": '{"start_pattern": "^\\\\d{4}-"}'}),
    )
    api.put(
        "pods",
        pod(
            "shop",
            "raw-1",
            "uid-raw",
            containers={"app": "x", "side": "y"},
            annotations={"logtide.io/parser-app": "plain", "logtide.io/multiline-app": "off"},
        ),
    )
    api.put("pods", pod("shop", "typo-1", "uid-typo", annotations={"logtide.io/multiline": "cobol"}))
    api.put("pods", pod("shop", "glob-1", "uid-glob"))
    api.put("namespaces", namespace("legacy", {"logtide.io/multiline": "off"}))  # a namespace's own
    api.put("pods", pod("legacy", "old-1", "uid-old"))
    api.put("pods", pod("legacy", "own-1", "uid-own", annotations={"logtide.io/multiline": "java"}))  # the pod wins
    write_cri(
        pods / "shop_dated-1_uid-dated" / "app" / "0.log",
        "booting",
        "2024-05-01 12:00 ERROR x",
        "  detail",
        "2024-05-01 12:01 INFO y",
    )
    write_cri(pods / "shop_raw-1_uid-raw" / "app" / "0.log", *TRACE)
    write_cri(pods / "shop_raw-1_uid-raw" / "side" / "0.log", *TRACE)  # the -app annotations are not its
    write_cri(pods / "shop_typo-1_uid-typo" / "app" / "0.log", *TRACE)
    write_cri(pods / "shop_glob-1_uid-glob" / "app" / "0.log", *TRACE)
    write_cri(pods / "legacy_old-1_uid-old" / "app" / "0.log", *TRACE)
    write_cri(pods / "legacy_own-1_uid-own" / "app" / "0.log", *TRACE)
    bad_before = metric("logtide_agent_bad_input_total", kind="bad_annotation")
    reader = TopicReader(fast_kafka.bootstrap, topic)
    kube = {
        "api_server": api.url,
        "node_name": "node-1",
        "retry_seconds": 0.2,
        "wait_for_metadata_seconds": 3.0,
        "watch_timeout_seconds": 30,
    }
    with RunningAgent(
        fast_kafka,
        tmp_path / "ck",
        metadata=True,
        mode="kubernetes",
        pods_root=str(pods),
        containers_root=str(tmp_path / "none"),
        topic=topic,
        kubernetes=kube,
        sources=[{"path": str(pods / "shop_glob-1_*" / "*" / "*.log"), "multiline": {"enabled": False}}],
    ) as agent:
        reader.count(3 + 3 + 1 + 1 + 3 + 3 + 1)
        reader.settle(1.0)
        # an annotation added later applies from the file's next lines
        api.put("pods", pod("shop", "glob-1", "uid-glob", annotations={"logtide.io/multiline": "java"}))
        glob_file = next(tf for tf in agent.agent.files.values() if "glob-1" in tf.path)
        wait_for(lambda: glob_file.multiline_settings.enabled, what="the new annotation")
        write_cri(pods / "shop_glob-1_uid-glob" / "app" / "0.log", *TRACE)
        reader.count(16)
        events = reader.settle(1.0)
    by_pod: dict[str, list[str]] = {}
    for e in events:
        r = e["resource"]
        by_pod.setdefault(f"{r['k8s.pod.name']}/{r['k8s.container.name']}", []).append(e["body"])
    assert by_pod["dated-1/app"] == ["booting", "2024-05-01 12:00 ERROR x\n  detail", "2024-05-01 12:01 INFO y"]
    # parser plain: the CRI line as it is; multiline off: one event per line
    assert [b.split(" ", 3)[3] for b in by_pod["raw-1/app"]] == TRACE
    assert by_pod["raw-1/side"] == ["\n".join(TRACE)]
    assert by_pod["typo-1/app"] == ["\n".join(TRACE)], "an invalid annotation leaves the defaults"
    assert metric("logtide_agent_bad_input_total", kind="bad_annotation") == bad_before + 1
    assert by_pod["old-1/app"] == TRACE, "the namespace's annotation"
    assert by_pod["own-1/app"] == ["\n".join(TRACE)], "the pod's annotation wins over its namespace's"
    assert by_pod["glob-1/app"] == TRACE + ["\n".join(TRACE)], "the sources path glob, then the annotation"


def test_annotation_values_and_precedence():
    base = AgentConfig.model_validate(
        {"sources": [{"path": "/p/*", "format": "cri", "multiline": {"languages": ["go"]}}]}
    )
    assert base.source_settings("/p/x")[0] == "cri" and base.source_settings("/p/x")[1].languages == ["go"]
    assert base.source_settings("/q/x") == ("auto", base.multiline)
    meta = PodMeta(
        "u",
        "ns",
        "p",
        annotations={
            "logtide.io/multiline": "java, ruby",
            "logtide.io/multiline-db": '{"end_pattern": ";$"}',
            "logtide.io/parser": "docker",
            "logtide.io/parser-db": "xml",
        },
    )
    app = meta.source_annotations("app")
    assert (app.format, app.multiline, app.error) == ("docker", {"enabled": True, "languages": ["java", "ruby"]}, None)
    db = meta.source_annotations("db")
    assert db.format is None and db.multiline == {"end_pattern": ";$"}
    assert "logtide.io/parser-db" in db.error
    assert meta.source_annotations("app") is app, "parsed once per pod version"
    with pytest.raises(ValueError, match="give at most one"):
        AgentConfig.model_validate({"multiline": {"start_pattern": "a", "end_pattern": "b"}})
    with pytest.raises(ValueError, match="join_next_pattern is not a valid"):
        AgentConfig.model_validate({"sources": [{"path": "*", "multiline": {"join_next_pattern": "("}}]})

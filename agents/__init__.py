"""The node agent (`logtide agent`, a DaemonSet): container log files to Kafka, checkpointed after acks.

One file per concern (the shape of Vector's kubernetes_logs source):

    config.py          AgentConfig (pydantic) — examples/agent.yaml shows every field
    cli.py             `logtide agent --config FILE` and the quick mode (--path GLOB …)
    up.py              the agent's part of `logtide up` (files mode on <workdir>/agent-logs)
    agent.py           the service: the read → parse → merge → send loop, rotation, checkpoints
    discovery.py       include/exclude globs → one entry per (device, inode)
    path_info.py       namespace/pod/uid/container from the kubelet's path layouts
    file_identity.py   device + inode + fingerprint of the first bytes (+ truncation generation)
    tailer.py          complete lines with byte offsets from one file; long lines cut; truncation seen
    tracked_file.py    what is kept per file (identity, reader, mergers, what was sent, enrichment)
    parser/            cri.py, docker.py, plain.py, picker.py (format per file), timestamps.py
    partial_merger.py  CRI P…F / docker pieces → one line (size cap, timeout)
    multiline.py       stack traces → one record (built-in Java/Python/Go rules or a start pattern)
    pod_metadata.py    list+watch of this node's pods and namespaces, cached, kept after deletion
    exclusion.py       logtide.io/exclude, logtide.io/exclude-containers, namespace include/exclude
    resource.py        the envelope's OTel k8s resource attributes
    rate_limit.py      per-container token bucket
    metrics.py         logtide_agent_* Prometheus metrics
"""

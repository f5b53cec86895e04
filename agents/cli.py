"""`logtide agent`: the node agent (DaemonSet) — container log files to Kafka, checkpointed after acks.

Two ways to run it:
  logtide agent --config /etc/logtide/agent.yaml          everything from the config (examples/agent.yaml)
  logtide agent --path '/var/log/app/*.log' --checkpoint-dir /var/lib/logtide --bootstrap kafka:9092
                                                          quick mode: the defaults below, on the files
                                                          the globs match
What every file goes through (quick mode included; config keys in brackets):
  format [format, sources]: picked per file, once: docker json-file (docker's file layout, or a first
    line of its exact shape: log, stream, time), CRI (<time> <stdout|stderr> <P|F> <message>), else
    plain lines; --format forces one. A line not in its file's format is sent alone, as text, flagged
    logtide.parse_error.
  split lines [partial]: CRI P pieces and docker's 16 KiB pieces are joined into one line.
  stack traces [multiline, sources]: java, python, go and ruby traces become one event (or a
    start/continue/end pattern); pods and namespaces override with the logtide.io/parser and
    logtide.io/multiline annotations.
  checkpoints: a file's offset is saved only after Kafka acknowledged every record before it.
Flags given with --config override the file's values.
"""

from __future__ import annotations

import argparse
import os

from logtide.agents.config import AgentConfig
from logtide.config import load_config, validate_config
from logtide.role import Role, Runtime, add_role_arguments, apply_arguments, run_role
from logtide.topics import raw, raw_spec
from logtide.transport import TopicSpec

EPILOG = """examples:
  logtide agent --config examples/agent.yaml --bootstrap 127.0.0.1:9092
  logtide agent --check --config examples/agent.yaml     validate the config offline and exit
  logtide agent --path '/var/log/nginx/*.log' --exclude '*.gz' --checkpoint-dir /tmp/agent \\
                --bootstrap 127.0.0.1:9092 --topic logtide.raw.file
  logtide agent --path '/var/log/pods/**/*.log' --mode kubernetes --no-metadata \\
                --checkpoint-dir /tmp/agent --bootstrap 127.0.0.1:9092
metrics: /metrics on --http-port (default 9464): logtide_agent_* (lines/bytes read, records produced,
partial/multiline merges, rotations, checkpoint lag per file, dropped records by reason, queue depth)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "agent",
        help="tail container (or any) log files into Kafka, checkpointed after acks",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_role_arguments(p)
    p.add_argument("--path", action="append", metavar="GLOB", help="file glob to tail (repeatable); quick mode")
    p.add_argument("--exclude", action="append", metavar="GLOB", help="glob of files to leave out (repeatable)")
    p.add_argument("--checkpoint-dir", metavar="DIR", help="where the SQLite checkpoint file lives")
    p.add_argument("--topic", metavar="TOPIC", help="Kafka topic (default logtide.raw.file / logtide.raw.k8s)")
    p.add_argument("--mode", choices=["files", "kubernetes"], help="files (default in quick mode) or kubernetes")
    p.add_argument("--format", choices=["auto", "cri", "docker", "plain"], help="line format (default auto)")
    p.add_argument("--no-metadata", action="store_true", help="kubernetes mode without the Kubernetes API")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (benchmarks, tests)")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> AgentConfig:
    from logtide.cli import UsageError

    if args.config:
        config = load_config(args.config, AgentConfig)
    elif args.path:
        config = AgentConfig(mode="files")
    else:
        raise UsageError("give --config FILE, or --path GLOB (with --checkpoint-dir and --bootstrap) for quick mode")
    data = config.model_dump()
    for flag, field in (
        ("path", "include"),
        ("exclude", "exclude"),
        ("checkpoint_dir", "checkpoint_dir"),
        ("topic", "topic"),
        ("mode", "mode"),
        ("format", "format"),
    ):
        value = getattr(args, flag, None)
        if value:
            data[field] = value
    if getattr(args, "no_metadata", False):
        data["kubernetes"]["enabled"] = False
    config = validate_config(data, AgentConfig, "command line")
    config = apply_arguments(config, args)
    if not config.kafka.bootstrap:
        raise UsageError("no Kafka to send to: pass --bootstrap HOST:PORT, set LOGTIDE_BOOTSTRAP or kafka.bootstrap")
    if not config.include_globs():
        raise UsageError("no files to tail: give --path GLOB or include: in the config")
    return config


def build_agent(config: AgentConfig, transport):
    """The one way the agent service is built (`logtide agent`, `logtide up`, benches)."""
    from logtide.agents.agent import Agent
    from logtide.agents.pod_metadata import PodMetadata
    from logtide.checkpoint import SqliteCheckpoints

    # The agent learns of acknowledgements by draining (agents/agent.py), not per record.
    producer = transport.producer(
        max_buffer=max(100_000, 2 * config.queue.max_records),
        max_buffer_bytes=config.queue.client_buffer_bytes(),
        report_successes=False,
    )
    checkpoints = SqliteCheckpoints(os.path.join(config.checkpoint_dir, "checkpoints.sqlite"))
    metadata = PodMetadata(config.kubernetes) if config.metadata_enabled() else None
    return Agent(config, producer, checkpoints, metadata)


class AgentRole(Role):
    """`logtide agent`: log files → logtide.raw.k8s (or .file), checkpointed after Kafka's acks."""

    name = "agent"
    config_model = AgentConfig

    def load(self, args: argparse.Namespace) -> tuple[AgentConfig, str]:
        return build_config(args), args.config or "command line"

    def writes(self, config: AgentConfig) -> list[TopicSpec]:
        return [raw_spec(config.topic_name())]

    def installation_topics(self, partitions: int) -> list[TopicSpec]:
        return [raw_spec(raw("k8s"), partitions), raw_spec(raw("file"), partitions)]

    def directories(self, config: AgentConfig) -> dict[str, str]:
        return {"checkpoint_dir": config.checkpoint_dir}

    def describe(self, config: AgentConfig) -> str:
        return f"agent: {config.mode} mode, {', '.join(config.include_globs()) or 'no files'} -> {config.topic_name()}"

    def services(self, config: AgentConfig, runtime: Runtime) -> list:
        from logtide.agents.agent import tune_gc

        agent = build_agent(config, runtime.transport)
        tune_gc()
        # /readyz fails when records wait for Kafka and none was acknowledged for a minute
        runtime.health.add_readiness("kafka_acks", agent.kafka_ok)
        return [agent]

    def up_config(self, ctx) -> AgentConfig:
        """Files mode, tailing ``<workdir>/agent-logs/*.log`` (``path`` in the options: another glob)."""
        options = dict(ctx.options or {})
        logs = ctx.workdir / "agent-logs"
        os.makedirs(logs, exist_ok=True)
        path = options.pop("path", None)
        data = {
            "mode": "files",
            "include": [path or str(logs / "*.log")],
            "checkpoint_dir": str(ctx.workdir / "agent-state"),
            "read": {"scan_interval_seconds": 2.0},
        }
        data.update(options)
        data["kafka"] = ctx.kafka.model_dump()
        return validate_config(data, AgentConfig, "logtide up roles.10-agent")


ROLE = AgentRole()


def run(args: argparse.Namespace) -> int:
    return run_role(ROLE, args)

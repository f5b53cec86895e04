"""What every day-2 tool shares: the Kafka flags (--bootstrap, --config, --client), connecting, time arguments, the offset ranges
to read (logtide.topics.RangeReader reads them), and JSON output."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import orjson

from logtide.cli import UsageError
from logtide.role import add_kafka_arguments, command_kafka_settings, connect_checked  # noqa: F401 - add_kafka_arguments: for the tools
from logtide.timeutil import MS_NS, NS, format_rfc3339, is_relative, parse_time_expr  # noqa: F401 - is_relative: for the tools
from logtide.topics import partition_ranges
from logtide.transport import Consumer, TopicPartition, Transport


def connect_args(args: argparse.Namespace) -> Transport:
    """The transport for the Kafka flags (logtide.role.command_kafka_settings), checked to answer (one
    clear error if not)."""
    return connect_checked(command_kafka_settings(args), timeout=10.0)


def parse_time_ms(text: str, now: float | None = None) -> int:
    """A point in time as Unix milliseconds (Kafka's record time), from what an operator types:
    ``now``, ``-15m`` / ``2h ago`` / ``1d``, RFC 3339 (no zone: UTC), Unix s/ms/ns (see
    logtide.timeutil.parse_time_expr). A one-line UsageError otherwise."""
    try:
        return parse_time_expr(text, None if now is None else round(now * NS)) // MS_NS
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def format_ms(ms: int | None) -> str:
    return "-" if ms is None else format_rfc3339(ms * MS_NS, digits=3)


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode() + "\n")
    sys.stdout.flush()


def topic_partitions(consumer: Consumer, topic: str) -> list[TopicPartition]:
    parts = consumer.partitions_for(topic)
    if not parts:
        raise UsageError(f"topic {topic!r} does not exist (see `logtide topics`)")
    return parts


def whole_topic_ranges(consumer: Consumer, topic: str) -> dict[TopicPartition, tuple[int, int]]:
    """[beginning, exact end) of every partition of a topic (which must exist)."""
    return partition_ranges(consumer, topic_partitions(consumer, topic))


#: The writable mount of logtide's pods (the root filesystem is read-only there).
POD_STATE_DIR = "/var/lib/logtide"


def state_dir() -> str:
    """Where tools keep small state files: $LOGTIDE_STATE_DIR; else $XDG_STATE_HOME/logtide; else
    /var/lib/logtide when it is a writable directory (the chart mounts it in its read-only pods); else
    ~/.local/state/logtide."""
    if os.environ.get("LOGTIDE_STATE_DIR"):
        return os.environ["LOGTIDE_STATE_DIR"]
    if os.environ.get("XDG_STATE_HOME"):
        return os.path.join(os.environ["XDG_STATE_HOME"], "logtide")
    if os.path.isdir(POD_STATE_DIR) and os.access(POD_STATE_DIR, os.W_OK):
        return POD_STATE_DIR
    return os.path.join(os.path.expanduser("~"), ".local", "state", "logtide")


def write_json_atomic(path: str, value: Any) -> None:
    """Write a JSON file so that a crash leaves the old or the new content, never half of one."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def headers_dict(headers: list[tuple[str, bytes]] | None) -> dict[str, str]:
    out = {}
    for k, v in headers or ():
        out[k] = v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else ("" if v is None else str(v))
    return out


def text(value: bytes | None, limit: int | None = None) -> str | None:
    if value is None:
        return None
    s = value.decode("utf-8", "replace")
    return s if limit is None or len(s) <= limit else s[:limit] + "…"


def console(stderr: bool = False):
    """A rich console; piped output gets a wide fixed width so tables stay one row per line."""
    from rich.console import Console

    c = Console(stderr=stderr)
    return c if c.is_terminal else Console(stderr=stderr, width=220)

"""What every day-2 tool shares: the --bootstrap flag, connecting, time arguments, the offset ranges
to read (logtide.topics.RangeReader reads them), and JSON output."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from datetime import datetime, timezone
from typing import Any

import orjson

from logtide.cli import UsageError
from logtide.role import connect_checked, kafka_settings
from logtide.topics import partition_ranges
from logtide.transport import Consumer, KafkaSettings, TopicPartition, Transport


def add_kafka_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", metavar="HOST:PORT",
                        help="Kafka bootstrap servers (default: $LOGTIDE_BOOTSTRAP)")
    parser.add_argument("--client", choices=["auto", "confluent", "kafka-python"], default="auto",
                        help="Kafka client library (default: the fastest installed)")


def connect_args(args: argparse.Namespace) -> Transport:
    """The transport for --bootstrap / $LOGTIDE_BOOTSTRAP, checked to answer (one clear error if not)."""
    settings = kafka_settings(KafkaSettings(client=getattr(args, "client", "auto")), getattr(args, "bootstrap", None))
    if not settings.bootstrap:
        raise UsageError("no Kafka to talk to: pass --bootstrap HOST:PORT or set LOGTIDE_BOOTSTRAP")
    return connect_checked(settings, timeout=10.0)


_RELATIVE = re.compile(r"^-?(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)(?:\s+ago)?$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, now: float | None = None) -> int:
    """A point in time as Unix milliseconds, from what an operator types.

    Accepts ``now``, relative ``-15m`` / ``2h ago`` / ``1d``, ISO 8601 (``2024-05-01T12:00:00Z``; no
    zone means UTC), or a Unix timestamp in seconds, milliseconds or nanoseconds (by magnitude).
    """
    s = text.strip()
    now = time.time() if now is None else now
    if s.lower() == "now":
        return int(now * 1000)
    m = _RELATIVE.match(s.lower())
    if m:
        return int((now - float(m.group(1)) * _UNITS[m.group(2)]) * 1000)
    if re.fullmatch(r"\d+(\.\d+)?", s):
        v = float(s)
        if v >= 1e17:
            return int(v / 1e6)  # nanoseconds
        if v >= 1e11:
            return int(v)  # milliseconds
        return int(v * 1000)  # seconds
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"cannot read time {text!r}: use ISO 8601 (2024-05-01T12:00:00Z), "
                         "Unix seconds/ms, 'now' or a relative time like -15m / 2h ago") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def parse_seconds(text: str) -> float:
    """A duration an operator types: ``30s``, ``2m``, ``500ms``, ``1h`` or a number of seconds."""
    s = text.strip().lower()
    try:
        value = float(s)
    except ValueError:
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", s)
        if not m:
            raise ValueError(f"invalid duration {text!r} (use e.g. 30s, 2m, 1h)") from None
        value = float(m.group(1)) * _UNITS[m.group(2)]
    if value < 0:
        raise ValueError(f"invalid duration {text!r}: negative")
    return value


def is_relative(text: str | None) -> bool:
    """Whether a time argument depends on when it is read (now, 2h, -15m, 30m ago)."""
    if text is None:
        return False
    s = text.strip().lower()
    return s == "now" or _RELATIVE.match(s) is not None


def format_ms(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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

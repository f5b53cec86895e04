"""Docker json-file lines: ``{"log": "message\\n", "stream": "stdout", "time": "<RFC3339Nano>"}``.

Docker splits lines over 16 KiB: every piece but the last lacks the trailing newline in ``log``.
"""

from __future__ import annotations

import orjson

from logtide.agents.parser import Fragment
from logtide.agents.parser.timestamps import TimestampParser


class DockerParser:
    name = "docker"

    def __init__(self) -> None:
        self._ts = TimestampParser()

    def parse(self, line: bytes) -> Fragment:
        try:
            rec = orjson.loads(line)
            log = rec["log"]
            if not isinstance(log, str):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return Fragment(None, "stdout", False, line, "bad_format")
        stream = rec.get("stream")
        if stream not in ("stdout", "stderr"):
            stream = "stdout"
        ts = rec.get("time")
        time = self._ts.parse(ts.encode()) if isinstance(ts, str) else None
        partial = not log.endswith("\n")
        message = log if partial else log[:-1]
        return Fragment(time, stream, partial, message, None if time is not None else "bad_timestamp")


def looks_like_docker(line: bytes) -> bool:
    if not line.startswith(b"{"):
        return False
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return isinstance(rec, dict) and isinstance(rec.get("log"), str)

"""Lambda's platform lines (START / END / REPORT) as structured attributes.

    START RequestId: 8f5b... Version: $LATEST
    END RequestId: 8f5b...
    REPORT RequestId: 8f5b...	Duration: 102.25 ms	Billed Duration: 103 ms	Memory Size: 128 MB	Max Memory Used: 70 MB	Init Duration: 150.42 ms
"""

from __future__ import annotations

import re

_START = re.compile(r"^START RequestId: (?P<id>[\w-]+)(?: Version: (?P<version>\S+))?")
_END = re.compile(r"^END RequestId: (?P<id>[\w-]+)")
_REPORT = re.compile(r"^REPORT RequestId: (?P<id>[\w-]+)")
_REPORT_FIELDS = re.compile(r"(?P<name>Duration|Billed Duration|Memory Size|Max Memory Used|Init Duration|"
                            r"Restore Duration):\s*(?P<value>[\d.]+)\s*(?P<unit>ms|MB)")
_NAMES = {
    "Duration": "aws.lambda.duration_ms",
    "Billed Duration": "aws.lambda.billed_duration_ms",
    "Memory Size": "aws.lambda.memory_size_mb",
    "Max Memory Used": "aws.lambda.max_memory_used_mb",
    "Init Duration": "aws.lambda.init_duration_ms",
    "Restore Duration": "aws.lambda.restore_duration_ms",
}


def parse(message: str) -> dict | None:
    """Attributes of a platform line, or None for an ordinary log line."""
    if not message or message[0] not in "SER":
        return None
    m = _START.match(message)
    if m:
        out = {"aws.lambda.record": "start", "faas.invocation_id": m["id"]}
        if m["version"]:
            out["faas.version"] = m["version"]
        return out
    m = _END.match(message)
    if m:
        return {"aws.lambda.record": "end", "faas.invocation_id": m["id"]}
    m = _REPORT.match(message)
    if m:
        out: dict = {"aws.lambda.record": "report", "faas.invocation_id": m["id"]}
        for f in _REPORT_FIELDS.finditer(message):
            value = float(f["value"])
            out[_NAMES[f["name"]]] = int(value) if value.is_integer() and f["unit"] == "MB" else value
        out["faas.coldstart"] = "aws.lambda.init_duration_ms" in out
        return out
    return None

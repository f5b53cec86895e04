"""Lambda's platform records as structured attributes, in both of Lambda's log formats.

Text:

    START RequestId: 8f5b... Version: $LATEST
    END RequestId: 8f5b...
    REPORT RequestId: 8f5b...	Duration: 102.25 ms	Billed Duration: 103 ms	Memory Size: 128 MB	Max Memory Used: 70 MB	Init Duration: 150.42 ms

JSON (LoggingConfig LogFormat=JSON): ``{"time": ..., "type": "platform.report", "record": {"requestId": ...,
"metrics": {"durationMs": ..., ...}}}`` typed like the text lines, and the function's own JSON lines
(``{"level": "INFO", "message": ..., "requestId": ...}``) give their level and invocation id.
"""

from __future__ import annotations

import json
import re

_START = re.compile(r"^START RequestId: (?P<id>[\w-]+)(?: Version: (?P<version>\S+))?")
_END = re.compile(r"^END RequestId: (?P<id>[\w-]+)")
_REPORT = re.compile(r"^REPORT RequestId: (?P<id>[\w-]+)")
_REPORT_FIELDS = re.compile(
    r"(?P<name>Duration|Billed Duration|Memory Size|Max Memory Used|Init Duration|"
    r"Restore Duration):\s*(?P<value>[\d.]+)\s*(?P<unit>ms|MB)"
)
_NAMES = {
    "Duration": "aws.lambda.duration_ms",
    "Billed Duration": "aws.lambda.billed_duration_ms",
    "Memory Size": "aws.lambda.memory_size_mb",
    "Max Memory Used": "aws.lambda.max_memory_used_mb",
    "Init Duration": "aws.lambda.init_duration_ms",
    "Restore Duration": "aws.lambda.restore_duration_ms",
}


_JSON_TYPES = {"platform.start": "start", "platform.runtimeDone": "end", "platform.report": "report"}
_JSON_METRICS = {
    "durationMs": "aws.lambda.duration_ms",
    "billedDurationMs": "aws.lambda.billed_duration_ms",
    "memorySizeMB": "aws.lambda.memory_size_mb",
    "maxMemoryUsedMB": "aws.lambda.max_memory_used_mb",
    "initDurationMs": "aws.lambda.init_duration_ms",
    "restoreDurationMs": "aws.lambda.restore_duration_ms",
}


def parse(message: str) -> dict | None:
    """Attributes of a platform record (and ``severity_text`` of a JSON app line), or None for an
    ordinary log line."""
    if not message:
        return None
    if message[0] == "{":
        return _parse_json(message)
    if message[0] not in "SER":
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


def _parse_json(message: str) -> dict | None:
    try:
        doc = json.loads(message)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    kind = doc.get("type")
    record = doc.get("record")
    if isinstance(kind, str) and kind.startswith("platform.") and isinstance(record, dict):
        out: dict = {"aws.lambda.record": _JSON_TYPES.get(kind, kind.split(".", 1)[1])}
        if isinstance(record.get("requestId"), str):
            out["faas.invocation_id"] = record["requestId"]
        if kind == "platform.start" and isinstance(record.get("version"), str):
            out["faas.version"] = record["version"]
        if kind == "platform.report":
            for name, value in (record.get("metrics") or {}).items():
                if name in _JSON_METRICS and isinstance(value, (int, float)):
                    mb = name.endswith("MB")
                    out[_JSON_METRICS[name]] = int(value) if mb and float(value).is_integer() else float(value)
            out["faas.coldstart"] = "aws.lambda.init_duration_ms" in out
            if isinstance(record.get("status"), str):
                out["aws.lambda.status"] = record["status"]
        return out
    out = {}
    if isinstance(doc.get("level"), str):
        out["severity_text"] = doc["level"].upper()
    if isinstance(doc.get("requestId"), str):
        out["faas.invocation_id"] = doc["requestId"]
    return out or None

"""normalize: make events from different sources look alike.

- container runtime records the agent did not unwrap: CRI (``2024-01-01T00:00:00.1Z stdout F msg``)
  and docker json-file (``{"log": "...", "stream": "stdout", "time": "..."}``);
- CloudWatch: Lambda ``START``/``END``/``REPORT`` lines → ``faas.*`` attributes, the log group's
  Lambda name → ``service.name``;
- Salesforce event log rows (USER_ID, CLIENT_IP, EVENT_TYPE …) → OTel semantic attribute names;
- everywhere: severity number ↔ text, a ``service.name``, and ``time`` when the source had none.
"""

from __future__ import annotations

import re

from pydantic import Field

from logtide.envelope import severity_number, severity_text
from logtide.processors.steps.base import Step, StepConfig, register
from logtide.processors.steps.parse import parse_time

_CRI = re.compile(r"(\d{4}-\d\d-\d\dT\S+) (stdout|stderr) ([FP]) (.*)$", re.S)

_LAMBDA_REPORT = re.compile(
    r"REPORT RequestId: (?P<id>[\w-]+)\s+Duration: (?P<duration>[\d.]+) ms\s+Billed Duration: (?P<billed>\d+) ms"
    r"\s+Memory Size: (?P<memory>\d+) MB\s+Max Memory Used: (?P<used>\d+) MB"
    r"(?:\s+Init Duration: (?P<init>[\d.]+) ms)?"
)
_LAMBDA_EDGE = re.compile(r"(START|END) RequestId: ([\w-]+)")

#: Salesforce EventLogFile columns → semantic attribute names (others are kept, lower-cased).
SALESFORCE_FIELDS = {
    "USER_ID": "enduser.id",
    "USER_ID_DERIVED": "enduser.id",
    "CLIENT_IP": "client.address",
    "EVENT_TYPE": "event.name",
    "URI": "url.path",
    "URI_ID_DERIVED": "salesforce.uri_id",
    "REQUEST_ID": "salesforce.request_id",
    "ORGANIZATION_ID": "salesforce.org_id",
    "SESSION_KEY": "session.id",
    "LOGIN_KEY": "salesforce.login_key",
    "USER_AGENT": "user_agent.original",
    "BROWSER_TYPE": "user_agent.name",
    "STATUS_CODE": "http.response.status_code",
    "REQUEST_STATUS": "salesforce.request_status",
    "RUN_TIME": "salesforce.run_time_ms",
    "CPU_TIME": "salesforce.cpu_time_ms",
    "DB_TOTAL_TIME": "salesforce.db_total_time_ns",
    "METHOD": "http.request.method",
    "LOGIN_STATUS": "salesforce.login_status",
    "API_TYPE": "salesforce.api_type",
    "ENTITY_NAME": "salesforce.entity",
}
_SF_ERROR_STATUS = {"F", "FAILURE", "LOGIN_ERROR_INVALID_PASSWORD"}


class NormalizeConfig(StepConfig):
    default_service: str = Field(default="unknown", description="service.name when nothing else names one")
    container_records: bool = Field(default=True, description="unwrap CRI and docker json-file lines")
    cloudwatch: bool = True
    salesforce: bool = True


def _int(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        try:
            return float(v)
        except (TypeError, ValueError):
            return v


@register("normalize")
class Normalize(Step):
    Config = NormalizeConfig

    def __init__(self, config: NormalizeConfig, ctx):
        super().__init__(config, ctx)
        self.default_service = config.default_service
        self.container_records = config.container_records
        self.cloudwatch = config.cloudwatch
        self.salesforce = config.salesforce

    def process(self, event: dict) -> dict:
        body = event.get("body")
        source = event["source"]
        if self.container_records and isinstance(body, str) and body:
            c = body[0]
            if c == "{" and body.startswith('{"log":'):
                self._docker(event, body)
            elif c == "2" and " std" in body[:45]:
                self._cri(event, body)
        if self.cloudwatch and source == "cloudwatch":
            self._cloudwatch(event)
        elif self.salesforce and source == "salesforce":
            self._salesforce(event)
        # severity: both number and canonical text
        n = event["severity_number"]
        if not n:
            text = event["severity_text"]
            if text:
                event["severity_number"] = severity_number(text)
        elif not event["severity_text"]:
            event["severity_text"] = severity_text(n)
        resource = event["resource"]
        if "service.name" not in resource:
            resource["service.name"] = (
                resource.get("k8s.container.name") or resource.get("k8s.deployment.name") or self.default_service
            )
        if event.get("time") is None:
            event["time"] = event.get("observed_time")
        return event

    @staticmethod
    def _docker(event: dict, body: str) -> None:
        import orjson

        try:
            rec = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        if not isinstance(rec, dict) or not isinstance(rec.get("log"), str):
            return
        event["body"] = rec["log"].rstrip("\n")
        if rec.get("stream"):
            event["attributes"]["log.iostream"] = rec["stream"]
        t = parse_time(rec.get("time"))
        if t is not None:
            event["time"] = t

    @staticmethod
    def _cri(event: dict, body: str) -> None:
        m = _CRI.match(body)
        if not m:
            return
        ts, stream, tag, msg = m.groups()
        event["body"] = msg
        attrs = event["attributes"]
        attrs["log.iostream"] = stream
        if tag == "P":
            attrs["log.partial"] = True
        t = parse_time(ts)
        if t is not None:
            event["time"] = t

    @staticmethod
    def _cloudwatch(event: dict) -> None:
        resource = event["resource"]
        groups = resource.get("aws.log.group.names")
        group = groups[0] if isinstance(groups, list) and groups else groups
        if isinstance(group, str) and group.startswith("/aws/lambda/"):
            resource.setdefault("faas.name", group[len("/aws/lambda/") :])
            resource.setdefault("cloud.platform", "aws_lambda")
            resource.setdefault("service.name", resource["faas.name"])
        body = event.get("body")
        if not isinstance(body, str):
            return
        if body.startswith("REPORT "):
            m = _LAMBDA_REPORT.match(body)
            if m:
                attrs = event["attributes"]
                attrs["faas.invocation_id"] = m["id"]
                attrs["faas.duration_ms"] = float(m["duration"])
                attrs["faas.billed_duration_ms"] = int(m["billed"])
                attrs["faas.max_memory_mb"] = int(m["memory"])
                attrs["faas.memory_used_mb"] = int(m["used"])
                if m["init"]:
                    attrs["faas.init_duration_ms"] = float(m["init"])
                    attrs["faas.coldstart"] = True
        elif body.startswith(("START ", "END ")):
            m = _LAMBDA_EDGE.match(body)
            if m:
                event["attributes"]["faas.invocation_id"] = m.group(2)
                event["attributes"]["faas.event"] = m.group(1).lower()

    @staticmethod
    def _salesforce(event: dict) -> None:
        row = event.get("body") if isinstance(event.get("body"), dict) else event["attributes"]
        if not isinstance(row, dict) or not any(k.isupper() for k in row):
            return
        attrs = event["attributes"]
        for key in list(row):
            if not key.isupper():
                continue
            value = row[key] if row is not attrs else attrs.pop(key)
            if value in ("", None):
                continue
            name = SALESFORCE_FIELDS.get(key) or "salesforce." + key.lower()
            attrs[name] = _int(value) if key in ("STATUS_CODE", "RUN_TIME", "CPU_TIME", "DB_TOTAL_TIME") else value
        if row is event.get("body"):
            event["body"] = f"{row.get('EVENT_TYPE', 'event')} {row.get('URI') or row.get('METHOD') or ''}".strip()
        t = parse_time(row.get("TIMESTAMP_DERIVED"))
        if t is not None:
            event["time"] = t
        status = str(row.get("LOGIN_STATUS") or row.get("REQUEST_STATUS") or "")
        code = attrs.get("http.response.status_code")
        if not event["severity_number"]:
            failed = (
                status.upper() in _SF_ERROR_STATUS
                or status.startswith("LOGIN_ERROR")
                or (isinstance(code, int) and code >= 500)
            )
            event["severity_number"], event["severity_text"] = (17, "ERROR") if failed else (9, "INFO")

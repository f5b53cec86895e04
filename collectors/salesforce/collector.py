"""The Salesforce collector loop.

Work items: ``EventLogFile/<EventType>/<Interval>`` and the audit objects ``SetupAuditTrail`` and
``LoginHistory``. Each keeps a time cursor plus the ids already done *at* that cursor time: queries
use ``>=`` (records sharing the boundary second are not lost) and skip the ids done there.

- Hourly EventLogFiles arrive hours late, so their cursor is CreatedDate; daily ones use LogDate.
- A log file is streamed and parsed row by row (``logfile.typed_rows``); one event per row with
  id = (file id, row). Inside a large file the checkpoint records rows done, so a restart resumes there.
- Audit objects are read page by page (nextRecordsUrl), one event per record, id = record Id.
"""

from __future__ import annotations

import io
import re
import threading
import time
from datetime import datetime, timedelta, UTC

from logtide import envelope, log
from logtide.timeutil import NS, format_rfc3339

from logtide.collectors.base import Backoff, PullCollector, ShipError, Shipper, Stopped, log_error
from logtide.collectors.salesforce import logfile
from logtide.collectors.salesforce.api import SalesforceApi
from logtide.collectors.salesforce.config import SalesforceConfig

_log = log.get("collectors.salesforce")

AUDIT_QUERIES = {
    "SetupAuditTrail": ("CreatedDate", "Id, Action, Section, CreatedDate, CreatedById, Display, DelegateUser"),
    "LoginHistory": (
        "LoginTime",
        "Id, UserId, LoginTime, LoginType, SourceIp, Status, Application, Browser, Platform, LoginUrl",
    ),
}
EVENT_LOG_FIELDS = "Id, EventType, Interval, LogDate, CreatedDate, LogFileLength, LogFileFieldNames, LogFileFieldTypes"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def soql_time(value: str | int) -> str:
    """A SOQL datetime literal (second precision, UTC) from Salesforce's text or Unix ns."""
    ns = value if isinstance(value, int) else logfile.parse_timestamp(value)
    if ns is None:
        raise ValueError(f"not a timestamp: {value!r}")
    return format_rfc3339(ns, digits=0)


class Cursor:
    """Where one work item stands: time (SOQL literal), ids done at that time, a file partly done."""

    def __init__(self, value: dict):
        self.time: str = value["time"]
        self.done: list[str] = list(value.get("done", ()))
        self.partial: dict | None = value.get("partial")

    def skip(self, record_time: str, record_id: str) -> bool:
        return soql_time(record_time) == self.time and record_id in self.done

    def advance(self, record_time: str, record_id: str) -> None:
        t = soql_time(record_time)
        if t != self.time:
            self.time, self.done = t, []
        if record_id not in self.done:
            self.done.append(record_id)
        self.partial = None

    def value(self) -> dict:
        return {"time": self.time, "done": self.done, "partial": self.partial}


class SalesforceCollector(PullCollector):
    name = "salesforce"

    def __init__(self, config: SalesforceConfig, transport):
        super().__init__(transport)
        for t in config.event_types:
            if not _SAFE_NAME.match(t):
                raise ValueError(f"salesforce.event_types: {t!r} is not an event type name")
        self.config = config
        self.topic = config.topic
        self.api = SalesforceApi(config, self.metrics)

    def work_items(self) -> list[str]:
        items = [f"EventLogFile/{t}/{i}" for t in self.config.event_types for i in self.config.intervals]
        return items + list(self.config.audit)

    def run_item(self, item: str, stop: threading.Event) -> None:
        shipper = self.shipper()
        backoff = Backoff(1.0, 120.0)
        status = self.health.status(item)
        while not stop.is_set():
            try:
                if item.startswith("EventLogFile/"):
                    _, event_type, interval = item.split("/")
                    self.sweep_log_files(item, event_type, interval, shipper, stop)
                else:
                    self.sweep_audit(item, shipper, stop)
                backoff.reset()
                status.recovered()
                wait = self.config.poll_interval_seconds
            except Stopped:
                return
            except ShipError as exc:
                status.failed("kafka", f"events not acknowledged ({exc}); will re-read from the checkpoint")
                wait = backoff.next_delay()
            except Exception as exc:  # a broken stream or a bad answer: resume from the checkpoint
                status.failed(
                    "sweep", f"sweep failed ({exc.__class__.__name__}: {exc}); will resume from the checkpoint"
                )
                wait = backoff.next_delay()
            stop.wait(wait)

    def _cursor(self, item: str) -> Cursor:
        cp = self.checkpoints.get(item)
        if cp:
            return Cursor(cp)
        start = datetime.now(UTC) - timedelta(days=self.config.start_days_ago)
        if item.endswith("/Daily"):
            start = start.replace(hour=0, minute=0, second=0)  # LogDate of a daily file is its day's midnight
        return Cursor({"time": format_rfc3339(int(start.timestamp()) * NS, digits=0)})

    def _lag(self, item: str, cursor: Cursor) -> None:
        ns = logfile.parse_timestamp(cursor.time)
        if ns:
            self.metrics.lag(item, time.time() - ns / 1e9)

    # --- EventLogFile -------------------------------------------------------------------------

    def sweep_log_files(
        self, item: str, event_type: str, interval: str, shipper: Shipper, stop: threading.Event
    ) -> None:
        cursor = self._cursor(item)
        field = "CreatedDate" if interval == "Hourly" else "LogDate"
        soql = (
            f"SELECT {EVENT_LOG_FIELDS} FROM EventLogFile WHERE EventType = '{event_type}' "
            f"AND Interval = '{interval}' AND {field} >= {cursor.time} ORDER BY {field}, Id"
        )
        for page in self.api.query_pages(soql, stop):
            for rec in page.get("records", ()):
                if cursor.skip(rec[field], rec["Id"]):
                    self.metrics.duplicates.inc()
                    continue
                self.ship_log_file(item, rec, cursor, shipper, stop)
                cursor.advance(rec[field], rec["Id"])
                self.checkpoints.put(item, item, cursor.value())
                self._lag(item, cursor)
        self.checkpoints.touch(item)

    def ship_log_file(self, item: str, rec: dict, cursor: Cursor, shipper: Shipper, stop: threading.Event) -> None:
        file_id = rec["Id"]
        skip_rows = cursor.partial["rows"] if cursor.partial and cursor.partial.get("id") == file_id else 0
        schema = logfile.LogFileSchema(rec.get("LogFileFieldNames"), rec.get("LogFileFieldTypes"))
        problems = logfile.RowProblems()
        org = self.config.org_id or ""
        base_attrs = {
            "salesforce.event_type": rec.get("EventType"),
            "salesforce.interval": rec.get("Interval"),
            "salesforce.log_file.id": file_id,
            "salesforce.log_date": rec.get("LogDate"),
        }
        resp = self.api.open_log_file(file_id, stop)
        try:
            resp.raw.decode_content = True
            resp.raw.auto_close = False  # io.TextIOWrapper reads past the end once; urllib3 must not close first
            text = io.TextIOWrapper(resp.raw, encoding="utf-8", errors="replace", newline="")
            last_row = since_checkpoint = 0
            for row_no, row in logfile.typed_rows(text, schema, problems):
                if stop.is_set():
                    break
                last_row = row_no
                if row_no <= skip_rows:
                    self.metrics.duplicates.inc()
                    continue
                shipper.send(self.topic, *self._row_event(org, base_attrs, file_id, row_no, row))
                since_checkpoint += 1
                if since_checkpoint >= self.config.rows_per_checkpoint:
                    # Acks first, then the checkpoint: a restart resumes after this row.
                    shipper.confirm()
                    cursor.partial = {"id": file_id, "rows": last_row}
                    self.checkpoints.put(item, item, cursor.value())
                    since_checkpoint = 0
            shipper.confirm()
            if stop.is_set():
                cursor.partial = {"id": file_id, "rows": last_row}
                self.checkpoints.put(item, item, cursor.value())
                raise Stopped()
        finally:
            resp.close()
        self._report(file_id, rec, schema, problems)

    def _row_event(self, org: str, base_attrs: dict, file_id: str, row_no: int, row: dict) -> tuple[dict, bytes]:
        ts = row.get("TIMESTAMP_DERIVED") or row.get("TIMESTAMP")
        time_ns = logfile.parse_timestamp(ts) if isinstance(ts, str) else None
        org_id = row.get("ORGANIZATION_ID") or org
        event_type = base_attrs["salesforce.event_type"] or row.get("EVENT_TYPE") or ""
        event = envelope.new_event(
            id=envelope.make_id("salesforce", file_id, row_no),
            body=row,
            source="salesforce",
            time=time_ns,
            severity_text="INFO",
            attributes={**base_attrs, "salesforce.log_file.row": row_no},
            resource={"salesforce.org_id": org_id, "service.name": "salesforce"},
        )
        return event, f"{org_id}/{event_type}".encode()

    def _report(self, file_id: str, rec: dict, schema: logfile.LogFileSchema, problems: logfile.RowProblems) -> None:
        if problems.schema_changed or not schema.declared_types_ok:
            self.metrics.error("schema_change")
            log_error(
                self.name,
                "schema_change",
                "log file columns differ from LogFileFieldNames/Types; typed by name, unknown columns kept as text",
                file_id=file_id,
                event_type=rec.get("EventType"),
            )
        if problems.bad_rows:
            self.metrics.error("csv_row")
            log_error(
                self.name, "csv_row", "malformed CSV rows kept with _malformed", file_id=file_id, rows=problems.bad_rows
            )
        if problems.bad_values:
            self.metrics.error("csv_value")
            log_error(
                self.name,
                "csv_value",
                "values that do not match their declared type kept as text",
                file_id=file_id,
                values=problems.bad_values,
            )

    # --- audit objects ------------------------------------------------------------------------

    def sweep_audit(self, item: str, shipper: Shipper, stop: threading.Event) -> None:
        field, fields = AUDIT_QUERIES[item]
        cursor = self._cursor(item)
        soql = f"SELECT {fields} FROM {item} WHERE {field} >= {cursor.time} ORDER BY {field}, Id"
        org = self.config.org_id or ""
        for page in self.api.query_pages(soql, stop):
            batch, seen = [], []
            for rec in page.get("records", ()):
                if cursor.skip(rec[field], rec["Id"]):
                    self.metrics.duplicates.inc()
                    continue
                body = {k: v for k, v in rec.items() if k != "attributes"}
                event = envelope.new_event(
                    id=envelope.make_id("salesforce", item, rec["Id"]),
                    body=body,
                    source="salesforce",
                    time=logfile.parse_timestamp(rec[field] or ""),
                    severity_text="INFO",
                    attributes={"salesforce.object": item},
                    resource={"salesforce.org_id": org, "service.name": "salesforce"},
                )
                batch.append((event, f"{org}/{item}".encode()))
                seen.append(rec)
            if batch:
                shipper.ship(self.topic, batch)
                for rec in seen:
                    cursor.advance(rec[field], rec["Id"])
                self.checkpoints.put(item, item, cursor.value())
                self._lag(item, cursor)
        self.checkpoints.touch(item)

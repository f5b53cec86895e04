"""The CloudWatch Logs collector loop.

Work item = (region, log-group selector). Per log group (and stream filter) the checkpoint holds:

    cursor_ms     every stream of the group was read completely up to this time
    sweep         the read in progress: {start_ms, end_ms, token} — the FilterLogEvents query and the
                  nextToken of its first page not yet shipped
    seen          {id digest: timestamp} of events shipped at or after the next read's start
    forgotten_ms  the newest timestamp of an id dropped from ``seen`` (at most max_seen_ids are kept)

A poll reads [max(cursor - lookback, forgotten + 1), now] page by page: drop ids already seen, ship,
wait for Kafka's acks, checkpoint {sweep with the next token, seen}. Only when the last page is read does
the cursor move to the sweep's end. Pages are not in time order across streams (moto's come stream by
stream; CloudWatch only tries to interleave), so no event time read so far says anything about streams
not yet read: an interrupted read (kill -9, SIGTERM, a rebalance to another replica) resumes the same
query from the saved token, and the cursor never passes a range some stream was not read for.

Events ingested late (up to ``lookback_seconds``) are found by the next read and shipped once; the
next read never starts before the oldest id still remembered, so a busy group whose lookback holds more
events than ``max_seen_ids`` is not re-shipped (its effective lookback shrinks instead).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time

from botocore.exceptions import ClientError

from logtide import envelope, log
from logtide.topics import raw

from logtide.collectors.base import ItemStatus, PullCollector, Shipper, Stopped, log_error, sniff_severity
from logtide.collectors.cloudwatch import lambda_report
from logtide.collectors.cloudwatch.aws import AwsClients, LogGroupGone
from logtide.collectors.cloudwatch.config import CloudWatchConfig, LogGroupSelector

_log = log.get("collectors.cloudwatch")


def seen_key(e: dict) -> str:
    """A short stable digest of an event's identity: keeps the checkpoint's seen-set small (48 bits).

    eventIds are unique per log group; the stream name is included for emulators that number per stream.
    """
    return hashlib.blake2b(f"{e.get('logStreamName', '')}/{e['eventId']}".encode(), digest_size=6).hexdigest()


def to_event(region: str, group: str, e: dict) -> tuple[dict, bytes]:
    message = (e.get("message") or "").rstrip("\n")
    stream = e.get("logStreamName", "")
    resource = {
        "cloud.provider": "aws",
        "cloud.region": region,
        "aws.log.group.names": [group],
        "aws.log.stream.names": [stream],
    }
    attributes: dict = {"aws.cloudwatch.event_id": e["eventId"]}
    if "ingestionTime" in e:
        attributes["aws.cloudwatch.ingestion_time"] = e["ingestionTime"]
    # Lambda writes to /aws/lambda/<function> unless its LoggingConfig names another group: its
    # platform records are recognized in every group.
    lambda_group = group.startswith("/aws/lambda/")
    record = lambda_report.parse(message)
    severity = sniff_severity(message)
    if record:
        severity = record.pop("severity_text", None) or severity
        attributes.update(record)
    if lambda_group or (record and "aws.lambda.record" in record):
        resource["cloud.platform"] = "aws_lambda"
    if lambda_group:
        resource["faas.name"] = resource["service.name"] = group.rsplit("/", 1)[-1]
    event = envelope.new_event(
        id=envelope.make_id("cloudwatch", region, group, stream, e["eventId"]),
        body=message,
        source="cloudwatch",
        time=int(e["timestamp"]) * 1_000_000,
        severity_text=severity,
        attributes=attributes,
        resource=resource,
    )
    return event, f"{group}/{stream}".encode()


class Cursor:
    """A log group's read state (see the module's docstring), as kept in its checkpoint."""

    def __init__(self, cp: dict, lookback_ms: int, max_seen: int):
        self.cursor = int(cp["cursor_ms"])
        self.forgotten = int(cp.get("forgotten_ms") or 0)
        self.seen: dict[str, int] = dict(cp.get("seen") or {})
        self.sweep: dict | None = cp.get("sweep")
        self.lookback_ms = lookback_ms
        self.max_seen = max_seen

    def start_sweep(self, now_ms: int) -> dict:
        start = max(0, self.cursor - self.lookback_ms, self.forgotten + 1)
        self.sweep = {"start_ms": start, "end_ms": max(start, now_ms), "token": None}
        return self.sweep

    def remember(self, key: str, ts: int) -> bool:
        """False when this event was shipped already. (Not its time: a sweep's pages come stream by
        stream, so an event older than ``forgotten_ms`` may well be one of a stream not read yet.)"""
        if key in self.seen:
            return False
        self.seen[key] = ts
        return True

    def finish_sweep(self) -> None:
        self.cursor = max(self.cursor, self.sweep["end_ms"])
        self.sweep = None

    def value(self) -> dict:
        """The checkpoint: ids older than the next read's start are dropped; past max_seen the oldest
        timestamps go whole (every id at a timestamp above ``forgotten_ms`` stays remembered)."""
        since = self.cursor - self.lookback_ms
        seen = {k: ts for k, ts in self.seen.items() if ts >= since}
        if len(seen) > self.max_seen:
            order = sorted(seen.values())
            boundary = order[len(order) - self.max_seen]
            if boundary == order[-1]:
                boundary -= 1  # a single timestamp holds them all: keep it rather than forget everything
            if boundary > self.forgotten:
                self.forgotten = boundary
            seen = {k: ts for k, ts in seen.items() if ts > self.forgotten}
        self.seen = seen
        value = {"cursor_ms": self.cursor, "forgotten_ms": self.forgotten, "seen": seen}
        if self.sweep is not None:
            value["sweep"] = dict(self.sweep)
        return value


class CloudWatchCollector(PullCollector):
    name = "cloudwatch"
    topic = raw("cloudwatch")

    def __init__(self, config: CloudWatchConfig, transport):
        super().__init__(transport)
        self.config = config
        self.topic = config.topic
        self.health.reminder_seconds = config.reminder_seconds
        self.aws = AwsClients(config, self.metrics)
        self._selectors = {s.key(): s for s in config.log_groups}

    def work_items(self) -> list[str]:
        return [f"{region}|{key}" for region in self.config.regions for key in self._selectors]

    def run_item(self, item: str, stop: threading.Event) -> None:
        region, key = item.split("|", 1)
        selector = self._selectors[key]
        shipper = self.shipper()
        status = self.health.status(item)
        while not stop.is_set():
            try:
                gone = []
                for group in self.log_groups(region, selector, stop, status):
                    if not self.sweep(item, region, group, selector, shipper, stop, status):
                        gone.append(group)
                if selector.name and gone:
                    status.failed(
                        "log_group_gone",
                        "log group not found (deleted, or a typo in its name?); its "
                        "checkpoint is kept and reading resumes if it comes back",
                        region=region,
                        log_group=selector.name,
                    )
                else:
                    status.recovered()
            except Stopped:
                return
            stop.wait(self.config.poll_interval_seconds)

    def log_groups(
        self, region: str, selector: LogGroupSelector, stop: threading.Event, status: ItemStatus | None = None
    ) -> list[str]:
        if selector.name:
            return [selector.name]
        pattern = re.compile(selector.match) if selector.match else None
        names: list[str] = []
        params: dict = {"logGroupNamePrefix": selector.prefix}
        while True:
            resp = self.aws.call(
                region, "DescribeLogGroups", stop, status or self.health.status(f"{region}|{selector.key()}"), **params
            )
            names += [
                g["logGroupName"]
                for g in resp.get("logGroups", [])
                if pattern is None or pattern.search(g["logGroupName"])
            ]
            token = resp.get("nextToken")
            if not token or token == params.get("nextToken"):
                return names
            params["nextToken"] = token

    def _cursor(self, key: str) -> Cursor:
        lookback_ms = int(self.config.lookback_seconds * 1000)
        cp = self.checkpoints.get(key)
        if cp is None:
            # A group never read: the first read starts at start_position (or start_seconds_ago).
            now_ms = int(time.time() * 1000)
            first = {"beginning": 0, "end": now_ms}.get(
                self.config.start_position or "", now_ms - int(self.config.start_seconds_ago * 1000)
            )
            cp = {"cursor_ms": first, "forgotten_ms": max(0, first - 1)}
        return Cursor(cp, lookback_ms, self.config.max_seen_ids)

    def sweep(
        self,
        item: str,
        region: str,
        group: str,
        selector: LogGroupSelector,
        shipper: Shipper,
        stop: threading.Event,
        status: ItemStatus,
    ) -> bool:
        """Read one log group (its selected streams) up to now; False when the group does not exist."""
        key = f"{region}/{group}" + (f"|{selector.streams_key()}" if selector.streams_key() else "")
        cur = self._cursor(key)
        sweep = cur.sweep or cur.start_sweep(int(time.time() * 1000))
        base = {
            "logGroupName": group,
            "startTime": sweep["start_ms"],
            "endTime": sweep["end_ms"],
            "limit": self.config.page_limit,
            "interleaved": True,
            **selector.stream_params(),
        }
        if self.config.filter_pattern:
            base["filterPattern"] = self.config.filter_pattern
        while True:
            params = dict(base, nextToken=sweep["token"]) if sweep["token"] else base
            try:
                resp = self.aws.call(region, "FilterLogEvents", stop, status, **params)
            except LogGroupGone:
                if not selector.name:
                    _log.info("log group vanished between listing and reading", extra={"log_group": group})
                return False
            except ClientError as exc:
                if sweep["token"] and exc.response.get("Error", {}).get("Code") == "InvalidParameterException":
                    # The saved token expired (they live 24 h): read the whole range again, ids dedup it.
                    log_error(
                        self.name,
                        "token_expired",
                        "saved nextToken refused; reading the range again",
                        region=region,
                        log_group=group,
                        error=str(exc),
                    )
                    sweep["token"] = None
                    continue
                raise
            batch = []
            for e in resp.get("events", ()):
                if not selector.wants_stream(e.get("logStreamName", "")):
                    continue
                if not cur.remember(seen_key(e), int(e["timestamp"])):
                    self.metrics.duplicates.inc()
                    continue
                batch.append(to_event(region, group, e))
            if batch:
                shipper.ship(self.topic, batch)
            token = resp.get("nextToken")
            if not token or token == sweep["token"]:
                cur.finish_sweep()
                self.checkpoints.put(item, key, cur.value())
                self.metrics.lag(item, time.time() - cur.cursor / 1000)
                return True
            sweep["token"] = token
            if batch:  # an empty page (they come with a nextToken) leaves nothing to checkpoint
                self.checkpoints.put(item, key, cur.value())

"""The CloudWatch Logs collector loop.

Work item = (region, log-group selector). Per log group a time cursor lives in the checkpoint, with
the eventIds seen inside the lookback window:

    sweep:  FilterLogEvents(startTime = cursor - lookback, endTime = now), every page (empty pages
            with a nextToken exist), drop eventIds already seen, ship, wait for the acks, then
            checkpoint {cursor = newest shipped timestamp (end of sweep: now), seen ids in window}.

CloudWatch returns events sorted by event time, so every event older than the window was shipped
before; events ingested late (up to ``lookback_seconds``) are still found and shipped once.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time

from logtide import envelope, log
from logtide.topics import raw

from logtide.collectors.base import PullCollector, Shipper, Stopped, log_error, sniff_severity
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
    resource = {"cloud.provider": "aws", "cloud.region": region,
                "aws.log.group.names": [group], "aws.log.stream.names": [stream]}
    attributes: dict = {"aws.cloudwatch.event_id": e["eventId"]}
    if "ingestionTime" in e:
        attributes["aws.cloudwatch.ingestion_time"] = e["ingestionTime"]
    if group.startswith("/aws/lambda/"):
        resource["cloud.platform"] = "aws_lambda"
        resource["faas.name"] = resource["service.name"] = group.rsplit("/", 1)[-1]
        report = lambda_report.parse(message)
        if report:
            attributes.update(report)
    event = envelope.new_event(
        id=envelope.make_id("cloudwatch", region, group, stream, e["eventId"]),
        body=message, source="cloudwatch", time=int(e["timestamp"]) * 1_000_000,
        severity_text=sniff_severity(message), attributes=attributes, resource=resource)
    return event, f"{group}/{stream}".encode()


class CloudWatchCollector(PullCollector):
    name = "cloudwatch"
    topic = raw("cloudwatch")

    def __init__(self, config: CloudWatchConfig, transport):
        super().__init__(transport)
        self.config = config
        self.topic = config.topic
        self.aws = AwsClients(config, self.metrics)
        self._selectors = {s.key(): s for s in config.log_groups}

    def work_items(self) -> list[str]:
        return [f"{region}|{key}" for region in self.config.regions for key in self._selectors]

    def run_item(self, item: str, stop: threading.Event) -> None:
        region, key = item.split("|", 1)
        selector = self._selectors[key]
        shipper = self.shipper()
        while not stop.is_set():
            try:
                for group in self.log_groups(region, selector, stop):
                    self.sweep(item, region, group, shipper, stop)
            except Stopped:
                return
            stop.wait(self.config.poll_interval_seconds)

    def log_groups(self, region: str, selector: LogGroupSelector, stop: threading.Event) -> list[str]:
        if selector.name:
            return [selector.name]
        pattern = re.compile(selector.match) if selector.match else None
        names: list[str] = []
        params: dict = {"logGroupNamePrefix": selector.prefix}
        while True:
            resp = self.aws.call(region, "DescribeLogGroups", stop, **params)
            names += [g["logGroupName"] for g in resp.get("logGroups", [])
                      if pattern is None or pattern.search(g["logGroupName"])]
            token = resp.get("nextToken")
            if not token or token == params.get("nextToken"):
                return names
            params["nextToken"] = token

    def sweep(self, item: str, region: str, group: str, shipper: Shipper, stop: threading.Event) -> None:
        """Read one log group from its cursor (minus the lookback) up to now."""
        key = f"{region}/{group}"
        cp = self.checkpoints.get(key) or {}
        lookback_ms = int(self.config.lookback_seconds * 1000)
        now_ms = int(time.time() * 1000)
        cursor = int(cp.get("cursor_ms") or now_ms - int(self.config.start_seconds_ago * 1000))
        seen: dict[str, int] = dict(cp.get("seen") or {})
        params: dict = {"logGroupName": group, "startTime": max(0, cursor - lookback_ms), "endTime": now_ms,
                        "limit": self.config.page_limit}
        if self.config.filter_pattern:
            params["filterPattern"] = self.config.filter_pattern
        while True:
            try:
                resp = self.aws.call(region, "FilterLogEvents", stop, **params)
            except LogGroupGone:
                self.metrics.error("log_group_gone")
                log_error(self.name, "log_group_gone", "log group not found (deleted?); its checkpoint is kept",
                          region=region, log_group=group)
                return
            batch = []
            newest = cursor
            for e in resp.get("events", ()):
                sk = seen_key(e)
                if sk in seen:
                    self.metrics.duplicates.inc()
                    continue
                seen[sk] = int(e["timestamp"])
                newest = max(newest, int(e["timestamp"]))
                batch.append(to_event(region, group, e))
            if batch:
                shipper.ship(self.topic, batch)
            token = resp.get("nextToken")
            done = not token or token == params.get("nextToken")
            if not batch and not done:
                params["nextToken"] = token  # an empty page: nothing to checkpoint yet
                continue
            cursor = max(cursor, now_ms if done else newest)
            self.checkpoints.put(item, key, {"cursor_ms": cursor, "seen": self._window(seen, cursor - lookback_ms)})
            self.metrics.lag(item, time.time() - cursor / 1000)
            if done:
                return
            params["nextToken"] = token

    def _window(self, seen: dict[str, int], since_ms: int) -> dict[str, int]:
        """Keep the ids inside the lookback window (the newest ones when there are too many)."""
        for k in [k for k, ts in seen.items() if ts < since_ms]:
            del seen[k]
        if len(seen) > self.config.max_seen_ids:
            keep = sorted(seen.items(), key=lambda kv: kv[1])[-self.config.max_seen_ids:]
            seen.clear()
            seen.update(keep)
        return seen

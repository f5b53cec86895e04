"""enrich: add static fields, and join each event with a lookup table kept from a compacted Kafka
topic (a stream-table join): e.g. ``logtide.lookup.services`` with key = service name and value =
JSON ``{"team": …, "oncall": …, "tier": …}``. A background reader follows the topic from its start,
so the table is current (a tombstone deletes an entry); events are never blocked on it.
"""

from __future__ import annotations

import threading

import orjson
from prometheus_client import Gauge
from pydantic import Field

from logtide import log
from logtide.condition import field_getter, parse_field
from logtide.config import Model
from logtide.transport import TransportError
from logtide.processors.steps.base import Step, StepConfig, register

_log = log.get("processors.enrich")

LOOKUP_ENTRIES = Gauge("logtide_processor_lookup_entries", "Entries in a lookup table", ["topic"])


class LookupConfig(Model):
    topic: str = Field(description="compacted topic: key = join value, value = JSON object (null deletes)")
    key: str = Field(default="resource.service.name", description="event field joined on the record key")
    target: str = Field(default="resource", pattern="^(resource|attributes)$")
    prefix: str = Field(default="service.", description="prefix of the added keys: service.team, …")
    startup_wait_seconds: float = Field(default=10.0, ge=0, description="wait this long at start for the table to load")


class EnrichConfig(StepConfig):
    static: dict[str, str | int | float | bool] = Field(default_factory=dict, description="fields added as they are")
    static_target: str = Field(default="resource", pattern="^(resource|attributes)$")
    lookup: LookupConfig | None = None


class LookupTable:
    """A dict kept from a compacted topic by a background thread (manual assignment, no group)."""

    def __init__(self, transport, topic: str):
        self.transport = transport
        self.topic = topic
        self.table: dict[str, dict] = {}
        self.loaded = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        k = key.decode("utf-8", "replace")
        if value is None:
            self.table.pop(k, None)
            return
        try:
            row = orjson.loads(value)
        except orjson.JSONDecodeError:
            _log.warning("lookup value is not JSON, ignored", extra={"topic": self.topic, "key": k})
            return
        if isinstance(row, dict):
            # replace the dict (not update it): readers on the event thread see old or new, never half
            self.table = {**self.table, k: row}

    def _run(self) -> None:
        consumer = None
        try:
            consumer = self.transport.consumer(None)
            parts = consumer.partitions_for(self.topic)
            if not parts:
                self.error = f"lookup topic {self.topic} does not exist"
                _log.warning(self.error)
                self.loaded.set()
                return
            consumer.assign(parts)
            for tp in parts:
                consumer.seek(tp, 0)
            while not self._stop.is_set():
                batch = consumer.poll_batch(5000, 0.5)
                for rec in batch:
                    self.apply(rec.key, rec.value)
                LOOKUP_ENTRIES.labels(self.topic).set(len(self.table))
                if not batch:
                    # caught up (an empty poll after reading what there was): events may flow now
                    self.loaded.set()
        except TransportError as exc:
            self.error = str(exc)
            _log.error("lookup reader failed", extra={"topic": self.topic, "error": str(exc)})
            self.loaded.set()
        finally:
            if consumer is not None:
                consumer.close()

    @classmethod
    def fixed(cls, topic: str, rows: dict[str, dict]) -> LookupTable:
        """A table with these rows and no reader (offline pipeline tests)."""
        table = cls(None, topic)
        table.table = dict(rows)
        table.loaded.set()
        return table

    def start(self, wait: float) -> None:
        self._thread = threading.Thread(target=self._run, name=f"lookup-{self.topic}", daemon=True)
        self._thread.start()
        if not self.loaded.wait(wait):
            _log.warning("lookup table still loading, continuing", extra={"topic": self.topic})

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


@register("enrich")
class Enrich(Step):
    Config = EnrichConfig

    def __init__(self, config: EnrichConfig, ctx):
        super().__init__(config, ctx)
        self.static = dict(config.static)
        self.static_target = config.static_target
        self.lookup = config.lookup
        self.table: LookupTable | None = None
        if config.lookup is not None:
            self._key = field_getter(parse_field(config.lookup.key))
            self._prefix = config.lookup.prefix
            self._target = config.lookup.target
            self._cache: dict[int, tuple[dict, dict]] = {}

    def start(self) -> None:
        if self.lookup is not None:
            topic = self.lookup.topic
            if topic in self.ctx.lookups:
                self.table = LookupTable.fixed(topic, self.ctx.lookups[topic])
                return
            if self.ctx.transport is None:
                raise RuntimeError(f"enrich lookup needs Kafka (topic {topic}) or the table's rows given as they are")
            self.table = LookupTable(self.ctx.transport, topic)
            self.table.start(self.lookup.startup_wait_seconds)

    def close(self) -> None:
        if self.table is not None:
            self.table.stop()

    def process(self, event: dict) -> dict:
        if self.static:
            target = event[self.static_target]
            for k, v in self.static.items():
                target.setdefault(k, v)
        if self.table is not None:
            key = self._key(event)
            if key is not None:
                row = self.table.table.get(key if isinstance(key, str) else str(key))
                if row:
                    target = event[self._target]
                    p = self._prefix
                    for k, v in row.items():
                        target[p + k] = v
        return event

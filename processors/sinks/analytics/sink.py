"""The analytics sink: each batch goes to every configured output (Parquet, PostgreSQL).

Outputs are idempotent on their own (Parquet: recorded offsets; PostgreSQL: ON CONFLICT), so when
one output is down and the batch is retried, the other one writes nothing twice.
"""

from __future__ import annotations

import time

from logtide import log
from logtide.transport import TopicPartition, Transport, TransportError

from processors.sinks.analytics.compaction import compact
from processors.sinks.analytics.parquet import ParquetOutput
from processors.sinks.analytics.postgres import PostgresOutput
from processors.sinks.analytics.rows import to_row
from processors.sinks.service import Item, SinkBase

_log = log.get("processors.sinks.analytics")


class AnalyticsSink(SinkBase):
    name = "analytics"

    def __init__(self, settings, group: str, transport: Transport | None = None):
        self.settings = settings
        self.group = group
        self.transport = transport
        self.parquet = ParquetOutput(settings.parquet, group) if settings.parquet else None
        self.postgres = PostgresOutput(settings.postgres) if settings.postgres else None
        self._next_compaction = time.monotonic() + (settings.parquet.compact_every_s if settings.parquet else 0)

    def ready(self) -> bool:
        return self.postgres is None or self.postgres.healthy

    def assigned(self, parts: list[TopicPartition]) -> None:
        if self.parquet is None or self.transport is None:
            return
        try:
            admin = self.transport.admin()
            try:
                committed = admin.group_offsets(self.group)
            finally:
                admin.close()
        except TransportError:
            committed = {}
        self.parquet.trust({tp: committed.get(tp) for tp in parts})

    def write(self, items: list[Item]) -> None:
        rows = [(*to_row(it.event), it) for it in items]
        if self.parquet is not None:
            self.parquet.write(rows)
        if self.postgres is not None:
            self.postgres.write(rows)
        self._maybe_compact()

    def _maybe_compact(self) -> None:
        p = self.settings.parquet
        if p is None or p.compact_every_s <= 0 or time.monotonic() < self._next_compaction:
            return
        self._next_compaction = time.monotonic() + p.compact_every_s
        try:
            compact(self.parquet.store, min_files=p.compact_min_files, after_s=p.compact_after_s,
                    compression=p.compression)
        except OSError as exc:  # compaction is housekeeping: never fail a batch for it
            _log.warning("compaction failed", extra={"error": str(exc)})

    def close(self) -> None:
        if self.postgres is not None:
            self.postgres.close()

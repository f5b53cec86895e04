"""The analytics sink: each batch goes to every configured output (Parquet, PostgreSQL).

Outputs are idempotent on their own (Parquet: recorded offsets and its own id memory; PostgreSQL:
ON CONFLICT), so when one output is down and the batch is retried, the other one writes nothing
twice. Duplicate memory seeded from one output's files must stay inside that output: a batch that
reached Parquet but not PostgreSQL before a crash is still owed to PostgreSQL after the restart.
"""

from __future__ import annotations

import time

from logtide import log
from logtide.consume import Retry
from logtide.transport import TopicPartition, Transport, TransportError

from logtide.processors.sinks.analytics.compaction import compact
from logtide.processors.sinks.analytics.parquet import ParquetOutput
from logtide.processors.sinks.analytics.postgres import PostgresOutput
from logtide.processors.sinks.analytics.rows import to_row
from logtide.processors.sinks.s3 import StorageError
from logtide.processors.sinks.service import Item, SinkBase

_log = log.get("processors.sinks.analytics")


class AnalyticsSink(SinkBase):
    name = "analytics"

    def __init__(self, settings, group: str, transport: Transport | None = None):
        self.settings = settings
        self.group = group
        self.transport = transport
        self.parquet: ParquetOutput | None = None
        self._parquet_ok = True
        self.postgres = PostgresOutput(settings.postgres) if settings.postgres else None
        try:
            self._open_parquet()
        except Retry:
            pass  # S3 unreachable at start: the first batch waits for it (readiness false)
        self._compaction_checked: set[tuple[str, ...]] = set()
        self._next_compaction = time.monotonic() + (settings.parquet.compact_every_seconds if settings.parquet else 0)

    def _open_parquet(self) -> ParquetOutput | None:
        """The Parquet output (its start-up recovery reads the store, which may be S3 and down)."""
        if self.parquet is None and self.settings.parquet is not None:
            try:
                self.parquet = ParquetOutput(self.settings.parquet, self.group)
                self._parquet_ok = True
            except StorageError as exc:
                self._parquet_ok = False
                raise Retry(str(exc)) from None
        return self.parquet

    def ready(self) -> bool:
        return self._parquet_ok and (self.postgres is None or self.postgres.healthy)

    def assigned(self, parts: list[TopicPartition]) -> None:
        if self.settings.parquet is None or self.transport is None:
            return
        try:
            parquet = self._open_parquet()
        except Retry:
            return  # the first write retries until the store answers
        try:
            admin = self.transport.admin()
            try:
                committed = admin.group_offsets(self.group)
            finally:
                admin.close()
        except TransportError:
            committed = {}
        parquet.trust({tp: committed.get(tp) for tp in parts})
        parquet.reload_ids()  # what other replicas wrote for these partitions before the rebalance

    def write(self, items: list[Item]) -> None:
        rows = [(*to_row(it.event), it) for it in items]
        if self.settings.parquet is not None:
            try:
                self._open_parquet().write(rows)
                self._parquet_ok = True
            except StorageError as exc:
                self._parquet_ok = False
                raise Retry(str(exc)) from None
        if self.postgres is not None:
            self.postgres.write(rows)
        self._maybe_compact()

    def _maybe_compact(self) -> None:
        p = self.settings.parquet
        if p is None or p.compact_every_seconds <= 0 or time.monotonic() < self._next_compaction:
            return
        self._compaction_checked: set[tuple[str, ...]] = set()
        self._next_compaction = time.monotonic() + p.compact_every_seconds
        try:
            compact(
                self.parquet.store,
                min_files=p.compact_min_files,
                after_s=p.compact_after_seconds,
                compression=p.compression,
                checked=self._compaction_checked,
            )
        except (OSError, StorageError) as exc:  # compaction is housekeeping: never fail a batch for it
            _log.warning("compaction failed", extra={"error": str(exc)})

    def close(self) -> None:
        if self.postgres is not None:
            self.postgres.close()

"""Which DLQ records were already replayed: offset ranges per DLQ partition, kept in the shared
checkpoints topic (``logtide.checkpoints``, key ``tools.dlq-replayed/<dlq topic>``), so every
operator's `logtide dlq` sees the same and a replay is not sent twice by accident."""

from __future__ import annotations

from logtide.checkpoint import CheckpointError, KafkaCheckpoints
from logtide.transport import Record, TransportError

from logtide.tools.offset_ranges import OffsetRanges

NAMESPACE = "tools.dlq-replayed"


class ReplayLedger:
    def __init__(self, transport, topic: str):
        self.topic = topic
        self._transport = transport
        self._store: KafkaCheckpoints | None = None
        try:
            self._store = KafkaCheckpoints(transport, NAMESPACE)
            value = self._store.get(topic) or {}
        except (CheckpointError, TransportError):
            # A convenience only: a cluster where the checkpoints topic cannot be read still lists.
            value = {}
        self.offsets = {int(p): OffsetRanges(v) for p, v in value.get("partitions", {}).items()}

    def done(self, rec: Record) -> bool:
        ranges = self.offsets.get(rec.partition)
        return ranges is not None and rec.offset in ranges

    def add(self, records: list[Record]) -> None:
        """Record these as replayed (durably: returns after the broker acknowledged)."""
        for rec in records:
            self.offsets.setdefault(rec.partition, OffsetRanges()).add(rec.offset)
        if self._store is None:
            self._store = KafkaCheckpoints(self._transport, NAMESPACE)
        self._store.put(self.topic, {"partitions": {str(p): r.to_list() for p, r in self.offsets.items()}})

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

"""A look at consumer groups from outside: committed offsets, exact end offsets, lag in records and
in seconds, and the group's state (Stable, Empty …), for `logtide lag` and `logtide top`.

Lag in seconds is how old the first record the group has not consumed is (now minus that record's
timestamp): the time the group is behind, 0 when it is caught up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from logtide.topics import exact_end_offsets
from logtide.transport import TopicPartition, Transport, TransportError


@dataclass
class PartitionOffsets:
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


@dataclass
class GroupSnapshot:
    """One group at one moment."""

    group: str
    taken: float
    state: str | None
    partitions: dict[TopicPartition, PartitionOffsets] = field(default_factory=dict)

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions.values())


def list_groups(transport: Transport, only: list[str] | None = None) -> list[str]:
    admin = transport.admin()
    try:
        groups = admin.list_groups()
    finally:
        admin.close()
    if only:
        missing = [g for g in only if g not in groups]
        return [g for g in only if g not in missing] + missing  # unknown groups show as empty
    return groups


def group_states(transport: Transport, groups: list[str]) -> dict[str, str | None]:
    """Each group's coordinator state (Stable, Empty, Dead, PreparingRebalance …); None if unknown."""
    if not groups:
        return {}
    admin = transport.admin()
    try:
        return admin.group_states(groups)
    except TransportError:
        return {g: None for g in groups}
    finally:
        admin.close()


def snapshot(transport: Transport, groups: list[str]) -> dict[str, GroupSnapshot]:
    """Committed and (exact) end offsets of every partition the groups committed on."""
    admin = transport.admin()
    committed: dict[str, dict[TopicPartition, int]] = {}
    try:
        for g in groups:
            try:
                committed[g] = admin.group_offsets(g)
            except TransportError:
                committed[g] = {}
    finally:
        admin.close()
    parts = sorted({tp for offs in committed.values() for tp in offs})
    consumer = transport.consumer(None)
    try:
        ends = exact_end_offsets(consumer, parts) if parts else {}
    finally:
        consumer.close()
    states = group_states(transport, groups)
    now = time.time()
    return {
        g: GroupSnapshot(
            g,
            now,
            states.get(g),
            {tp: PartitionOffsets(off, ends.get(tp, off)) for tp, off in sorted(committed[g].items())},
        )
        for g in groups
    }


def lag_seconds(
    transport: Transport, positions: dict[TopicPartition, int], timeout: float = 5.0
) -> dict[TopicPartition, float]:
    """Age in seconds of the record at each given position (the first one not yet consumed)."""
    if not positions:
        return {}
    consumer = transport.consumer(None)
    found: dict[TopicPartition, float] = {}
    try:
        consumer.assign(list(positions))
        for tp, off in positions.items():
            consumer.seek(tp, off)
        deadline = time.monotonic() + timeout
        while len(found) < len(positions) and time.monotonic() < deadline:
            for rec in consumer.poll_batch(1000, 0.1):
                if rec.tp in found or rec.offset < positions[rec.tp] or rec.timestamp is None:
                    continue
                found[rec.tp] = max(0.0, time.time() - rec.timestamp / 1000)
    finally:
        consumer.close()
    return found

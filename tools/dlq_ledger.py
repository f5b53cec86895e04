"""Which DLQ records were replayed or purged, shared by every operator and safe when several run at once.

The ledger is an append-only log: the one-partition topic ``logtide.dlq.ledger``, keyed by the DLQ
topic it is about. One partition gives every operator the same total order, and the order decides
(compare-and-swap by log position, without Kafka transactions, which the embedded broker lacks):

- ``claim``: an operator is about to send these DLQ offsets (one chunk), until ``expires_ms``;
- ``done``: the offsets of a claim that were sent and acknowledged (the rest of the claim is freed);
- ``purge``: offsets an operator gave up on: never listed as pending, never replayed.

A claim *wins* the offsets that no ``done``/``purge`` and no earlier unexpired claim holds, decided
when every reader folds the log up to it, so two operators (two reasons, or both ``--all``) never send
the same record: each appends its claim, reads the log up to it, and sends only what it won. A replay
killed between sending a chunk and its ``done`` leaves a claim that expires (``CLAIM_SECONDS``); the
next replay then sends that chunk again (at most ``REPLAY_CHUNK`` records: at-least-once, ids kept,
the sinks drop the copies). A ledger that cannot be read is an error, never "nothing replayed".
"""

from __future__ import annotations

import getpass
import os
import socket
import time
import uuid

import orjson

from logtide.topics import exact_end_offsets
from logtide.transport import Record, TopicPartition, TopicSpec, TransportError

from logtide.tools.offset_ranges import OffsetRanges

LEDGER = "logtide.dlq.ledger"
#: A claim not finished within this long is considered abandoned (its operator crashed).
CLAIM_SECONDS = 120.0


class LedgerError(TransportError):
    """The ledger cannot be read or written: nothing may be replayed (it could be sent twice)."""


class _Claim:
    __slots__ = ("id", "at_ms", "expires_ms", "won")

    def __init__(self, cid: str, at_ms: int, expires_ms: int, won: dict[int, OffsetRanges]):
        self.id, self.at_ms, self.expires_ms, self.won = cid, at_ms, expires_ms, won


def _ranges(value: dict) -> dict[int, OffsetRanges]:
    return {int(p): OffsetRanges(r) for p, r in (value or {}).items()}


def _as_json(parts: dict[int, OffsetRanges]) -> dict[str, list[list[int]]]:
    return {str(p): r.to_list() for p, r in parts.items() if len(r)}


class ReplayLedger:
    def __init__(self, transport, topic: str, *, ledger_topic: str = LEDGER, timeout: float = 30.0):
        self.topic = topic
        self.ledger_topic = ledger_topic
        self.timeout = timeout
        self._transport = transport
        self._tp = TopicPartition(ledger_topic, 0)
        self.replayed: dict[int, OffsetRanges] = {}
        self.purged: dict[int, OffsetRanges] = {}
        self._claims: dict[str, _Claim] = {}
        self._position = 0
        self._consumer = None
        self._producer = None
        self.operator = f"{getpass.getuser()}@{socket.gethostname()}:{os.getpid()}"
        try:
            admin = transport.admin()
            try:
                admin.create_topics([TopicSpec(ledger_topic, 1, config={"retention.ms": "-1"})])
            finally:
                admin.close()
            self._consumer = transport.consumer(None)
            end = exact_end_offsets(self._consumer, [self._tp]).get(self._tp, 0)
            self._consumer.assign([self._tp])
            self._consumer.seek(self._tp, 0)
            self._read_to(end - 1)
        except TransportError as exc:
            self.close()
            raise LedgerError(f"cannot read the DLQ replay ledger {ledger_topic}: {exc}") from None

    # --- reading --------------------------------------------------------------------------------
    def _read_to(self, offset: int) -> None:
        """Fold the log up to ``offset`` (inclusive)."""
        deadline = time.monotonic() + self.timeout
        while self._position <= offset:
            if time.monotonic() > deadline:
                raise LedgerError(
                    f"the DLQ replay ledger {self.ledger_topic} did not deliver offsets "
                    f"{self._position}..{offset} within {self.timeout:.0f}s"
                )
            for rec in self._consumer.poll_batch(1000, 0.2):
                if rec.offset < self._position:
                    continue
                self._position = rec.offset + 1
                if rec.key == self.topic.encode():
                    self._apply(rec)

    def _apply(self, rec: Record) -> None:
        try:
            entry = orjson.loads(rec.value)
            op = entry["op"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            raise LedgerError(
                f"the DLQ replay ledger {self.ledger_topic} has an unreadable entry at offset "
                f"{rec.offset}; fix or remove it before replaying"
            ) from None
        if op == "claim":
            claimed = _ranges(entry["partitions"])
            won = {}
            for p, ranges in claimed.items():
                free = OffsetRanges()
                for lo, hi in ranges.to_list():
                    for off in range(lo, hi + 1):
                        if not self._held(p, off, entry["at_ms"], entry.get("again", False)):
                            free.add(off)
                won[p] = free
            self._claims[entry["claim"]] = _Claim(entry["claim"], entry["at_ms"], entry["expires_ms"], won)
        elif op == "done":
            self._claims.pop(entry["claim"], None)
            for p, r in _ranges(entry["partitions"]).items():
                for lo, hi in r.to_list():
                    self.replayed.setdefault(p, OffsetRanges()).add_range(lo, hi)
        elif op == "purge":
            for p, r in _ranges(entry["partitions"]).items():
                for lo, hi in r.to_list():
                    self.purged.setdefault(p, OffsetRanges()).add_range(lo, hi)

    def _held(self, partition: int, offset: int, at_ms: int, again: bool) -> bool:
        if offset in self.purged.get(partition, ()) or (not again and offset in self.replayed.get(partition, ())):
            return True
        return any(c.expires_ms > at_ms and offset in c.won.get(partition, ()) for c in self._claims.values())

    def done_offset(self, partition: int, offset: int) -> bool:
        return offset in self.replayed.get(partition, ()) or offset in self.purged.get(partition, ())

    def done(self, rec: Record) -> bool:
        """Replayed or purged (either way: not to be sent again)."""
        return self.done_offset(rec.partition, rec.offset)

    def was_replayed(self, rec: Record) -> bool:
        return rec.offset in self.replayed.get(rec.partition, ())

    def was_purged(self, rec: Record) -> bool:
        return rec.offset in self.purged.get(rec.partition, ())

    # --- writing --------------------------------------------------------------------------------
    def _append(self, entry: dict) -> int:
        """Append one entry; return its offset once the broker acknowledged it."""
        if self._producer is None:
            self._producer = self._transport.producer(linger_ms=0)
        delivered: list = []
        self._producer.produce(
            self.ledger_topic,
            orjson.dumps(entry),
            key=self.topic.encode(),
            partition=0,
            on_delivery=lambda err, rec: delivered.append((err, rec)),
        )
        left = self._producer.flush(self.timeout)
        if left or not delivered or delivered[0][0] is not None:
            why = delivered[0][0] if delivered and delivered[0][0] else "timeout"
            raise LedgerError(f"the DLQ replay ledger {self.ledger_topic} did not acknowledge a write: {why}")
        return delivered[0][1].offset

    def claim(self, records: list[Record], *, again: bool = False) -> tuple[str, set[tuple[int, int]]]:
        """Claim these records; return the claim's id and the (partition, offset) pairs this operator
        won and may send (others are replayed — unless ``again`` —, purged, or claimed by another
        operator right now)."""
        parts: dict[int, OffsetRanges] = {}
        for rec in records:
            parts.setdefault(rec.partition, OffsetRanges()).add(rec.offset)
        cid = uuid.uuid4().hex
        now = int(time.time() * 1000)
        offset = self._append(
            {
                "op": "claim",
                "claim": cid,
                "by": self.operator,
                "at_ms": now,
                "expires_ms": now + int(CLAIM_SECONDS * 1000),
                "again": again,
                "partitions": _as_json(parts),
            }
        )
        self._read_to(offset)
        won = self._claims[cid].won
        return cid, {(p, o) for p, r in won.items() for lo, hi in r.to_list() for o in range(lo, hi + 1)}

    def finish(self, cid: str, sent: list[Record]) -> None:
        """Record ``sent`` (acknowledged by Kafka) as replayed and close the claim (the rest is freed)."""
        parts: dict[int, OffsetRanges] = {}
        for rec in sent:
            parts.setdefault(rec.partition, OffsetRanges()).add(rec.offset)
        self._read_to(self._append({"op": "done", "claim": cid, "by": self.operator, "partitions": _as_json(parts)}))

    def purge(self, records: list[Record]) -> None:
        parts: dict[int, OffsetRanges] = {}
        for rec in records:
            parts.setdefault(rec.partition, OffsetRanges()).add(rec.offset)
        if parts:
            self._read_to(self._append({"op": "purge", "by": self.operator, "partitions": _as_json(parts)}))

    def close(self) -> None:
        for client in (self._producer, self._consumer):
            if client is not None:
                try:
                    client.close()
                except TransportError:
                    pass
        self._producer = self._consumer = None

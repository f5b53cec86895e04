"""DLQ records grouped by reason, in one streaming pass (memory: a few samples per reason, not the
DLQ), and the selection `show` and `replay` apply.

A reason is the record's stage, error class and error message with numbers and long hex blanked
(``invalid JSON: unexpected character: line N column N``), so one bug is one line however many
records it hit; its id is a short hash of those three, stable across runs and machines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from logtide.cli import UsageError
from logtide.dlq import error_info
from logtide.envelope import make_id
from logtide.transport import Record

from logtide.tools.common import format_ms
from logtide.tools.offset_ranges import OffsetRanges

_NUMBER = re.compile(r"\d+")
_HEX = re.compile(r"\b[0-9a-f]{16,}\b")


def reason_of(info: dict[str, str]) -> tuple[str, str, str]:
    message = _NUMBER.sub("N", _HEX.sub("<hex>", info.get("message", "")))
    return info.get("stage", "?"), info.get("class", "?"), message


def reason_id(reason: tuple[str, str, str]) -> str:
    return make_id("dlq-reason", *reason)[:8]


def error_ms(info: dict[str, str], rec: Record) -> int | None:
    try:
        return int(info["time"]) // 1_000_000
    except (KeyError, ValueError):
        return rec.timestamp


@dataclass
class Reason:
    id: str
    stage: str
    cls: str
    message: str
    example: str
    count: int = 0
    replayed: int = 0
    purged: int = 0
    selected: int = 0
    origins: dict[str, int] = field(default_factory=dict)
    components: dict[str, int] = field(default_factory=dict)
    first_ms: int | None = None
    last_ms: int | None = None
    samples: list[Record] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "reason": self.id,
            "stage": self.stage,
            "class": self.cls,
            "message": self.message,
            "example": self.example,
            "count": self.count,
            "replayed": self.replayed,
            "purged": self.purged,
            "origins": self.origins,
            "components": self.components,
            "first": format_ms(self.first_ms),
            "last": format_ms(self.last_ms),
        }


@dataclass
class Selection:
    """Which DLQ records a command is about (reason ids, origin topic, component, DLQ offsets)."""

    reasons: list[str] = field(default_factory=list)
    origin: str | None = None
    component: str | None = None
    offsets: OffsetRanges | None = None

    @classmethod
    def from_args(cls, args) -> Selection:
        offsets = None
        if getattr(args, "offsets", None):
            try:
                offsets = OffsetRanges.parse(args.offsets)
            except ValueError:
                raise UsageError(f"--offsets {args.offsets!r}: use numbers and ranges like 3,7,10-20") from None
        return cls(
            list(getattr(args, "reasons", []) or []),
            getattr(args, "origin", None),
            getattr(args, "component", None),
            offsets,
        )

    def matches(self, rid: str, info: dict[str, str], rec: Record) -> bool:
        if self.reasons and rid not in self.reasons:
            return False
        if self.origin and info.get("topic") != self.origin:
            return False
        if self.component and info.get("component") != self.component:
            return False
        return self.offsets is None or rec.offset in self.offsets


class Reasons:
    """Accumulates reasons record by record; keeps up to ``samples`` selected records per reason."""

    def __init__(self, selection: Selection | None = None, samples: int = 0, replayed=None, purged=None):
        self.by_id: dict[str, Reason] = {}
        self.selection = selection or Selection()
        self.max_samples = samples
        self.replayed = replayed  # callable(rec) -> bool, or None
        self.purged = purged  # callable(rec) -> bool, or None
        self.records = 0
        self.selected = 0

    def add(self, rec: Record) -> None:
        info = error_info(rec.headers)
        reason = reason_of(info)
        rid = reason_id(reason)
        r = self.by_id.get(rid)
        if r is None:
            r = self.by_id[rid] = Reason(rid, reason[0], reason[1], reason[2], info.get("message", ""))
        self.records += 1
        r.count += 1
        origin = info.get("topic", "?")
        r.origins[origin] = r.origins.get(origin, 0) + 1
        comp = info.get("component", "?")
        r.components[comp] = r.components.get(comp, 0) + 1
        ts = error_ms(info, rec)
        if ts is not None:
            r.first_ms = ts if r.first_ms is None else min(r.first_ms, ts)
            r.last_ms = ts if r.last_ms is None else max(r.last_ms, ts)
        if self.replayed is not None and self.replayed(rec):
            r.replayed += 1
        if self.purged is not None and self.purged(rec):
            r.purged += 1
        if self.selection.matches(rid, info, rec):
            r.selected += 1
            self.selected += 1
            if len(r.samples) < self.max_samples:
                r.samples.append(rec)

    def ranked(self) -> list[Reason]:
        return sorted(self.by_id.values(), key=lambda r: (-r.count, r.id))

    def check_known(self, wanted: list[str]) -> None:
        unknown = [r for r in wanted if r not in self.by_id]
        if unknown:
            raise UsageError(f"unknown reason id(s) {', '.join(unknown)}; see `logtide dlq list`")

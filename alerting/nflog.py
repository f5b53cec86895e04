"""The notification log: for each (group, receiver integration), which alerts were last notified as
firing and as resolved, and when. It decides whether a flush must notify (Alertmanager's DedupStage)
and is persisted, so a restart or a retry never pages twice for the same state."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Entry:
    firing: set[str] = field(default_factory=set)
    resolved: set[str] = field(default_factory=set)
    timestamp: int = 0  # engine clock (ns) of the notified flush

    def to_dict(self) -> dict:
        return {"firing": sorted(self.firing), "resolved": sorted(self.resolved), "timestamp": self.timestamp}

    @classmethod
    def from_dict(cls, d: dict) -> Entry:
        return cls(set(d.get("firing", ())), set(d.get("resolved", ())), d.get("timestamp", 0))


def needs_update(
    entry: Entry | None, firing: set[str], resolved: set[str], send_resolved: bool, repeat_ns: int, now: int
) -> bool:
    if entry is None:
        return bool(firing)  # nothing notified yet: only firing alerts are news
    if not firing <= entry.firing:
        return True  # a new firing alert
    if not firing:
        return bool(entry.firing)  # everything resolved: tell the receiver (once)
    if send_resolved and not resolved <= entry.resolved:
        return True
    return entry.timestamp <= now - repeat_ns


class NotificationLog:
    def __init__(self, persist=None):
        self.entries: dict[tuple[str, str], Entry] = {}
        self.lock = threading.Lock()
        self.persist = persist or (lambda key, entry: None)

    @staticmethod
    def key(group_key: str, integration: str) -> tuple[str, str]:
        return (group_key, integration)

    def get(self, group_key: str, integration: str) -> Entry | None:
        with self.lock:
            return self.entries.get((group_key, integration))

    def log(self, group_key: str, integration: str, firing: set[str], resolved: set[str], now: int) -> None:
        entry = Entry(set(firing), set(resolved), now)
        with self.lock:
            self.entries[(group_key, integration)] = entry
        self.persist((group_key, integration), entry)

    def restore(self, group_key: str, integration: str, entry: Entry) -> None:
        self.entries[(group_key, integration)] = entry

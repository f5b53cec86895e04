"""Silences: matchers plus a start and an end (with author and comment), as in Alertmanager.
A silence is pending before ``startsAt``, active until ``endsAt``, then expired; expiring one early
sets ``endsAt`` to now. Times are Unix ns on the engine's wall clock (``Clock.wall``)."""

from __future__ import annotations

import threading
import uuid
from dataclasses import asdict, dataclass

from logtide import log

from logtide.alerting.matchers import Matcher, matches_all, parse_matcher
from logtide.alerting.state import rfc3339

_log = log.get("alerting.silences")


@dataclass
class Silence:
    id: str
    matchers: list[Matcher]
    starts_at: int
    ends_at: int
    created_by: str
    comment: str
    updated_at: int

    def state(self, now: int) -> str:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["matchers"] = [str(m) for m in self.matchers]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Silence:
        return cls(**{**d, "matchers": [parse_matcher(m) for m in d["matchers"]]})

    def api(self, now: int) -> dict:
        return {
            "id": self.id,
            "matchers": [m.api() for m in self.matchers],
            "startsAt": rfc3339(self.starts_at),
            "endsAt": rfc3339(self.ends_at),
            "createdBy": self.created_by,
            "comment": self.comment,
            "updatedAt": rfc3339(self.updated_at),
            "status": {"state": self.state(now)},
        }


def check_matchers(ms: list[Matcher]) -> None:
    """Alertmanager's rule: a silence needs a matcher that does not match the empty string (a label
    that is absent reads as ""), or it would silence every alert."""
    if not ms:
        raise ValueError("a silence needs at least one matcher")
    if all(m.matches({}) for m in ms):
        raise ValueError(
            f"a silence needs at least one matcher that does not match the empty string "
            f"(these match every alert: {', '.join(map(str, ms))})"
        )


class Silences:
    def __init__(self, on_change=None):
        self.by_id: dict[str, Silence] = {}
        self.lock = threading.Lock()
        self.on_change = on_change or (lambda s: None)

    def add(
        self,
        matchers: list,
        starts_at: int,
        ends_at: int,
        created_by: str,
        comment: str,
        now: int,
        silence_id: str | None = None,
    ) -> Silence:
        ms = [parse_matcher(m) for m in matchers]
        check_matchers(ms)
        if ends_at <= starts_at:
            raise ValueError("endsAt must be after startsAt")
        if ends_at <= now:
            raise ValueError("endsAt is in the past")
        if not created_by:
            raise ValueError("createdBy is required")
        s = Silence(silence_id or str(uuid.uuid4()), ms, starts_at, ends_at, created_by, comment, now)
        with self.lock:
            self.by_id[s.id] = s
        self.on_change(s)
        return s

    def expire(self, silence_id: str, now: int) -> Silence:
        with self.lock:
            s = self.by_id.get(silence_id)
            if s is None:
                raise KeyError(silence_id)
            if s.state(now) == "expired":
                return s
            s.ends_at = now
            s.starts_at = min(s.starts_at, now)
            s.updated_at = now
        self.on_change(s)
        return s

    def restore(self, s: Silence) -> None:
        try:
            check_matchers(s.matchers)
        except ValueError as exc:  # stored by an older version that accepted it
            _log.warning("stored silence ignored", extra={"id": s.id, "error": str(exc)})
            return
        self.by_id[s.id] = s

    def silenced_by(self, labels: dict[str, str], now: int) -> list[str]:
        with self.lock:
            items = list(self.by_id.values())
        return [s.id for s in items if s.state(now) == "active" and matches_all(s.matchers, labels)]

    def list(self) -> list[Silence]:
        with self.lock:
            return sorted(self.by_id.values(), key=lambda s: s.starts_at)

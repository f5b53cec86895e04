"""Durable state in one SQLite file (WAL, synchronous=FULL): active alerts, rule windows, silences,
the notification log and the input offsets already applied. The engine writes one transaction per
batch before the batch's offsets are committed to Kafka, and skips records at or below the stored
offsets after a restart, so a replayed batch is never counted twice."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any
from collections.abc import Iterable

import orjson

from logtide.checkpoint import CheckpointError

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (fingerprint TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS windows (rule TEXT NOT NULL, key TEXT NOT NULL, data BLOB NOT NULL,
                                    PRIMARY KEY (rule, key));
CREATE TABLE IF NOT EXISTS rules (rule TEXT PRIMARY KEY, signature TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS silences (id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS nflog (group_key TEXT NOT NULL, integration TEXT NOT NULL, data BLOB NOT NULL,
                                  PRIMARY KEY (group_key, integration));
CREATE TABLE IF NOT EXISTS offsets (topic TEXT NOT NULL, partition INTEGER NOT NULL, next INTEGER NOT NULL,
                                    PRIMARY KEY (topic, partition));
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB NOT NULL);
"""


def _j(v: Any) -> bytes:
    return orjson.dumps(v)


class Batch:
    """What one evaluated batch changed; written in one transaction."""

    def __init__(self):
        self.alerts: dict[str, dict | None] = {}
        self.windows: dict[tuple[str, str], Any | None] = {}
        self.signatures: dict[str, str | None] = {}
        self.reset_windows: set[str] = set()  # rules whose stored windows are dropped first
        self.offsets: dict[tuple[str, int], int] = {}
        self.meta: dict[str, Any] = {}

    def __bool__(self) -> bool:
        return bool(self.alerts or self.windows or self.signatures or self.reset_windows or self.offsets or self.meta)


class Store:
    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise CheckpointError(f"alert state store {self.path}: {exc}") from None
        self.lock = threading.Lock()

    def _write(self, fn) -> None:
        with self.lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                fn(self.db)
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise

    def save(self, batch: Batch) -> None:
        if not batch:
            return

        def write(db: sqlite3.Connection) -> None:
            for rule in batch.reset_windows:
                db.execute("DELETE FROM windows WHERE rule=?", (rule,))
            for fp, data in batch.alerts.items():
                if data is None:
                    db.execute("DELETE FROM alerts WHERE fingerprint=?", (fp,))
                else:
                    db.execute("INSERT OR REPLACE INTO alerts VALUES (?,?)", (fp, _j(data)))
            for (rule, key), data in batch.windows.items():
                if data is None:
                    db.execute("DELETE FROM windows WHERE rule=? AND key=?", (rule, key))
                else:
                    db.execute("INSERT OR REPLACE INTO windows VALUES (?,?,?)", (rule, key, _j(data)))
            for rule, sig in batch.signatures.items():
                if sig is None:
                    db.execute("DELETE FROM rules WHERE rule=?", (rule,))
                    db.execute("DELETE FROM windows WHERE rule=?", (rule,))
                else:
                    db.execute("INSERT OR REPLACE INTO rules VALUES (?,?)", (rule, sig))
            for (topic, part), nxt in batch.offsets.items():
                db.execute("INSERT OR REPLACE INTO offsets VALUES (?,?,?)", (topic, part, nxt))
            for k, v in batch.meta.items():
                db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (k, _j(v)))

        self._write(write)

    def put_silence(self, sid: str, data: dict) -> None:
        self._write(lambda db: db.execute("INSERT OR REPLACE INTO silences VALUES (?,?)", (sid, _j(data))))

    def put_nflog(self, group_key: str, integration: str, data: dict) -> None:
        self._write(
            lambda db: db.execute("INSERT OR REPLACE INTO nflog VALUES (?,?,?)", (group_key, integration, _j(data)))
        )

    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    def alerts(self) -> Iterable[dict]:
        return [orjson.loads(d) for (d,) in self._rows("SELECT data FROM alerts")]

    def windows(self, rule: str) -> Iterable[tuple[str, Any]]:
        return [(k, orjson.loads(d)) for k, d in self._rows("SELECT key, data FROM windows WHERE rule=?", (rule,))]

    def signatures(self) -> dict[str, str]:
        return dict(self._rows("SELECT rule, signature FROM rules"))

    def silences(self) -> list[dict]:
        return [orjson.loads(d) for (d,) in self._rows("SELECT data FROM silences")]

    def nflog(self) -> list[tuple[str, str, dict]]:
        return [(g, i, orjson.loads(d)) for g, i, d in self._rows("SELECT group_key, integration, data FROM nflog")]

    def offsets(self) -> dict[tuple[str, int], int]:
        return {(t, p): n for t, p, n in self._rows("SELECT topic, partition, next FROM offsets")}

    def meta(self, k: str, default: Any = None) -> Any:
        rows = self._rows("SELECT v FROM meta WHERE k=?", (k,))
        return orjson.loads(rows[0][0]) if rows else default

    def close(self) -> None:
        with self.lock:
            self.db.close()

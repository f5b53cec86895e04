"""PostgreSQL output, for Grafana's built-in PostgreSQL data source.

One table partitioned by day on ``time`` (``<table>_YYYYMMDD`` partitions created on demand), so old
days are dropped with ``DROP TABLE`` instead of a slow DELETE. Each batch: ``COPY`` into a temporary
table, then ``INSERT … SELECT … ON CONFLICT (id, time) DO NOTHING`` and commit — one transaction, so a
crash leaves either the whole batch or none of it, and a redelivered event inserts nothing.

Why ``(id, time)`` and not ``(id)``: a unique index on a partitioned table must contain the partition
key. ``time`` is the event's filing time, which is deterministic per event (``eventtime``), so the
same id always comes with the same time and the pair is as good as the id.
"""

from __future__ import annotations

from datetime import timedelta

import psycopg
from psycopg import sql

from logtide import log
from logtide.consume import Retry

from logtide.processors.sinks.eventtime import utc

_log = log.get("processors.sinks.postgres")

COLUMNS = (
    "id",
    "time",
    "event_time",
    "time_adjusted",
    "observed_time",
    "ingest_time",
    "severity_text",
    "severity_number",
    "source",
    "service",
    "namespace",
    "body",
    "attributes",
    "resource",
)

DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    id text NOT NULL,
    time timestamptz NOT NULL,
    event_time timestamptz,
    time_adjusted boolean NOT NULL DEFAULT false,
    observed_time timestamptz,
    ingest_time timestamptz,
    severity_text text NOT NULL DEFAULT '',
    severity_number smallint NOT NULL DEFAULT 0,
    source text NOT NULL,
    service text,
    namespace text,
    body text,
    attributes jsonb NOT NULL DEFAULT '{{}}',
    resource jsonb NOT NULL DEFAULT '{{}}',
    PRIMARY KEY (id, time)
) PARTITION BY RANGE (time);
CREATE INDEX IF NOT EXISTS {time_idx} ON {table} (time);
CREATE INDEX IF NOT EXISTS {svc_idx} ON {table} (service, time);
"""


def _ts(ns: int | None):
    return None if ns is None else utc(ns)


class PostgresOutput:
    name = "postgres"

    def __init__(self, settings):
        self.settings = settings
        self.table = settings.table
        self.conn: psycopg.Connection | None = None
        self.partitions: set[str] = set()
        self.healthy = True

    def _connect(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.conn = psycopg.connect(
                self.settings.dsn.get_secret_value(),
                connect_timeout=self.settings.connect_timeout_seconds,
                application_name="logtide-sink-analytics",
            )
            t = self.table
            with self.conn.transaction():
                self.conn.execute(
                    sql.SQL(DDL).format(
                        table=sql.Identifier(t),
                        time_idx=sql.Identifier(f"{t}_time_idx"),
                        svc_idx=sql.Identifier(f"{t}_service_idx"),
                    )
                )
            self.partitions.clear()
        return self.conn

    def _ensure_partitions(self, conn: psycopg.Connection, days: set) -> None:
        for day in sorted(days):
            name = f"{self.table}_{day:%Y%m%d}"
            if name in self.partitions:
                continue
            conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {p} PARTITION OF {t} FOR VALUES FROM ({a}) TO ({b})").format(
                    p=sql.Identifier(name),
                    t=sql.Identifier(self.table),
                    a=sql.Literal(f"{day:%Y-%m-%d} 00:00:00+00"),
                    b=sql.Literal(f"{day + timedelta(days=1):%Y-%m-%d} 00:00:00+00"),
                )
            )
            self.partitions.add(name)

    def write(self, rows: list[tuple[tuple[str, str, str], dict, object]]) -> None:
        if not rows:
            return
        try:
            conn = self._connect()
            with conn.transaction():
                days = {utc(row["time"]).date() for _, row, _ in rows}
                self._ensure_partitions(conn, days)
                with conn.cursor() as cur:
                    cur.execute(
                        sql.SQL(
                            "CREATE TEMP TABLE IF NOT EXISTS logtide_batch "
                            "(LIKE {t} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                        ).format(t=sql.Identifier(self.table))
                    )
                    cols = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
                    with cur.copy(sql.SQL("COPY logtide_batch ({}) FROM STDIN").format(cols)) as copy:
                        for (source, _, _), row, _ in rows:
                            copy.write_row(
                                (
                                    row["id"],
                                    _ts(row["time"]),
                                    _ts(row["event_time"]),
                                    row["time_adjusted"],
                                    _ts(row["observed_time"]),
                                    _ts(row["ingest_time"]),
                                    row["severity_text"],
                                    row["severity_number"],
                                    source,
                                    row["service"],
                                    row["namespace"],
                                    None if row["body"] is None else row["body"].replace("\x00", "\ufffd"),
                                    row["attributes"].replace("\\u0000", "\\ufffd"),
                                    _resource_json(row["resource"]),
                                )
                            )
                    cur.execute(
                        sql.SQL(
                            "INSERT INTO {t} ({c}) SELECT {c} FROM logtide_batch ON CONFLICT (id, time) DO NOTHING"
                        ).format(t=sql.Identifier(self.table), c=cols)
                    )
            self.healthy = True
        except psycopg.OperationalError as exc:
            self.healthy = False
            self._drop()
            raise Retry(
                f"PostgreSQL unavailable: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}"
            ) from None
        except (psycopg.errors.DuplicateTable, psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject) as exc:
            # Another sink instance created the same day partition (or the table) at the same moment:
            # the transaction rolled back; the next attempt finds it.
            self.partitions.clear()
            raise Retry(f"concurrent DDL: {exc}") from None

    def _drop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is gone either way
                pass
            self.conn = None

    def close(self) -> None:
        self._drop()


def _resource_json(pairs: list[tuple[str, str]]) -> str:
    import orjson

    return orjson.dumps(dict(pairs)).decode().replace("\\u0000", "\\ufffd")

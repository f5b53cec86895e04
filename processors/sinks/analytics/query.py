"""`logtide query "SQL"`: DuckDB over the Parquet dataset.

Views: ``events`` (one row per event id: duplicates hidden with ``QUALIFY row_number() OVER
(PARTITION BY id ORDER BY ingest_time) = 1``) and ``events_all`` (every stored row). Hive partition
columns ``source``, ``date`` and ``hour`` come from the directory names; ``attributes`` is JSON text:
``SELECT attributes->>'$.user' AS user, count(*) FROM events GROUP BY 1``.
"""

from __future__ import annotations

import os

import duckdb

from processors.sinks.analytics.rows import SCHEMA

_DUCK_TYPES = {"string": "VARCHAR", "timestamp[ns, tz=UTC]": "TIMESTAMPTZ", "bool": "BOOLEAN", "int8": "TINYINT",
               "map<string, string>": "MAP(VARCHAR, VARCHAR)", "list<item: string>": "VARCHAR[]"}


def _empty_select() -> str:
    cols = ", ".join(f"CAST(NULL AS {_DUCK_TYPES[str(f.type)]}) AS \"{f.name}\"" for f in SCHEMA)
    return f"SELECT {cols}, CAST(NULL AS VARCHAR) AS source, CAST(NULL AS DATE) AS date, " \
           f"CAST(NULL AS VARCHAR) AS hour WHERE false"


def connect(root: str) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the ``events`` and ``events_all`` views over ``root``."""
    con = duckdb.connect()
    has_files = any(f.endswith(".parquet") for _, _, fs in os.walk(root) for f in fs)
    if has_files:
        glob = os.path.join(os.path.abspath(root), "source=*", "date=*", "hour=*", "*.parquet").replace("'", "''")
        con.execute(f"CREATE VIEW events_all AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true, "
                    f"union_by_name = true)")
    else:
        con.execute(f"CREATE VIEW events_all AS {_empty_select()}")
    con.execute("CREATE VIEW events AS SELECT * FROM events_all "
                "QUALIFY row_number() OVER (PARTITION BY id ORDER BY ingest_time, time) = 1")
    return con


def run_query(root: str, text: str) -> tuple[list[str], list[tuple]]:
    con = connect(root)
    try:
        cur = con.execute(text)
        cols = [d[0] for d in cur.description] if cur.description else []
        return cols, cur.fetchall() if cols else []
    finally:
        con.close()

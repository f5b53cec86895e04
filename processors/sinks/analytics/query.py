"""`logtide query "SQL"`: DuckDB over the Parquet dataset.

Views: ``events`` (one row per event id: duplicates hidden with ``QUALIFY row_number() OVER
(PARTITION BY id ORDER BY ingest_time) = 1``) and ``events_all`` (every stored row). Hive partition
columns ``source``, ``date`` and ``hour`` come from the directory names; ``attributes`` is JSON text:
``SELECT attributes->>'$.user' AS user, count(*) FROM events GROUP BY 1``.

Read-only: exactly one statement, a query (``SELECT``/``WITH``/``EXPLAIN``/``DESCRIBE``); DuckDB's
file access is then limited to the dataset's directory and its configuration locked, so neither
``COPY … TO``, ``read_text('/etc/…')`` nor ``SET`` gets through.
"""

from __future__ import annotations

import os

import duckdb

from logtide.cli import UsageError

from logtide.processors.sinks.analytics.rows import SCHEMA

_DUCK_TYPES = {
    "string": "VARCHAR",
    "timestamp[ns, tz=UTC]": "TIMESTAMPTZ",
    "bool": "BOOLEAN",
    "int8": "TINYINT",
    "map<string, string>": "MAP(VARCHAR, VARCHAR)",
    "list<item: string>": "VARCHAR[]",
}


def _empty_select() -> str:
    cols = ", ".join(f'CAST(NULL AS {_DUCK_TYPES[str(f.type)]}) AS "{f.name}"' for f in SCHEMA)
    return (
        f"SELECT {cols}, CAST(NULL AS VARCHAR) AS source, CAST(NULL AS DATE) AS date, "
        f"CAST(NULL AS VARCHAR) AS hour WHERE false"
    )


def _s3_dataset(url: str, endpoint_url: str | None, region: str):
    """The dataset under s3://bucket/prefix as a pyarrow Dataset (no DuckDB extension needed)."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    from pyarrow import fs

    from logtide.processors.sinks.s3 import split_url

    bucket, prefix = split_url(url)
    kw = {"region": region}
    if endpoint_url:
        scheme, _, host = endpoint_url.partition("://")
        kw.update(endpoint_override=host or scheme, scheme=scheme if host else "https")
    s3 = fs.S3FileSystem(**kw)
    keys = pa.schema([("source", pa.string()), ("date", pa.string()), ("hour", pa.string())])
    hive = ds.partitioning(keys, flavor="hive")
    selector = fs.FileSelector(f"{bucket}/{prefix}".rstrip("/"), recursive=True, allow_not_found=True)
    files = [
        f.path
        for f in s3.get_file_info(selector)
        if f.path.endswith(".parquet") and "/source=" in f.path and "/_logtide/" not in f.path
    ]
    if not files:
        return None
    return ds.dataset(
        files,
        schema=pa.unify_schemas([SCHEMA, keys]),
        filesystem=s3,
        format="parquet",
        partitioning=hive,
        partition_base_dir=f"{bucket}/{prefix}".rstrip("/"),
    )


def connect(root: str, *, endpoint_url: str | None = None, region: str = "us-east-1") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the ``events`` and ``events_all`` views over ``root`` (a dir or s3://)."""
    con = duckdb.connect()
    if root.startswith("s3://"):
        dataset = _s3_dataset(root, endpoint_url, region)
        if dataset is not None:
            con.register("parquet_dataset", dataset)
            con.execute("CREATE VIEW events_all AS SELECT * REPLACE (CAST(date AS DATE) AS date) FROM parquet_dataset")
        else:
            con.execute(f"CREATE VIEW events_all AS {_empty_select()}")
    elif any(f.endswith(".parquet") for _, _, fs in os.walk(root) for f in fs):
        glob = os.path.join(os.path.abspath(root), "source=*", "date=*", "hour=*", "*.parquet").replace("'", "''")
        con.execute(
            f"CREATE VIEW events_all AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true, "
            f"union_by_name = true)"
        )
    else:
        con.execute(f"CREATE VIEW events_all AS {_empty_select()}")
    con.execute(
        "CREATE VIEW events AS SELECT * FROM events_all "
        "QUALIFY row_number() OVER (PARTITION BY id ORDER BY ingest_time, time) = 1"
    )
    return con


#: Statement types that only read.
READ_ONLY = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


def one_query(text: str) -> str:
    """``text`` when it is exactly one read-only statement; UsageError otherwise."""
    try:
        statements = duckdb.extract_statements(text)
    except duckdb.Error as exc:
        raise UsageError(f"query failed: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1:
        raise UsageError(f"one SQL statement at a time ({len(statements)} given)")
    if statements[0].type not in READ_ONLY and not text.lstrip().lower().startswith(("describe", "summarize")):
        kind = statements[0].type.name
        raise UsageError(f"read-only: only a query (SELECT, WITH, EXPLAIN, DESCRIBE) runs here, not {kind}")
    return text


def lock_down(con: duckdb.DuckDBPyConnection, root: str) -> None:
    """No file access beyond the dataset, no configuration changes (after the views exist)."""
    if not root.startswith("s3://"):
        con.execute("SET allowed_directories = [?]", [os.path.join(os.path.abspath(root), "")])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def run_query(root: str, text: str, **kw) -> tuple[list[str], list[tuple]]:
    text = one_query(text)
    con = connect(root, **kw)
    try:
        lock_down(con, root)
        cur = con.execute(text)
        cols = [d[0] for d in cur.description] if cur.description else []
        return cols, cur.fetchall() if cols else []
    finally:
        con.close()

"""The analytics sink: events as rows, in Parquet (queried with DuckDB) and/or PostgreSQL."""

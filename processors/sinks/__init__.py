"""Sinks: the consumers of ``logtide.route.<sink>`` that put events where people look at them.

- ``monitoring``: Prometheus counters from logs, Grafana Loki push, optional Elasticsearch ``_bulk``.
- ``audit``: tamper-evident, append-only, hash-chained JSON-lines segments (local or S3 Object Lock).
- ``analytics``: Parquet (Hive-partitioned, queried with DuckDB) and PostgreSQL.

Each sink is one consumer group of its route topic run by ``logtide.consume.BatchLoop`` (see
``service.py``): decode → drop duplicates → write → make durable → return, and only then are the
offsets committed. A destination that is down raises ``Retry``: offsets are held, readiness is false.
"""

# Importing the sink packages registers them (processors.sinks.registry.SINKS), in this order.
from logtide.processors.sinks import monitoring, audit, analytics  # noqa: E402,F401

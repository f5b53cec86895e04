"""The monitoring sink: Prometheus counters from logs, Loki push, optional Elasticsearch ``_bulk``."""

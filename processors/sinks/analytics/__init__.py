"""The analytics sink: events as rows, in Parquet (queried with DuckDB) and/or PostgreSQL."""

from logtide.processors.sinks.config import AnalyticsSettings
from logtide.processors.sinks.registry import SINKS


@SINKS.register("analytics", AnalyticsSettings)
def build(name: str, settings: AnalyticsSettings, transport):
    from logtide.processors.sinks.analytics.sink import AnalyticsSink
    from logtide.processors.sinks.config import group_of

    return AnalyticsSink(settings, group_of(name, settings), transport)

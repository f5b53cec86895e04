"""CloudWatch Logs collector: log groups by name or prefix in several regions → logtide.raw.cloudwatch."""

from logtide.collectors.cloudwatch.config import CloudWatchConfig
from logtide.collectors.registry import COLLECTORS


@COLLECTORS.register("cloudwatch", CloudWatchConfig)
def build(settings: CloudWatchConfig, transport):
    from logtide.collectors.cloudwatch.collector import CloudWatchCollector

    return CloudWatchCollector(settings, transport)

"""Salesforce collector: EventLogFile (hourly and daily), SetupAuditTrail and LoginHistory → logtide.raw.salesforce."""

from logtide.collectors.salesforce.config import SalesforceConfig
from logtide.collectors.registry import COLLECTORS


@COLLECTORS.register("salesforce", SalesforceConfig)
def build(settings: SalesforceConfig, transport):
    from logtide.collectors.salesforce.collector import SalesforceCollector

    return SalesforceCollector(settings, transport)

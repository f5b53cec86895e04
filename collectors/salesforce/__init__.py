"""Salesforce collector: EventLogFile (hourly and daily), SetupAuditTrail and LoginHistory → logtide.raw.salesforce."""

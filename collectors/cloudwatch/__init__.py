"""CloudWatch Logs collector: log groups by name or prefix in several regions → logtide.raw.cloudwatch."""

"""Day-2 operator tools, each a `logtide` subcommand registered through the ``logtide.commands``
entry points: replay (a time window into another topic, resumable), dlq (reasons, samples, replay to
the origin), tap (live filtered view), top (live rates, errors, DLQ rate, lag), lag (Burrow-style
group status) and test (offline unit tests of pipelines and alert rules, in testing/)."""

"""The audit sink: a tamper-evident archive of the events routed to ``logtide.route.audit``.

Layout (local directory, or the same keys under an S3 prefix)::

    <root>/<chain>/seg-00000001.jsonl     segment: a header line, then one record per line
    <root>/<chain>/seg-00000002.jsonl
    <root>/<chain>/manifest.json          HMAC-SHA256-signed list of segments and the chain head

One chain per Kafka partition of the route topic (``<topic>~<partition>``), so a partition's owner
appends in offset order and a new owner after a rebalance or restart resumes from the tail.
``chain.py`` is the format, ``storage.py`` where bytes go, ``writer.py`` the sink, ``verify.py`` and
``search.py`` the readers behind `logtide audit verify|search`.
"""

from logtide.processors.sinks.config import AuditSettings
from logtide.processors.sinks.registry import SINKS


@SINKS.register("audit", AuditSettings)
def build(name: str, settings: AuditSettings, transport):
    from logtide.processors.sinks.audit.writer import AuditSink

    return AuditSink(settings)

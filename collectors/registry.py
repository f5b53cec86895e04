"""The pull collectors, by the name of their config section (each collector package registers itself)."""

from logtide.registry import Registry

#: build(settings, transport) -> the collector (``collectors.work.Collector``)
COLLECTORS = Registry("collector")

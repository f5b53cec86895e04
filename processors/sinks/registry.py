"""The sinks, by the name of their config section (each sink package registers itself)."""

from logtide.registry import Registry

#: build(name, settings, transport) -> the sink (``processors.sinks.service.Sink``)
SINKS = Registry("sink")

"""sample: keep a fixed fraction of events, chosen by a hash of a field (default: the id), so every
replica and every retry keeps the same events; ``when`` limits it to, say, debug logs."""

from __future__ import annotations

import zlib

from pydantic import Field

from logtide.condition import field_getter, parse_field
from logtide.processors.steps.base import StepConfig, register
from logtide.processors.steps.filter import DropCounting


class SampleConfig(StepConfig):
    rate: float = Field(ge=0.0, le=1.0, description="fraction kept, 0..1")
    field: str = Field(default="id", description="field whose hash decides (same value → same decision)")


@register("sample")
class Sample(DropCounting):
    Config = SampleConfig

    def __init__(self, config: SampleConfig, ctx):
        super().__init__(config, ctx)
        self._get = field_getter(parse_field(config.field))
        self._threshold = int(config.rate * 0x1_0000_0000)

    def keeps(self, value) -> bool:
        data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else str(value).encode()
        return zlib.crc32(data) < self._threshold

    def process(self, event: dict) -> dict | None:
        if self.keeps(self._get(event)):
            return event
        self.dropped += 1
        return None

"""ratelimit: at most ``rate`` events per second per key (default: per service), with a ``burst``;
a token bucket per key, at most ``max_keys`` buckets (further keys share one overflow bucket)."""

from __future__ import annotations

import time

from pydantic import Field

from logtide.condition import field_getter, parse_field
from logtide.processors.steps.base import StepConfig, register
from logtide.processors.steps.filter import DropCounting


class RateLimitConfig(StepConfig):
    rate: float = Field(gt=0, description="events per second per key")
    burst: float | None = Field(default=None, gt=0, description="bucket size (default: one second's worth)")
    key: str = Field(default="resource.service.name", description="field that names the bucket")
    max_keys: int = Field(default=10_000, gt=0)


@register("ratelimit")
class RateLimit(DropCounting):
    Config = RateLimitConfig

    def __init__(self, config: RateLimitConfig, ctx, clock=time.monotonic):
        super().__init__(config, ctx)
        self._get = field_getter(parse_field(config.key))
        self.rate = config.rate
        self.burst = config.burst or max(1.0, config.rate)
        self.max_keys = config.max_keys
        self.clock = clock
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, last refill]

    def process(self, event: dict) -> dict | None:
        key = self._get(event)
        key = key if isinstance(key, str) else str(key)
        bucket = self._buckets.get(key)
        now = self.clock()
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                key = "__overflow__"
                bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = [self.burst, now]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return event
        bucket[0] = tokens
        self.dropped += 1
        return None

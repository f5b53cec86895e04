"""Per-container token bucket against log storms; the caller counts what it refuses."""

from __future__ import annotations

import time


class TokenBucket:
    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: int):
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def allow(self, now: float) -> bool:
        tokens = self.tokens
        if tokens < 1.0:
            tokens = min(self.burst, tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if tokens < 1.0:
                self.tokens = tokens
                return False
        elif tokens < self.burst:
            tokens = min(self.burst, tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        else:
            self.stamp = now
        self.tokens = tokens - 1.0
        return True

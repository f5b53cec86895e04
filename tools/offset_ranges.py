"""A set of offsets kept as sorted, merged, inclusive ranges: small however many offsets it holds
when they are mostly contiguous (DLQ offsets replayed, ``--offsets 10-20,35``)."""

from __future__ import annotations

from bisect import bisect_right


class OffsetRanges:
    __slots__ = ("starts", "ends")

    def __init__(self, ranges: list[list[int]] | None = None):
        self.starts: list[int] = []
        self.ends: list[int] = []
        for a, b in sorted(ranges or ()):
            self.add_range(a, b)

    @classmethod
    def parse(cls, spec: str) -> OffsetRanges:
        """``3,7,10-20`` (inclusive); raises ValueError on anything else."""
        out = cls()
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            a, sep, b = part.partition("-")
            lo, hi = int(a), int(b) if sep else int(a)
            if lo < 0 or hi < lo:
                raise ValueError(f"bad range {part!r}")
            out.add_range(lo, hi)
        return out

    def __contains__(self, offset: int) -> bool:
        i = bisect_right(self.starts, offset) - 1
        return i >= 0 and offset <= self.ends[i]

    def __len__(self) -> int:
        return sum(b - a + 1 for a, b in zip(self.starts, self.ends))

    def add(self, offset: int) -> None:
        self.add_range(offset, offset)

    def add_range(self, lo: int, hi: int) -> None:
        i = bisect_right(self.starts, lo) - 1
        # merge with the range before when it touches, then swallow every following one that touches
        if i >= 0 and self.ends[i] >= lo - 1:
            lo = self.starts[i]
            hi = max(hi, self.ends[i])
            del self.starts[i], self.ends[i]
        else:
            i += 1
        while i < len(self.starts) and self.starts[i] <= hi + 1:
            hi = max(hi, self.ends[i])
            del self.starts[i], self.ends[i]
        self.starts.insert(i, lo)
        self.ends.insert(i, hi)

    def to_list(self) -> list[list[int]]:
        return [[a, b] for a, b in zip(self.starts, self.ends)]

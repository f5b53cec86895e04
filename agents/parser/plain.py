"""Plain log files (files mode, or a container file that is neither CRI nor docker): each line an event."""

from __future__ import annotations

from logtide.agents.parser import Fragment


class PlainParser:
    name = "plain"

    def parse(self, line: bytes) -> Fragment:
        if line.endswith(b"\r"):
            line = line[:-1]
        return Fragment(None, "stdout", False, line, None)

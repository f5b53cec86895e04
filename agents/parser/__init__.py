"""Line parsers of container log files: CRI (containerd, CRI-O), docker json-file, plain lines.

Each parser turns one raw line (bytes, without its newline) into a ``Fragment`` tuple:
``(time_ns | None, stream, partial, message, problem)`` where ``partial`` says the runtime split
the line and more pieces follow, and ``problem`` names bad input that was still turned into an
event ("bad_timestamp", "bad_format") or is None.
"""

from typing import NamedTuple


class Fragment(NamedTuple):
    time: int | None
    stream: str
    partial: bool
    message: bytes | str
    problem: str | None

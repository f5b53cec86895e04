"""Line parsers of container log files: CRI (containerd, CRI-O), docker json-file, plain lines.

Each parser turns one raw line (bytes, without its newline) into a ``Fragment`` tuple:
``(time_ns | None, stream, partial, message, problem)`` where ``partial`` says the runtime split
the line and more pieces follow, and ``problem`` names bad input that was still turned into an
event ("bad_timestamp", "bad_format") or is None. Parsers never raise, whatever the bytes.

The agent's line pipeline, per file, in this order (agents/agent.py ``process``/``piece``; a native
line path must give the same records byte for byte):

1. the file's format is picked once, from its place and first line (parser/picker.py), unless a
   ``sources`` entry or the pod's ``logtide.io/parser`` annotation names it;
2. a line longer than ``read.max_line_bytes`` keeps its head, flagged truncated;
3. a line not in the file's format (``bad_format``) ends every partial line and multi-line record in
   progress in the file (sent as they are, partial ones flagged unfinished), then is sent alone: the
   raw line as UTF-8 text (invalid bytes replaced), stream stdout, no time, ``logtide.parse_error``;
4. pieces (CRI ``P``, docker 16 KiB pieces) are joined per stream as bytes until the final piece
   (partial_merger.py), so a UTF-8 character split between pieces survives; the record keeps the
   first piece's time and start offset;
5. the line is decoded as UTF-8 (invalid bytes replaced, counted);
6. multi-line merging per stream (multiline.py); 7. the record is sent, its id from the file's
   identity and the record's first byte offset.
"""

from typing import NamedTuple


class Fragment(NamedTuple):
    time: int | None
    stream: str
    partial: bool
    message: bytes | str
    problem: str | None

"""Which code does the agent's per-line work: the native line path (the C extension
``logtide.agents._lines``, agents/_lines.c, built at install by the machine's C compiler) or the pure
Python one. Both give the same records byte for byte (tests/agents/test_line_path.py).

``LOGTIDE_AGENT_NATIVE``: ``0`` the pure-Python path; ``1`` the native one, an error when it is not
built; unset (or ``auto``): native when built, else Python.

The native path takes, per read chunk, the lines of CRI, docker json-file (docker's exact shape) and
plain files that are complete, well-formed and valid UTF-8 (``frame``: framing, timestamp, UTF-8 in
one call for the chunk), and builds the id and envelope JSON of one-line events (``record``). Every
other line (bad input, pieces, invalid UTF-8, too long, docker lines with ``attrs``) takes the Python
parsers.
"""

from __future__ import annotations

import os

ENV = "LOGTIDE_AGENT_NATIVE"


def _load():
    want = os.environ.get(ENV, "auto").strip().lower()
    if want in ("0", "false", "no", "off"):
        return None
    try:
        from logtide.agents import _lines
    except ImportError as exc:
        if want in ("1", "true", "yes", "on"):
            raise ImportError(
                f"{ENV}={want} but the agent's C extension logtide.agents._lines is not built "
                f"(pip install needs gcc and the Python headers): {exc}"
            ) from None
        return None
    return _lines


#: the extension module, or None for the pure-Python path
NATIVE = _load()
#: the formats whose lines the native ``frame`` takes, and its code for each
NATIVE_FORMATS = {"plain": 0, "cri": 1, "docker": 2}


def frame_lines(parse, lines: list[bytes], limit: int):
    """The pure-Python ``frame``, lazily (a line is parsed when the agent comes to it, so the lines
    before one that breaks the parser are sent): per line ``(time_ns, stream, text)`` when it is a
    complete, well-formed line of at most ``limit`` bytes whose message is valid UTF-8, else None (the
    caller gives it to ``Agent.piece``, which handles every case)."""
    for data in lines:
        if len(data) > limit:
            yield None
            continue
        time_ns, stream, partial, message, problem = parse(data)
        if partial or problem is not None:
            yield None
            continue
        if type(message) is bytes:
            try:
                message = message.decode()
            except UnicodeDecodeError:
                yield None
                continue
        yield time_ns, stream, message


def frame(parser, lines: list[bytes], limit: int):
    """``frame_lines`` for a file's parser, natively when the native path is on and takes its format."""
    kind = NATIVE_FORMATS.get(parser.name) if NATIVE is not None else None
    if kind is None:
        return frame_lines(parser.parse, lines, limit)
    return NATIVE.frame(kind, lines, limit)

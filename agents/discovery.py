"""Find the files to tail: include globs minus exclude globs, one entry per inode.

``**`` is recursive as Filebeat and Vector document it: a whole path component ``**`` matches zero or
more directories (``/var/log/pods/**/*.log`` finds ``pods/<ns>_<pod>_<uid>/<container>/0.log``), in
include and exclude globs alike. Exclude globs match the full path (found or real), ``*`` included
across ``/`` as before. An include glob that matches no file is logged, counted in
``logtide_agent_include_globs_unmatched``, and repeated once per ``read.unmatched_warning_seconds``.

In kubernetes mode the same file shows up twice (the real file under /var/log/pods and its symlink
under /var/log/containers); entries are keyed by (device, inode) of the real file so it is read once.
A file that disappears between listing and stat is counted and skipped.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import time
from typing import NamedTuple

from logtide import log
from logtide.agents import metrics

_log = log.get("agents.discovery")


def exclude_regex(pattern: str) -> re.Pattern:
    """An exclude glob as a regex: fnmatch's (``*`` crosses ``/``), and ``**/`` also matches no directory."""
    parts = []
    for i, piece in enumerate(pattern.split("**/")):
        if i:
            parts.append("(?:.*/)?")
        body = fnmatch.translate(piece)  # '(?s:...)\\Z'
        parts.append(body[4:-3])
    return re.compile("(?s:" + "".join(parts) + r")\Z")


class Found(NamedTuple):
    path: str  # the path it was found at (first include glob wins)
    real_path: str  # symlinks resolved
    dev: int
    ino: int
    size: int
    mtime: float


class Discovery:
    def __init__(self, include: list[str], exclude: list[str], unmatched_warning_seconds: float = 60.0):
        self.include = include
        self.exclude = exclude
        self._exclude = [exclude_regex(p) for p in exclude]
        self.unmatched_warning_seconds = unmatched_warning_seconds
        self.unmatched: list[str] = []
        self._warned_at: float | None = None

    def excluded(self, path: str, real_path: str) -> bool:
        return any(r.match(path) or r.match(real_path) for r in self._exclude)

    def scan(self) -> dict[tuple[int, int], Found]:
        found: dict[tuple[int, int], Found] = {}
        unmatched = []
        for pattern in self.include:
            matched = False
            for path in sorted(glob.glob(pattern, recursive=True)):
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    metrics.BAD_INPUT.labels("file_vanished").inc()
                    continue
                except OSError:
                    metrics.BAD_INPUT.labels("file_unreadable").inc()
                    continue
                if not _is_regular(st.st_mode):
                    continue
                matched = True
                key = (st.st_dev, st.st_ino)
                if key in found:
                    continue
                real = os.path.realpath(path) if os.path.islink(path) else path
                if self.excluded(path, real):
                    continue
                found[key] = Found(path, real, st.st_dev, st.st_ino, st.st_size, st.st_mtime)
            if not matched:
                unmatched.append(pattern)
        self._report_unmatched(unmatched)
        return found

    def _report_unmatched(self, unmatched: list[str]) -> None:
        metrics.GLOBS_UNMATCHED.set(len(unmatched))
        now = time.monotonic()
        if not unmatched:
            self._warned_at = None
        elif (
            unmatched != self.unmatched
            or self._warned_at is None
            or now - self._warned_at >= self.unmatched_warning_seconds
        ):
            self._warned_at = now
            _log.warning(
                "include glob matches no file (yet); nothing is tailed from it",
                extra={
                    "globs": unmatched,
                    "hint": "'**' matches any number of directories; check the path and that the agent can read it",
                },
            )
        self.unmatched = unmatched


def _is_regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)

"""Find the files to tail: include globs minus exclude globs, one entry per inode.

In kubernetes mode the same file shows up twice (the real file under /var/log/pods and its symlink
under /var/log/containers); entries are keyed by (device, inode) of the real file so it is read once.
A file that disappears between listing and stat is counted and skipped.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from typing import NamedTuple

from logtide.agents import metrics


class Found(NamedTuple):
    path: str          # the path it was found at (first include glob wins)
    real_path: str     # symlinks resolved
    dev: int
    ino: int
    size: int
    mtime: float


class Discovery:
    def __init__(self, include: list[str], exclude: list[str]):
        self.include = include
        self.exclude = exclude

    def excluded(self, path: str, real_path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, pat) or fnmatch.fnmatchcase(real_path, pat) for pat in self.exclude)

    def scan(self) -> dict[tuple[int, int], Found]:
        found: dict[tuple[int, int], Found] = {}
        for pattern in self.include:
            for path in sorted(glob.glob(pattern)):
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
                key = (st.st_dev, st.st_ino)
                if key in found:
                    continue
                real = os.path.realpath(path) if os.path.islink(path) else path
                if self.excluded(path, real):
                    continue
                found[key] = Found(path, real, st.st_dev, st.st_ino, st.st_size, st.st_mtime)
        return found


def _is_regular(mode: int) -> bool:
    import stat
    return stat.S_ISREG(mode)

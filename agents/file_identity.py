"""Which file is this? Device + inode plus a fingerprint of its first bytes.

The inode alone is not enough: a deleted file's inode is reused by the next file created, and a
checkpoint keyed only by inode would make the agent skip the new file's first bytes. The
fingerprint (BLAKE2b of the first ``fingerprint_bytes``) tells the two apart. ``generation`` grows
when a file is truncated in place (copytruncate), so event ids stay unique across generations.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass


def fingerprint(fd: int, length: int) -> tuple[str, int]:
    """Hash of the first ``length`` bytes (fewer if the file is shorter) and how many were hashed."""
    head = os.pread(fd, length, 0)
    return hashlib.blake2b(head, digest_size=8).hexdigest(), len(head)


@dataclass
class FileIdentity:
    dev: int
    ino: int
    fp: str
    fp_len: int
    generation: int = 0

    @property
    def inode_key(self) -> str:
        """The checkpoint key: one entry per inode (a reused inode replaces its stale entry)."""
        return f"{self.dev}:{self.ino}"

    @property
    def name(self) -> str:
        """Stable name of this file (and generation): the first part of every event id from it."""
        return f"{self.dev}:{self.ino}:{self.fp}:{self.generation}"

    def matches(self, fd: int) -> bool:
        """Does the open file still start with the bytes this identity was made from?"""
        if self.fp_len == 0:
            return True
        return fingerprint(fd, self.fp_len) == (self.fp, self.fp_len)

    def to_dict(self) -> dict:
        return {"dev": self.dev, "ino": self.ino, "fp": self.fp, "fp_len": self.fp_len, "gen": self.generation}

    @classmethod
    def from_dict(cls, d: dict) -> FileIdentity:
        return cls(d["dev"], d["ino"], d["fp"], d["fp_len"], d.get("gen", 0))

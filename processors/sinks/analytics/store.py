"""Files of the Parquet dataset: whole-object puts that are atomic and durable.

Local: temp file + fsync + rename + fsync of the directory (a reader never sees half a file).
The interface is small on purpose (put, get, list, delete) so an object store fits behind it.
"""

from __future__ import annotations

import os
from pathlib import Path


class LocalStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, rel: str) -> Path:
        return self.root / rel

    def put(self, rel: str, data: bytes) -> None:
        final = self.root / rel
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.partial")  # not *.parquet: globs never pick it up
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def get(self, rel: str) -> bytes | None:
        try:
            return (self.root / rel).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, rel: str) -> None:
        for p in (self.root / rel, (self.root / rel).with_name(f".{Path(rel).name}.partial")):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass

    def list(self, rel_dir: str = "", suffix: str = "") -> list[str]:
        """Relative paths of files under ``rel_dir`` (recursive) ending with ``suffix``."""
        base = self.root / rel_dir
        out = []
        for dirpath, _, files in os.walk(base):
            for f in files:
                if f.endswith(suffix) and not f.startswith("."):
                    out.append(os.path.relpath(os.path.join(dirpath, f), self.root))
        return sorted(out)

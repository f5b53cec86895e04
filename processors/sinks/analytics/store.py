"""Files of the Parquet dataset: whole-object puts that are atomic and durable.

Local: temp file + fsync + rename + fsync of the directory (a reader never sees half a file).
S3: one PUT per file (atomic and durable when it returns). The interface is small on purpose
(put, get, list, delete) so both fit behind it.
"""

from __future__ import annotations

import os
from pathlib import Path

from logtide.processors.sinks import s3


class LocalStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, rel: str) -> Path:
        return self.root / rel

    def put(self, rel: str, data: bytes, durable: bool = True) -> None:
        """Atomic always; ``durable`` also survives a power cut when this returns (fsync file and dir).

        Bookkeeping (markers, recorded offsets) passes durable=False: losing it to a power cut can
        only cause a rewrite (a duplicate the query view hides), never a loss; a kill -9 loses nothing.
        """
        final = self.root / rel
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.partial")  # not *.parquet: globs never pick it up
        with open(tmp, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, final)
        if durable:
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

    def dirs(self, rel_dir: str = "") -> list[str]:
        """Names of the directories directly under ``rel_dir``."""
        base = self.root / rel_dir
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def list(self, rel_dir: str = "", suffix: str = "") -> list[str]:
        """Relative paths of files under ``rel_dir`` (recursive) ending with ``suffix``."""
        base = self.root / rel_dir
        out = []
        for dirpath, _, files in os.walk(base):
            for f in files:
                if f.endswith(suffix) and not f.startswith("."):
                    out.append(os.path.relpath(os.path.join(dirpath, f), self.root))
        return sorted(out)


class S3Store:
    def __init__(self, location):
        self.bucket = location.bucket
        self.prefix = location.prefix.strip("/")
        self.client = s3.client(
            region=location.region, endpoint_url=location.endpoint_url, connect_timeout=location.connect_timeout_seconds
        )

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def put(self, rel: str, data: bytes, durable: bool = True) -> None:
        s3.call(self.client.put_object, Bucket=self.bucket, Key=self._key(rel), Body=data)

    def get(self, rel: str) -> bytes | None:
        resp = s3.call(self.client.get_object, Bucket=self.bucket, Key=self._key(rel))
        return None if resp is None else resp["Body"].read()

    def delete(self, rel: str) -> None:
        s3.call(self.client.delete_object, Bucket=self.bucket, Key=self._key(rel))

    def dirs(self, rel_dir: str = "") -> list[str]:
        base = self._key(rel_dir.strip("/")) if rel_dir else self.prefix
        base = base + "/" if base else ""
        return sorted(
            p["Prefix"][len(base) :].rstrip("/")
            for page in s3.list_pages(self.client, self.bucket, base, "/")
            for p in page.get("CommonPrefixes", [])
        )

    def list(self, rel_dir: str = "", suffix: str = "") -> list[str]:
        base = self._key(rel_dir.strip("/")) if rel_dir else self.prefix
        base = base + "/" if base else ""
        cut = len(self.prefix) + 1 if self.prefix else 0
        return sorted(
            o["Key"][cut:]
            for page in s3.list_pages(self.client, self.bucket, base)
            for o in page.get("Contents", [])
            if o["Key"].endswith(suffix)
        )


def open_store(settings):
    return S3Store(settings.s3) if settings.s3 is not None else LocalStore(settings.path)

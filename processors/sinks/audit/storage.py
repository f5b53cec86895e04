"""Where audit bytes live: a local directory (append + fsync, atomic replace) or S3 with Object Lock.

Both answer the same reading interface (``chains``, ``files``, ``read``) so `verify` and `search`
work on either; the writer appends to a local directory (the archive itself, or the staging area of
an S3 archive) and uploads closed segments to S3 as write-once objects.
"""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import datetime, timedelta, UTC
from pathlib import Path

from logtide.processors.sinks import s3
from logtide.processors.sinks.audit.chain import MANIFEST, segment_number
from logtide.processors.sinks.s3 import StorageError

__all__ = ["LocalArchive", "S3Archive", "StorageError", "open_archive"]


class LocalArchive:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def location(self, chain: str, name: str = "") -> str:
        return str(self.root / chain / name) if name else str(self.root / chain)

    # --- reading (shared with S3Archive) ---
    def chains(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and ((p / MANIFEST).exists() or any(segment_number(f) for f in os.listdir(p)))
        )

    def files(self, chain: str) -> list[str]:
        d = self.root / chain
        return sorted(os.listdir(d)) if d.is_dir() else []

    def read(self, chain: str, name: str) -> bytes | None:
        try:
            return (self.root / chain / name).read_bytes()
        except FileNotFoundError:
            return None

    # --- writing ---
    def append(self, chain: str, name: str, data: bytes) -> int:
        """Append and fsync; return the file size after."""
        d = self.root / chain
        new = not (d / name).exists()
        d.mkdir(parents=True, exist_ok=True)
        fd = os.open(d / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, data)
            os.fsync(fd)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if new:
            _fsync_dir(d)
        return size

    def replace(self, chain: str, name: str, data: bytes) -> None:
        """Write a whole file atomically (temp + fsync + rename + fsync of the directory)."""
        d = self.root / chain
        tmp = _write_synced(d, f".{name}.tmp", data)
        os.replace(tmp, d / name)
        _fsync_dir(d)

    def create(self, chain: str, name: str, data: bytes) -> bool:
        """Write a new file atomically and durably; False (and nothing written) when it exists already."""
        d = self.root / chain
        tmp = _write_synced(d, f".{name}.{os.getpid()}.tmp", data)
        try:
            os.link(tmp, d / name)  # fails if the name is taken: exclusive, unlike rename
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        _fsync_dir(d)
        return True

    def truncate(self, chain: str, name: str, size: int) -> None:
        with open(self.root / chain / name, "r+b") as f:
            f.truncate(size)
            os.fsync(f.fileno())

    def seal(self, chain: str, name: str) -> None:
        """A closed segment becomes read-only (a hint; the chain and manifest are the protection)."""
        os.chmod(self.root / chain / name, 0o440)

    def unseal(self, chain: str, name: str) -> None:
        os.chmod(self.root / chain / name, 0o640)

    def remove(self, chain: str, name: str) -> None:
        try:
            os.unlink(self.root / chain / name)
        except FileNotFoundError:
            pass


def _write_synced(d: Path, name: str, data: bytes) -> Path:
    """``data`` in ``d/name`` (a temporary name), fsync'd; the caller puts it in place."""
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / name
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3Archive:
    """Segments and manifests as S3 objects under ``prefix/<chain>/``; every put carries Object Lock."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        lock_mode: str | None = None,
        lock_days: int = 0,
        connect_timeout: float = 5.0,
    ):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.lock_mode = lock_mode
        self.lock_days = lock_days
        self.client = s3.client(region=region, endpoint_url=endpoint_url, connect_timeout=connect_timeout)

    @classmethod
    def from_settings(cls, s) -> S3Archive:
        lock = s.object_lock
        return cls(
            s.bucket,
            s.prefix,
            region=s.region,
            endpoint_url=s.endpoint_url,
            lock_mode=lock.mode if lock else None,
            lock_days=lock.days if lock else 0,
            connect_timeout=s.connect_timeout_seconds,
        )

    def _key(self, chain: str, name: str = "") -> str:
        return "/".join(p for p in (self.prefix, chain, name) if p)

    def location(self, chain: str, name: str = "") -> str:
        return f"s3://{self.bucket}/{self._key(chain, name)}"

    def chains(self) -> list[str]:
        base = self.prefix + "/" if self.prefix else ""
        names = (
            p["Prefix"][len(base) :].rstrip("/")
            for page in s3.list_pages(self.client, self.bucket, base, "/")
            for p in page.get("CommonPrefixes", [])
        )
        return sorted(n for n in names if not n.startswith("_"))  # _index/ is not a chain

    def files(self, chain: str) -> list[str]:
        base = self._key(chain) + "/"
        return sorted(
            o["Key"][len(base) :]
            for page in s3.list_pages(self.client, self.bucket, base)
            for o in page.get("Contents", [])
        )

    def read(self, chain: str, name: str) -> bytes | None:
        resp = s3.call(self.client.get_object, Bucket=self.bucket, Key=self._key(chain, name))
        return None if resp is None else resp["Body"].read()

    def create(self, chain: str, name: str, data: bytes) -> bool:
        """Put a new object; False when the key exists already (a conditional write: If-None-Match)."""
        try:
            self.put(chain, name, data, if_none_match=True)
        except StorageError as exc:
            if "PreconditionFailed" in str(exc):
                return False
            raise
        return True

    def put(self, chain: str, name: str, data: bytes, *, if_none_match: bool = False) -> None:
        kw = {
            "Bucket": self.bucket,
            "Key": self._key(chain, name),
            "Body": data,
            # Object Lock puts must carry an integrity checksum.
            "ContentMD5": base64.b64encode(hashlib.md5(data).digest()).decode(),
        }  # noqa: S324 - S3 wants MD5
        if if_none_match:
            kw["IfNoneMatch"] = "*"
        if self.lock_mode:
            kw["ObjectLockMode"] = self.lock_mode
            kw["ObjectLockRetainUntilDate"] = datetime.now(UTC) + timedelta(days=self.lock_days)
        s3.call(self.client.put_object, **kw)


def open_archive(location: str, *, endpoint_url: str | None = None, region: str = "us-east-1"):
    """A reader for ``PATH`` or ``s3://bucket/prefix``."""
    if location.startswith("s3://"):
        bucket, prefix = s3.split_url(location)
        return S3Archive(bucket, prefix, region=region, endpoint_url=endpoint_url)
    if not os.path.isdir(location):
        raise StorageError(f"{location}: no such directory")
    return LocalArchive(location)

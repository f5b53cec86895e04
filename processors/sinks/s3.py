"""The S3 client the sinks share (audit archive, Parquet dataset): short client-side retries, errors
mapped to ``StorageError`` so a sink can turn an outage into ``Retry`` (its own, longer backoff)."""

from __future__ import annotations

from collections.abc import Iterator


class StorageError(Exception):
    """Storage could not be read or written (unreachable S3, denied, ...)."""


def client(*, region: str = "us-east-1", endpoint_url: str | None = None, connect_timeout: float = 5.0):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        region_name=region,
        endpoint_url=endpoint_url,
        config=Config(
            connect_timeout=connect_timeout, read_timeout=30, retries={"max_attempts": 2, "mode": "standard"}
        ),
    )


def call(fn, **kwargs):
    """Run one S3 call; None for a missing key, StorageError for anything else that went wrong."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(**kwargs)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        where = f"s3://{kwargs.get('Bucket', '')}/{kwargs.get('Key') or kwargs.get('Prefix', '')}"
        raise StorageError(f"S3 {fn.__name__} {where}: {exc}") from None
    except BotoCoreError as exc:
        raise StorageError(f"S3 unreachable ({exc})") from None


def list_pages(s3, bucket: str, prefix: str, delimiter: str | None = None) -> Iterator[dict]:
    token = None
    while True:
        kw = {"Bucket": bucket, "Prefix": prefix}
        if delimiter:
            kw["Delimiter"] = delimiter
        if token:
            kw["ContinuationToken"] = token
        resp = call(s3.list_objects_v2, **kw) or {}
        yield resp
        token = resp.get("NextContinuationToken")
        if not token:
            return


def split_url(url: str) -> tuple[str, str]:
    """("bucket", "prefix") of ``s3://bucket/prefix``."""
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise StorageError(f"no bucket in {url!r}: use s3://bucket/prefix")
    return bucket, prefix.strip("/")

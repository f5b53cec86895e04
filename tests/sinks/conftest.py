"""Fixtures of the sink tests: a private PostgreSQL cluster, moto's S3 server, a Loki push double."""

from __future__ import annotations

import gzip
import os
import threading

import orjson
import pytest

from logtide.broker import free_port
from sinks_helpers import PostServer, start_postgres


@pytest.fixture(scope="session")
def postgres_dsn():
    """A throw-away PostgreSQL cluster on a free loopback port (run as the postgres user under root)."""
    try:
        dsn, stop = start_postgres(fsync=False)
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    try:
        yield dsn
    finally:
        stop()


@pytest.fixture(scope="session")
def aws_env():
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(k, v)


@pytest.fixture(scope="session")
def s3_server(aws_env):
    """moto's standalone server over HTTP; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def locked_bucket(s3_server):
    """A fresh bucket with Object Lock enabled; yields its name."""
    import uuid

    import boto3

    name = f"audit-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(
        Bucket=name, ObjectLockEnabledForBucket=True
    )
    return name


class LokiDouble:
    """A Loki push endpoint that checks the wire format and keeps what it accepted.

    Like Loki it drops an entry identical (stream, timestamp, line) to one it already has. ``fail``
    makes the next N pushes answer 503.
    """

    def __init__(self):
        self.entries: dict[tuple, None] = {}
        self.pushes = 0
        self.errors: list[str] = []
        self.fail = 0
        self.lock = threading.Lock()
        self.server = PostServer(self.accept)
        self.url = self.server.url

    def accept(self, path, headers, body) -> tuple[int, bytes]:
        with self.lock:
            if self.fail > 0:
                self.fail -= 1
                return 503, b"overloaded"
            problems = []
            if path != "/loki/api/v1/push":
                problems.append(f"path {path}")
            if headers.get("Content-Type") != "application/json":
                problems.append(f"content-type {headers.get('Content-Type')}")
            if headers.get("Content-Encoding") != "gzip":
                problems.append("not gzip")
            try:
                doc = orjson.loads(gzip.decompress(body))
            except Exception as exc:  # noqa: BLE001
                self.errors.append(f"undecodable body: {exc}")
                return 400, b"bad body"
            for s in doc.get("streams", []):
                labels = s.get("stream")
                if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
                    problems.append("stream labels must be a map of strings")
                    continue
                last = 0
                for v in s.get("values", []):
                    if not (
                        isinstance(v, list)
                        and len(v) == 2
                        and isinstance(v[0], str)
                        and v[0].isdigit()
                        and isinstance(v[1], str)
                    ):
                        problems.append(f"bad value {v!r:.80}")
                        continue
                    if int(v[0]) < last:
                        problems.append("entries out of order within a stream")
                    last = int(v[0])
                    self.entries[(tuple(sorted(labels.items())), v[0], v[1])] = None
            if problems:
                self.errors.extend(problems)
                return 400, "; ".join(problems).encode()
            self.pushes += 1
            return 204, b""

    def stop(self):
        self.server.stop()


@pytest.fixture
def loki():
    d = LokiDouble()
    yield d
    d.stop()

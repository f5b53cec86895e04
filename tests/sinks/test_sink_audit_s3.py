"""Audit archive on S3 (moto's server over HTTP): Object Lock on every object, verify s3://, outages."""

from __future__ import annotations

import os
import subprocess

import boto3
import pytest

from logtide.consume import Retry
from logtide.transport import Record
from logtide.processors.sinks.audit.storage import S3Archive
from logtide.processors.sinks.audit.verify import verify_archive
from logtide.processors.sinks.audit.writer import AuditSink
from logtide.processors.sinks.config import AuditSettings
from logtide.processors.sinks.service import Item
from sinks_helpers import LOGTIDE, make_event

KEY = "s3-audit-key"


def items(a, b):
    return [
        Item(Record("logtide.route.audit", 0, i, None, None, [], None), make_event(i, run="s3")) for i in range(a, b)
    ]


def settings(staging, bucket, endpoint, **kw):
    return AuditSettings(
        storage={
            "path": str(staging),
            "s3": {
                "bucket": bucket,
                "prefix": "arch",
                "endpoint_url": endpoint,
                "object_lock": {"mode": "GOVERNANCE", "days": 1},
                "connect_timeout_seconds": 1,
            },
        },
        hmac_key=KEY,
        roll_bytes=2048,
        **kw,
    )


@pytest.mark.timeout(60)
def test_segments_go_to_s3_locked_and_verify(tmp_path, s3_server, locked_bucket):
    sink = AuditSink(settings(tmp_path / "staging", locked_bucket, s3_server))
    for a in range(0, 60, 10):
        sink.write(items(a, a + 10))
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=locked_bucket, Prefix="arch/")["Contents"]]
    segs = [k for k in keys if "/seg-" in k]
    assert len(segs) >= 2 and "arch/logtide.route.audit~0/manifest.json" in keys
    head = s3.head_object(Bucket=locked_bucket, Key=segs[0])
    assert head["ObjectLockMode"] == "GOVERNANCE" and head["ObjectLockRetainUntilDate"]
    # Locked: the stored version cannot be deleted or replaced in place.
    version = s3.list_object_versions(Bucket=locked_bucket, Prefix=segs[0])["Versions"][0]["VersionId"]
    with pytest.raises(s3.exceptions.ClientError) as denied:
        s3.delete_object(Bucket=locked_bucket, Key=segs[0], VersionId=version)
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    # Uploaded segments leave the staging dir (only an open one may stay there).
    staged = {f for f in os.listdir(tmp_path / "staging" / "logtide.route.audit~0") if f.startswith("seg-")}
    assert not staged & {k.rsplit("/", 1)[1] for k in segs}
    reports = verify_archive(S3Archive(locked_bucket, "arch", endpoint_url=s3_server), KEY.encode())
    assert reports[0].ok, reports[0].problems
    uploaded = reports[0].records
    assert 0 < uploaded <= 60
    cli = subprocess.run(
        [*LOGTIDE, "audit", "verify", f"s3://{locked_bucket}/arch", "--endpoint-url", s3_server],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LOGTIDE_AUDIT_KEY": KEY},
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    # A fresh pod without its staging dir resumes the chain from S3's manifest.
    fresh = AuditSink(settings(tmp_path / "new-staging", locked_bucket, s3_server))
    fresh.write(items(uploaded - 5, uploaded + 40))  # overlaps what S3 already holds
    reports = verify_archive(S3Archive(locked_bucket, "arch", endpoint_url=s3_server), KEY.encode())
    assert reports[0].ok, reports[0].problems
    # the archive index lives in S3 too, continued by the fresh pod (not restarted at 1 in its staging)
    from logtide.processors.sinks.audit.verify import verify_archive_index

    index = verify_archive_index(S3Archive(locked_bucket, "arch", endpoint_url=s3_server), KEY.encode())
    assert index.ok and index.segments == 2, (index.problems, index.warnings)


@pytest.mark.timeout(60)
def test_unreachable_s3_holds_the_batch_then_recovers(tmp_path, aws_env):
    from moto.server import ThreadedMotoServer

    from logtide.broker import free_port

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    sink = AuditSink(settings(tmp_path, "later-bucket", endpoint))
    with pytest.raises(Retry):
        sink.write(items(0, 10))
    assert not sink.ready()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket="later-bucket", ObjectLockEnabledForBucket=True
        )
        for a in range(0, 60, 10):
            sink.write(items(a, a + 10))
        assert sink.ready()
        reports = verify_archive(S3Archive("later-bucket", "arch", endpoint_url=endpoint), KEY.encode())
        assert reports[0].ok and reports[0].records > 0
    finally:
        server.stop()


@pytest.mark.timeout(60)
def test_an_idle_chain_rolls_on_time_and_reaches_s3(tmp_path, s3_server, locked_bucket):
    sink = AuditSink(
        settings(tmp_path, locked_bucket, s3_server, roll_seconds=0.2).model_copy(update={"roll_bytes": 10**6})
    )
    sink.write(items(0, 5))  # small: stays in the open segment, in staging
    archive = S3Archive(locked_bucket, "arch", endpoint_url=s3_server)
    assert not [f for f in archive.files("logtide.route.audit~0") if f.startswith("seg-")]
    import time

    time.sleep(0.3)
    sink.tick()  # no new events: the timer rolls the segment and uploads it
    reports = verify_archive(archive, KEY.encode())
    assert reports[0].ok and reports[0].records == 5

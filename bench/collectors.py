"""Collector throughput against the test servers (report only): CloudWatch Logs through moto's
standalone server and Salesforce EventLogFile through the HTTPS server double, into the embedded
broker. Each is compared with the bare source read in the same run (boto3 paging alone; streamed
download + csv.reader alone), so the ratio says what shipping with acks and checkpoints costs.

Messages are real log lines from the Loghub corpus. One sweep of one work item, end to end: read,
dedup, build envelopes, produce, wait for every ack, checkpoint.

    python bench/collectors.py                # 40k CloudWatch events, 40k Salesforce rows
    python bench/collectors.py --scale 0.25   # a quick run
"""

from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import logging
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "collectors"))

import boto3  # noqa: E402
import requests  # noqa: E402

from logtide.broker import given_or_embedded  # noqa: E402
from logtide.transport import KafkaSettings, TopicSpec, connect  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "loghub"


def corpus_lines() -> list[str]:
    lines: list[str] = []
    for path in sorted(glob.glob(str(CORPUS / "*.log"))):
        with open(path, errors="replace") as f:
            lines.extend(line.rstrip("\n") for line in f if line.strip())
    return lines or [f"INFO request {i} served" for i in range(1000)]


def new_topic(settings: KafkaSettings) -> str:
    name = f"bench.collect.{uuid.uuid4().hex[:8]}"
    admin = connect(settings).admin()
    try:
        admin.create_topics([TopicSpec(name, 3)])
    finally:
        admin.close()
    return name


def bench_cloudwatch(settings: KafkaSettings, moto_url: str, n: int, lines: list[str]) -> dict:
    from logtide.collectors.cloudwatch.collector import CloudWatchCollector
    from logtide.collectors.cloudwatch.config import CloudWatchConfig

    client = boto3.client("logs", region_name="us-east-1", endpoint_url=moto_url)
    group = f"/bench/{uuid.uuid4().hex[:8]}"
    client.create_log_group(logGroupName=group)
    base = int(time.time() * 1000) - 600_000
    for s in range(4):
        client.create_log_stream(logGroupName=group, logStreamName=f"s{s}")
    per = n // 4
    for s in range(4):
        for start in range(0, per, 10_000):
            client.put_log_events(
                logGroupName=group,
                logStreamName=f"s{s}",
                logEvents=[
                    {"timestamp": base + i // 10, "message": lines[(s * per + i) % len(lines)]}
                    for i in range(start, min(per, start + 10_000))
                ],
            )
    total = per * 4

    # The bare source read: boto3 paging only.
    t0 = time.perf_counter()
    got, params = 0, {"logGroupName": group, "startTime": base - 1000, "endTime": int(time.time() * 1000)}
    while True:
        resp = client.filter_log_events(**params)
        got += len(resp["events"])
        if not resp.get("nextToken"):
            break
        params["nextToken"] = resp["nextToken"]
    raw_s = time.perf_counter() - t0
    assert got == total, (got, total)

    cfg = CloudWatchConfig.model_validate(
        {
            "regions": ["us-east-1"],
            "log_groups": [{"name": group}],
            "endpoint_url": moto_url,
            "topic": new_topic(settings),
            "max_requests_per_second": 1000,
            "lookback_seconds": 60,
            "start_seconds_ago": 3600,
        }
    )
    c = CloudWatchCollector(cfg, connect(settings))
    shipper = c.shipper()
    t0 = time.perf_counter()
    c.sweep(c.work_items()[0], "us-east-1", group, shipper, threading.Event())
    ours_s = time.perf_counter() - t0
    shipped = c.metrics.events._value.get()
    c.close()
    return {
        "events": total,
        "shipped": int(shipped),
        "raw_read_s": raw_s,
        "collector_s": ours_s,
        "raw_events_per_s": total / raw_s,
        "collector_events_per_s": total / ours_s,
    }


def bench_salesforce(settings: KafkaSettings, n: int, lines: list[str]) -> dict:
    from collect_sf_double import SalesforceDouble

    from logtide.collectors.salesforce.collector import SalesforceCollector
    from logtide.collectors.salesforce.config import SalesforceConfig

    tmp = tempfile.mkdtemp(prefix="bench-sf-")
    double = SalesforceDouble(tmp, page_size=100)
    names = "EVENT_TYPE,TIMESTAMP,REQUEST_ID,ORGANIZATION_ID,USER_ID,RUN_TIME,CPU_TIME,URI,SUCCESS,TIMESTAMP_DERIVED"
    types = "String,DateTime,String,Id,Id,Number,Number,String,Boolean,DateTime"
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    w.writerow(names.split(","))
    for i in range(n):
        w.writerow(
            [
                "URI",
                f"20231218054831.{i % 1000:03d}",
                f"req-{i}",
                "00D000000000001",
                "005000000000001",
                str(i % 500),
                str(i % 70),
                lines[i % len(lines)],
                "1",
                f"2023-12-18T05:48:31.{i % 1000:03d}Z",
            ]
        )
    blob = buf.getvalue().encode()
    created = time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime(time.time() - 1800))
    double.add_log_file("0ATbench", "URI", created, blob, names, types)
    try:
        # The bare source read: streamed download + csv.reader.
        session = requests.Session()
        token = session.post(
            double.url + "/services/oauth2/token",
            verify=double.cert,
            data={
                "grant_type": "password",
                "client_id": "cid",
                "client_secret": "csecret",
                "username": "collector@example.com",
                "password": "pwTOKEN",
            },
        ).json()["access_token"]
        t0 = time.perf_counter()
        resp = session.get(
            f"{double.url}/services/data/v59.0/sobjects/EventLogFile/0ATbench/LogFile",
            headers={"Authorization": f"Bearer {token}"},
            stream=True,
            verify=double.cert,
        )
        resp.raw.auto_close = False
        rows = sum(1 for _ in csv.reader(io.TextIOWrapper(resp.raw, encoding="utf-8", newline=""))) - 1
        raw_s = time.perf_counter() - t0
        assert rows == n, (rows, n)

        cfg = SalesforceConfig.model_validate(
            {
                "login_url": double.url,
                "ca_bundle": double.cert,
                "topic": new_topic(settings),
                "event_types": ["URI"],
                "auth": {
                    "kind": "password",
                    "username": "collector@example.com",
                    "password": "pw",
                    "security_token": "TOKEN",
                    "client_id": "cid",
                    "client_secret": "csecret",
                },
            }
        )
        c = SalesforceCollector(cfg, connect(settings))
        shipper = c.shipper()
        t0 = time.perf_counter()
        c.sweep_log_files("EventLogFile/URI/Hourly", "URI", "Hourly", shipper, threading.Event())
        ours_s = time.perf_counter() - t0
        shipped = c.metrics.events._value.get()
        c.close()
    finally:
        double.stop()
    return {
        "rows": n,
        "shipped": int(shipped),
        "blob_bytes": len(blob),
        "raw_read_s": raw_s,
        "collector_s": ours_s,
        "raw_rows_per_s": n / raw_s,
        "collector_rows_per_s": n / ours_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the default sizes")
    parser.add_argument("--bootstrap", help="use this Kafka instead of the embedded broker")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    n = max(1000, int(40_000 * args.scale))
    lines = corpus_lines()

    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    bootstrap, stop_broker = given_or_embedded(
        args.bootstrap, log_file=os.path.join(tempfile.gettempdir(), "bench-collectors-broker.log")
    )
    settings = KafkaSettings(bootstrap=bootstrap, client="confluent")
    try:
        cw = bench_cloudwatch(settings, f"http://{host}:{port}", n, lines)
        sf = bench_salesforce(settings, n, lines)
    finally:
        moto.stop()
        stop_broker()
    print(f"{'source':<26}{'events':>9}{'bare read/s':>14}{'collector/s':>14}{'ratio':>8}")
    print(
        f"{'CloudWatch (moto)':<26}{cw['events']:>9}{cw['raw_events_per_s']:>14,.0f}"
        f"{cw['collector_events_per_s']:>14,.0f}{cw['collector_events_per_s'] / cw['raw_events_per_s']:>8.2f}"
    )
    print(
        f"{'Salesforce ELF (double)':<26}{sf['rows']:>9}{sf['raw_rows_per_s']:>14,.0f}"
        f"{sf['collector_rows_per_s']:>14,.0f}{sf['collector_rows_per_s'] / sf['raw_rows_per_s']:>8.2f}"
    )
    out = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "scale": args.scale,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "kafka": args.bootstrap or "embedded (Tansu), confluent backend",
        "cloudwatch": cw,
        "salesforce": sf,
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "collectors.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

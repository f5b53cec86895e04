"""Day-2 tools: how fast `logtide replay` copies a topic, against a raw confluent-kafka
consume→produce loop doing the same copy (same broker, same records, acks=all), and how long
`logtide dlq list` and `logtide tap --where` take over a topic of known size.

    python bench/day2_tools.py                      # 100k records, embedded broker
    python bench/day2_tools.py --records 20000      # a quick run
    python bench/day2_tools.py --bootstrap HOST:PORT

Replay and tap run in this process through `logtide.cli.main` (no interpreter start counted).
The machine is shared (2 cores, other engineers' tests running): expect noise of tens of percent.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import confluent_kafka as ck  # noqa: E402

from logtide import envelope  # noqa: E402
from logtide.broker import given_or_embedded  # noqa: E402
from logtide.cli import main as logtide_main  # noqa: E402
from logtide.dlq import DeadLetters  # noqa: E402
from logtide.topics import exact_end_offsets  # noqa: E402
from logtide.transport import KafkaSettings, Record, TopicSpec, connect  # noqa: E402

PARTITIONS = 3


def fill(transport, topic: str, n: int) -> None:
    producer = transport.producer(linger_ms=20)
    for i in range(n):
        ev = envelope.new_event(
            id=envelope.make_id("bench-tools", i),
            body=f"GET /api/items/{i} 200 in {i % 97} ms",
            source="bench",
            severity_text="ERROR" if i % 10 == 0 else "INFO",
            resource={"service.name": f"svc-{i % 8}", "k8s.pod.name": f"pod-{i % 16}"},
        )
        producer.produce(topic, envelope.encode(ev), key=f"pod-{i % 16}".encode())
    assert producer.flush(120) == 0
    producer.close()


def count(transport, topic: str) -> int:
    consumer = transport.consumer(None)
    try:
        return sum(exact_end_offsets(consumer, consumer.partitions_for(topic)).values())
    finally:
        consumer.close()


def quiet_main(args: list[str]) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return logtide_main(args)


def raw_copy(bootstrap: str, src: str, dst: str, n: int) -> float:
    """consume → produce → flush with the bare client, same producer settings as logtide's."""
    t0 = time.perf_counter()
    c = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-raw",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    c.assign([ck.TopicPartition(src, p, 0) for p in range(PARTITIONS)])
    p = ck.Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            "compression.type": "lz4",
        }
    )
    copied = 0
    while copied < n:
        for m in c.consume(1000, 0.1):
            if m.error():
                continue
            p.produce(dst, m.value(), key=m.key(), headers=m.headers(), partition=m.partition())
            copied += 1
        p.poll(0)
    p.flush(120)
    c.close()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--bootstrap")
    args = ap.parse_args()
    bootstrap, stop_broker = given_or_embedded(args.bootstrap)
    os.environ["LOGTIDE_BOOTSTRAP"] = bootstrap
    try:
        transport = connect(KafkaSettings(bootstrap=bootstrap, client="confluent"))
        tag = uuid.uuid4().hex[:6]
        src, dst, dst_raw, dlq = (f"bench.tools.{n}.{tag}" for n in ("src", "dst", "raw", "dlq"))
        admin = transport.admin()
        admin.create_topics([TopicSpec(t, PARTITIONS) for t in (src, dst, dst_raw)] + [TopicSpec(dlq, 1)])
        admin.close()
        n = args.records
        fill(transport, src, n)
        results = {}

        state = os.path.join(tempfile.mkdtemp(), "replay.json")
        t0 = time.perf_counter()
        assert (
            quiet_main(
                ["replay", "--topic", src, "--from", "1d", "--to-topic", dst, "--state", state, "--batch", "5000"]
            )
            == 0
        )
        results["replay_s"] = time.perf_counter() - t0
        assert count(transport, dst) == n, "replay copied a different count"
        results["raw_copy_s"] = raw_copy(bootstrap, src, dst_raw, n)
        assert count(transport, dst_raw) == n

        t0 = time.perf_counter()
        assert (
            quiet_main(
                [
                    "tap",
                    src,
                    "--from",
                    "beginning",
                    "--where",
                    'severity_number >= 17 and service.name == "svc-0"',
                    "--json",
                    "--count",
                    str(n // 40),
                ]
            )
            == 0
        )
        results["tap_scan_s"] = time.perf_counter() - t0

        dlq_n = min(n, 20_000)
        producer = transport.producer(linger_ms=20)
        dead = DeadLetters(producer, "bench", topic=dlq)
        for i in range(dlq_n):
            dead.send(
                Record(src, i % PARTITIONS, i, b"k", b"{broken %d" % i, [], None),
                "decode",
                ValueError(f"invalid JSON at char {i % 50}"),
            )
        producer.flush(120)
        producer.close()
        t0 = time.perf_counter()
        assert quiet_main(["dlq", "list", "--topic", dlq, "--json"]) == 0
        results["dlq_list_s"] = time.perf_counter() - t0
    finally:
        stop_broker()

    rows = [
        ("replay (logtide replay, acked batches + state file)", n, results["replay_s"]),
        ("raw confluent consume→produce copy", n, results["raw_copy_s"]),
        ("tap --where over the whole topic (n/40 matches)", n, results["tap_scan_s"]),
        ("dlq list (read + group by reason)", dlq_n, results["dlq_list_s"]),
    ]
    print(f"{'what':<55} {'records':>9} {'seconds':>8} {'records/s':>10}")
    for what, k, s in rows:
        print(f"{what:<55} {k:>9} {s:>8.2f} {k / s:>10,.0f}")
    ratio = results["raw_copy_s"] / results["replay_s"]
    print(f"replay speed / raw copy speed: {ratio:.2f}")
    out = {
        "records": n,
        "dlq_records": dlq_n,
        **{k: round(v, 3) for k, v in results.items()},
        "replay_vs_raw_speed": round(ratio, 3),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus (shared)",
        "time": time.strftime("%FT%TZ", time.gmtime()),
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "day2_tools.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

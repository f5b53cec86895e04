"""Transport limits: produce, consume and consume→produce rates of both backends, through logtide's
transport interface and through the raw clients, against the embedded broker (or --bootstrap).

Every later benchmark is a ratio of these numbers. Both paths use the same client settings as
logtide's transport (acks=all, idempotence, lz4, linger 5 ms; auto-commit off) and the same records
(envelopes of ~300 bytes built from the Loghub corpus, 16 keys, 3 partitions), and count a record
produced only when its delivery callback reported the broker's ack.

    python bench/transport.py                 # 200k records for confluent, 50k for kafka-python
    python bench/transport.py --scale 0.1 --repeat 1    # a quick run
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import confluent_kafka as ck  # noqa: E402
import kafka  # noqa: E402

from logtide import envelope  # noqa: E402
from logtide.broker import given_or_embedded  # noqa: E402
from logtide.transport import KafkaSettings, TopicPartition, TopicSpec, connect  # noqa: E402

CORPUS = HERE.parent.parent / "shared" / "corpus" / "loghub"
PARTITIONS = 3
KEYS = [f"node-{i % 4}/pod-{i}".encode() for i in range(16)]
RECORD_BYTES = 300
DEFAULT_COUNTS = {"confluent": 200_000, "kafka-python": 50_000}
DEADLINE_S = 300


# --- records --------------------------------------------------------------------------------


def make_values(n: int = 2000, size: int = RECORD_BYTES) -> list[bytes]:
    """Distinct envelopes of ``size`` bytes each, bodies from real log lines (cut or padded to fit)."""
    lines: list[str] = []
    for path in sorted(glob.glob(str(CORPUS / "*.log"))):
        with open(path, errors="replace") as f:
            lines.extend(line.rstrip("\n") for _, line in zip(range(200), f))
    if not lines:
        lines = [f"INFO request {i} served in {i % 97} ms" for i in range(n)]
    values = []
    for i in range(n):
        ev = envelope.new_event(
            id=envelope.make_id("bench", i),
            body="",
            source="bench",
            severity_text="INFO",
            resource={"service.name": "bench", "k8s.pod.name": f"pod-{i % 16}"},
        )
        ev["ingest_time"] = ev["observed_time"]
        room = size - len(envelope.encode(ev))
        ev["body"] = (lines[i % len(lines)] + " " * room)[: max(room, 0)]
        values.append(envelope.encode(ev))
    return values


# --- raw client settings, mirroring logtide's transport -------------------------------------


def raw_confluent_producer(bootstrap: str) -> ck.Producer:
    return ck.Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "queue.buffering.max.messages": 100_000,
            "compression.type": "lz4",
        }
    )


def raw_confluent_consumer(bootstrap: str) -> ck.Consumer:
    return ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-unjoined",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
        }
    )


def raw_kp_producer(bootstrap: str) -> kafka.KafkaProducer:
    return kafka.KafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        compression_type="lz4",
        batch_size=256 * 1024,
    )


def raw_kp_consumer(bootstrap: str) -> kafka.KafkaConsumer:
    return kafka.KafkaConsumer(
        bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )


# --- the measured loops ---------------------------------------------------------------------


class Acks:
    def __init__(self):
        self.ok = 0
        self.failed = 0

    def raw_cb(self, err, msg):
        if err is None:
            self.ok += 1
        else:
            self.failed += 1

    def logtide_cb(self, err, rec):
        self.raw_cb(err, rec)


def produce_logtide(transport, topic: str, values: list[bytes], n: int) -> float:
    acks = Acks()
    producer = transport.producer()
    t0 = time.perf_counter()
    nv, nk = len(values), len(KEYS)
    for i in range(n):
        producer.produce(topic, values[i % nv], key=KEYS[i % nk], on_delivery=acks.logtide_cb)
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush(DEADLINE_S)
    elapsed = time.perf_counter() - t0
    producer.close()
    assert acks.ok == n and not acks.failed, (acks.ok, acks.failed)
    return elapsed


def produce_raw_confluent(bootstrap: str, topic: str, values: list[bytes], n: int) -> float:
    acks = Acks()
    p = raw_confluent_producer(bootstrap)
    t0 = time.perf_counter()
    nv, nk = len(values), len(KEYS)
    for i in range(n):
        while True:
            try:
                p.produce(topic, values[i % nv], key=KEYS[i % nk], on_delivery=acks.raw_cb)
                break
            except BufferError:
                p.poll(0.1)
        if i % 1000 == 0:
            p.poll(0)
    p.flush(DEADLINE_S)
    elapsed = time.perf_counter() - t0
    assert acks.ok == n and not acks.failed, (acks.ok, acks.failed)
    return elapsed


def produce_raw_kp(bootstrap: str, topic: str, values: list[bytes], n: int) -> float:
    acks = Acks()
    p = raw_kp_producer(bootstrap)
    ok = lambda meta: acks.raw_cb(None, meta)  # noqa: E731
    bad = lambda exc: acks.raw_cb(exc, None)  # noqa: E731
    t0 = time.perf_counter()
    nv, nk = len(values), len(KEYS)
    for i in range(n):
        p.send(topic, value=values[i % nv], key=KEYS[i % nk]).add_callback(ok).add_errback(bad)
    p.flush(DEADLINE_S)
    elapsed = time.perf_counter() - t0
    p.close(5)
    assert acks.ok == n and not acks.failed, (acks.ok, acks.failed)
    return elapsed


def parts(topic: str) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in range(PARTITIONS)]


def consume_logtide(transport, topic: str, n: int) -> float:
    consumer = transport.consumer(None)
    consumer.assign(parts(topic))
    got, size, last = 0, 0, {}
    t0 = None
    deadline = time.monotonic() + DEADLINE_S
    while got < n and time.monotonic() < deadline:
        batch = consumer.poll_batch(500, 1.0)
        t0 = t0 or (batch and time.perf_counter())
        for rec in batch:
            got += 1
            size += len(rec.value)
            last[rec.partition] = rec.offset
    elapsed = time.perf_counter() - t0
    consumer.close()
    assert got == n, (got, n)
    return elapsed


def consume_raw_confluent(bootstrap: str, topic: str, n: int) -> float:
    c = raw_confluent_consumer(bootstrap)
    c.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in range(PARTITIONS)])
    got, size, last = 0, 0, {}
    t0 = None
    deadline = time.monotonic() + DEADLINE_S
    while got < n and time.monotonic() < deadline:
        batch = c.consume(500, 1.0)
        t0 = t0 or (batch and time.perf_counter())
        for m in batch:
            if m.error() is None:
                got += 1
                size += len(m.value())
                last[m.partition()] = m.offset()  # what a consumer keeps to commit
    elapsed = time.perf_counter() - t0
    c.close()
    assert got == n, (got, n)
    return elapsed


def consume_raw_kp(bootstrap: str, topic: str, n: int) -> float:
    c = raw_kp_consumer(bootstrap)
    c.assign([kafka.TopicPartition(topic, p) for p in range(PARTITIONS)])
    got, size, last = 0, 0, {}
    t0 = None
    deadline = time.monotonic() + DEADLINE_S
    while got < n and time.monotonic() < deadline:
        batch = c.poll(timeout_ms=1000, max_records=500)
        t0 = t0 or (batch and time.perf_counter())
        for recs in batch.values():
            for r in recs:
                got += 1
                size += len(r.value)
                last[r.partition] = r.offset
    elapsed = time.perf_counter() - t0
    c.close(autocommit=False)
    assert got == n, (got, n)
    return elapsed


def passthrough_logtide(transport, src: str, dst: str, n: int) -> float:
    """Read every record of src and write it to dst (same key, value, headers) until all are acked."""
    consumer = transport.consumer(None)
    consumer.assign(parts(src))
    producer = transport.producer()
    acks = Acks()
    got = 0
    t0 = None
    deadline = time.monotonic() + DEADLINE_S
    while got < n and time.monotonic() < deadline:
        batch = consumer.poll_batch(500, 1.0)
        t0 = t0 or (batch and time.perf_counter())
        for rec in batch:
            producer.produce(dst, rec.value, key=rec.key, headers=rec.headers, on_delivery=acks.logtide_cb)
            got += 1
        producer.poll(0)
    producer.flush(DEADLINE_S)
    elapsed = time.perf_counter() - t0
    producer.close()
    consumer.close()
    assert got == n and acks.ok == n, (got, acks.ok, n)
    return elapsed


def passthrough_raw_confluent(bootstrap: str, src: str, dst: str, n: int) -> float:
    c = raw_confluent_consumer(bootstrap)
    c.assign([ck.TopicPartition(src, p, ck.OFFSET_BEGINNING) for p in range(PARTITIONS)])
    p = raw_confluent_producer(bootstrap)
    acks = Acks()
    got = 0
    t0 = None
    deadline = time.monotonic() + DEADLINE_S
    while got < n and time.monotonic() < deadline:
        batch = c.consume(500, 1.0)
        t0 = t0 or (batch and time.perf_counter())
        for m in batch:
            if m.error() is not None:
                continue
            while True:
                try:
                    p.produce(dst, m.value(), key=m.key(), headers=m.headers(), on_delivery=acks.raw_cb)
                    break
                except BufferError:
                    p.poll(0.1)
            got += 1
        p.poll(0)
    p.flush(DEADLINE_S)
    elapsed = time.perf_counter() - t0
    c.close()
    assert got == n and acks.ok == n, (got, acks.ok, n)
    return elapsed


def passthrough_raw_kp(bootstrap: str, src: str, dst: str, n: int) -> float:
    c = raw_kp_consumer(bootstrap)
    c.assign([kafka.TopicPartition(src, p) for p in range(PARTITIONS)])
    p = raw_kp_producer(bootstrap)
    acks = Acks()
    ok = lambda meta: acks.raw_cb(None, meta)  # noqa: E731
    bad = lambda exc: acks.raw_cb(exc, None)  # noqa: E731
    got = 0
    t0 = None
    deadline = time.monotonic() + DEADLINE_S
    while got < n and time.monotonic() < deadline:
        batch = c.poll(timeout_ms=1000, max_records=500)
        t0 = t0 or (batch and time.perf_counter())
        for recs in batch.values():
            for r in recs:
                p.send(dst, value=r.value, key=r.key, headers=list(r.headers or ())).add_callback(ok).add_errback(bad)
                got += 1
    p.flush(DEADLINE_S)
    elapsed = time.perf_counter() - t0
    p.close(5)
    c.close(autocommit=False)
    assert got == n and acks.ok == n, (got, acks.ok, n)
    return elapsed


# --- driver ---------------------------------------------------------------------------------


def one_round(backend: str, bootstrap: str, n: int, values: list[bytes]) -> dict[str, tuple[float, float]]:
    """Seconds (raw, logtide) per operation, on fresh topics."""
    transport = connect(KafkaSettings(bootstrap=bootstrap, client=backend))
    run = uuid.uuid4().hex[:6]
    names = {k: f"bench.{backend}.{k}.{run}" for k in ("raw", "logtide", "pass-raw", "pass-logtide")}
    admin = transport.admin()
    admin.create_topics([TopicSpec(t, PARTITIONS) for t in names.values()])
    admin.close()
    raw_produce = produce_raw_confluent if backend == "confluent" else produce_raw_kp
    raw_consume = consume_raw_confluent if backend == "confluent" else consume_raw_kp
    raw_pass = passthrough_raw_confluent if backend == "confluent" else passthrough_raw_kp
    # Raw and logtide runs alternate so drift on the shared machine hits both alike.
    times = {
        "produce": (
            raw_produce(bootstrap, names["raw"], values, n),
            produce_logtide(transport, names["logtide"], values, n),
        ),
        "consume": (raw_consume(bootstrap, names["raw"], n), consume_logtide(transport, names["logtide"], n)),
        "passthrough": (
            raw_pass(bootstrap, names["raw"], names["pass-raw"], n),
            passthrough_logtide(transport, names["logtide"], names["pass-logtide"], n),
        ),
    }
    admin = transport.admin()
    try:
        admin.delete_topics(list(names.values()))  # the embedded broker keeps topics in memory
    except Exception:  # noqa: BLE001 - cleanup only
        pass
    admin.close()
    return times


def bench_backend(backend: str, bootstrap: str, n: int, values: list[bytes], repeat: int) -> list[dict]:
    """Best of ``repeat`` rounds for each path (the least disturbed by other load on the machine)."""
    best: dict[str, list[float]] = {}
    each: dict[str, list[list[int]]] = {}
    for r in range(repeat):
        for op, (raw_s, lt_s) in one_round(backend, bootstrap, n, values).items():
            b = best.setdefault(op, [raw_s, lt_s])
            b[0], b[1] = min(b[0], raw_s), min(b[1], lt_s)
            each.setdefault(op, []).append([round(n / raw_s), round(n / lt_s)])
            print(
                f"  round {r + 1}: {backend:<13} {op:<12} raw {n / raw_s:>9,.0f}/s   logtide {n / lt_s:>9,.0f}/s",
                flush=True,
            )
    vbytes = sum(len(v) for v in values) / len(values)
    rows = []
    for op, (raw_s, lt_s) in best.items():
        rows.append(
            {
                "backend": backend,
                "op": op,
                "records": n,
                "value_bytes": round(vbytes),
                "rounds": repeat,
                "raw_per_s": round(n / raw_s),
                "logtide_per_s": round(n / lt_s),
                "raw_mb_per_s": round(n * vbytes / raw_s / 1e6, 2),
                "logtide_mb_per_s": round(n * vbytes / lt_s / 1e6, 2),
                "logtide_vs_raw": round(raw_s / lt_s, 3),
                "each_round_raw_logtide_per_s": each[op],
            }
        )
    return rows


def print_table(rows: list[dict]) -> None:
    print()
    print(
        f"{'backend':<13} {'operation':<12} {'records':>8} {'raw rec/s':>11} {'logtide rec/s':>14} "
        f"{'logtide MB/s':>13} {'logtide/raw':>12}"
    )
    for r in rows:
        print(
            f"{r['backend']:<13} {r['op']:<12} {r['records']:>8,} {r['raw_per_s']:>11,} {r['logtide_per_s']:>14,} "
            f"{r['logtide_mb_per_s']:>13.1f} {r['logtide_vs_raw']:>12.2f}"
        )
    by = {(r["backend"], r["op"]): r for r in rows}
    for op in ("produce", "consume", "passthrough"):
        a, b = by.get(("confluent", op)), by.get(("kafka-python", op))
        if a and b:
            print(f"confluent / kafka-python, {op} through logtide: {a['logtide_per_s'] / b['logtide_per_s']:.1f}x")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", help="an external Kafka (default: start the embedded broker)")
    ap.add_argument("--backends", default="confluent,kafka-python")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the record counts (0.1 = quick run)")
    ap.add_argument("--value-bytes", type=int, default=RECORD_BYTES, help="size of each record value (an envelope)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds per backend; the best of each path is kept")
    ap.add_argument("--out", default=str(HERE / "results" / "transport.json"))
    args = ap.parse_args(argv)

    values = make_values(size=args.value_bytes)
    bootstrap, stop_broker = given_or_embedded(args.bootstrap)
    print(
        f"broker {bootstrap} ({'external' if args.bootstrap else 'embedded Tansu'}), values {args.value_bytes} B, "
        f"{PARTITIONS} partitions, {len(KEYS)} keys",
        flush=True,
    )
    rows: list[dict] = []
    try:
        for backend in args.backends.split(","):
            n = max(1000, int(DEFAULT_COUNTS[backend] * args.scale))
            rows.extend(bench_backend(backend, bootstrap, n, values, args.repeat))
    finally:
        stop_broker()
    print_table(rows)
    result = {
        "bench": "transport",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python bench/transport.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip(),
        "broker": bootstrap if args.bootstrap else "embedded tansu",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "confluent_kafka": ck.__version__,
            "librdkafka": ck.libversion()[0],
            "kafka_python": kafka.__version__,
        },
        "settings": {
            "rounds": args.repeat,
            "acks": "all",
            "idempotence": True,
            "compression": "lz4",
            "linger_ms": 5,
            "partitions": PARTITIONS,
            "keys": len(KEYS),
            "value_bytes": args.value_bytes,
        },
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

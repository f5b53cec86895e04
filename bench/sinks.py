"""Sink throughput: events/s each sink makes durable, against the bare write it is built on.

Part 1, the write path (no Kafka): batches of 2000 envelopes built from the Loghub corpus (real log
lines of 10 systems), written the way the sink handler writes them, each batch made durable before the
next, against a baseline doing only the raw durable write of the same batch:

    audit      AuditSink.write (SHA-256 chain, fsync, signed manifest)  vs  JSON lines appended + fsync
    parquet    Parquet output (Hive partitions, atomic files, offsets)  vs  one pq.write_table + fsync per batch
    postgres   COPY → temp table → INSERT … ON CONFLICT, day partitions vs  plain COPY into an unpartitioned table
    monitoring Prometheus counters + Loki push (gzip) to a local null HTTP server (no baseline)

Part 2, end to end over the embedded broker: the same events in a route topic (3 partitions); each
sink service (BatchLoop: consume → decode → dedup → write → commit) reads it as a fresh group; the
clock starts when partitions are assigned (the group join is not timed).

    python bench/sinks.py                    # 20k events, 3 rounds
    python bench/sinks.py --events 5000 --rounds 1

The machine is shared (2 cores, other engineers' work): figures are noisy; ratios are within one run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests" / "sinks"))  # start_postgres()

import orjson  # noqa: E402
import psycopg  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from logtide import envelope  # noqa: E402
from logtide.broker import EmbeddedBroker  # noqa: E402
from logtide.transport import KafkaSettings, Record, TopicSpec, connect  # noqa: E402
from logtide.processors.sinks.analytics.rows import to_row, to_table  # noqa: E402
from logtide.processors.sinks.analytics.sink import AnalyticsSink  # noqa: E402
from logtide.processors.sinks.audit.writer import AuditSink  # noqa: E402
from logtide.processors.sinks.build import build_services  # noqa: E402
from logtide.processors.sinks.config import AnalyticsSettings, AuditSettings, MonitoringSettings, SinkConfig  # noqa: E402
from logtide.processors.sinks.monitoring.sink import MonitoringSink  # noqa: E402
from logtide.processors.sinks.service import Item  # noqa: E402

# $LOGTIDE_CORPUS: a worktree does not sit beside ../shared
CORPUS = Path(os.environ.get("LOGTIDE_CORPUS", HERE.parent.parent / "shared" / "corpus" / "loghub"))
BATCH = 2000


def corpus_events(n: int) -> list[dict]:
    lines = []
    for path in sorted(CORPUS.glob("*.log")):
        lines += [(path.stem.split("_")[0].lower(), line) for line in path.read_text(errors="replace").splitlines()]
    now = time.time_ns()
    run = uuid.uuid4().hex[:8]
    out = []
    for i in range(n):
        system, line = lines[i % len(lines)]
        ev = envelope.new_event(
            id=envelope.make_id("bench", run, i),
            body=line,
            source="file",
            time=now - (n - i) * 1000,
            severity_text=("INFO", "WARN", "ERROR")[i % 3],
            attributes={"line": i, "system": system},
            resource={"service.name": system, "k8s.namespace.name": "bench"},
        )
        ev["ingest_time"] = ev["observed_time"]
        out.append(ev)
    return out


def batches(events: list[dict]) -> list[list[Item]]:
    items = [Item(Record("logtide.route.bench", i % 3, i, None, None, [], None), ev) for i, ev in enumerate(events)]
    return [items[i : i + BATCH] for i in range(0, len(items), BATCH)]


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# --- baselines --------------------------------------------------------------------------------


def raw_jsonl(path: Path, bs: list[list[Item]]) -> None:
    with open(path / "raw.jsonl", "ab") as f:
        for b in bs:
            f.write(b"".join(orjson.dumps(it.event) + b"\n" for it in b))
            f.flush()
            os.fsync(f.fileno())


def raw_parquet(path: Path, bs: list[list[Item]]) -> None:
    for n, b in enumerate(bs):
        buf = io.BytesIO()
        pq.write_table(to_table([to_row(it.event)[1] for it in b]), buf, compression="zstd")
        with open(path / f"raw-{n}.parquet", "wb") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())


def raw_copy(dsn: str, bs: list[list[Item]]) -> None:
    table = f"raw_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn) as conn:
        conn.execute(f"CREATE TABLE {table} (id text, time timestamptz, body text, attributes jsonb)")
        conn.commit()
        for b in bs:
            with conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                for it in b:
                    ev = it.event
                    copy.write_row((ev["id"], envelope_time(ev), ev["body"], orjson.dumps(ev["attributes"]).decode()))
            conn.commit()


def envelope_time(ev):
    from logtide.processors.sinks.eventtime import utc

    return utc(ev["time"])


# --- part 1 -----------------------------------------------------------------------------------


def write_path(events: list[dict], rounds: int, dsn: str, loki_url: str) -> dict:
    n = len(events)
    results: dict[str, dict] = {}

    def run(name, ours, base=None):
        o, b = [], []
        for _ in range(rounds):
            tmp = Path(tempfile.mkdtemp(prefix="bench-sinks-"))
            try:
                bs = batches(events)
                o.append(n / timed(lambda tmp=tmp, bs=bs: ours(tmp, bs)))
                if base:
                    tmp2 = Path(tempfile.mkdtemp(prefix="bench-sinks-"))
                    b.append(n / timed(lambda tmp2=tmp2, bs=bs: base(tmp2, bs)))
                    shutil.rmtree(tmp2, ignore_errors=True)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        results[name] = {
            "ours_eps": round(statistics.median(o)),
            "baseline_eps": round(statistics.median(b)) if b else None,
            "ratio": round(statistics.median(o) / statistics.median(b), 2) if b else None,
        }
        print(
            f"  {name:<11} {results[name]['ours_eps']:>9,} ev/s   baseline "
            f"{results[name]['baseline_eps'] or 0:>9,} ev/s   ratio {results[name]['ratio'] or '-'}",
            flush=True,
        )

    def audit(tmp, bs):
        s = AuditSink(AuditSettings(storage={"path": str(tmp)}, hmac_key="bench"))
        for b in bs:
            s.write(b)

    def parquet(tmp, bs):
        s = AnalyticsSink(AnalyticsSettings(parquet={"path": str(tmp), "compact_every_seconds": 0}), "bench")
        for b in bs:
            s.write(b)

    def postgres(tmp, bs):
        s = AnalyticsSink(AnalyticsSettings(postgres={"dsn": dsn, "table": f"b_{uuid.uuid4().hex[:8]}"}), "bench")
        for b in bs:
            s.write(b)
        s.close()

    def monitoring(tmp, bs):
        s = MonitoringSink(MonitoringSettings(loki={"url": loki_url}))
        for b in bs:
            s.write(b)

    run("audit", audit, raw_jsonl)
    run("parquet", parquet, raw_parquet)
    run("postgres", postgres, lambda tmp, bs: raw_copy(dsn, bs))
    run("monitoring", monitoring)
    return results


# --- part 2 -----------------------------------------------------------------------------------


def end_to_end(events: list[dict], dsn: str, loki_url: str) -> dict:
    broker = EmbeddedBroker().start()
    try:
        settings = KafkaSettings(bootstrap=broker.bootstrap, client="confluent")
        transport = connect(settings)
        topic = f"bench.route.{uuid.uuid4().hex[:6]}"
        admin = transport.admin()
        admin.create_topics([TopicSpec(topic, 3), TopicSpec("logtide.dlq", 1)])
        admin.close()
        producer = transport.producer()
        for ev in events:
            producer.produce(topic, envelope.encode(ev), key=ev["resource"]["service.name"].encode())
        producer.flush(60)
        producer.close()
        tmp = Path(tempfile.mkdtemp(prefix="bench-sinks-e2e-"))
        common = {"topic": topic, "session_timeout_seconds": 6, "max_batch": BATCH}
        sections = {
            "monitoring": {**common, "loki": {"url": loki_url}},
            "audit": {**common, "storage": {"path": str(tmp / "audit")}, "hmac_key": "bench"},
            "analytics": {
                **common,
                "parquet": {"path": str(tmp / "parquet"), "compact_every_seconds": 0},
                "postgres": {"dsn": dsn, "table": f"e2e_{uuid.uuid4().hex[:6]}"},
            },
        }
        out = {}
        for name, section in sections.items():
            section = {**section, "group": f"bench-{name}-{uuid.uuid4().hex[:6]}"}
            config = SinkConfig.model_validate({"kafka": settings.model_dump(), name: section})
            [svc] = build_services(config, transport)
            stop = threading.Event()
            t = threading.Thread(target=svc.run, args=(stop,), daemon=True)
            t.start()
            deadline = time.monotonic() + 300
            while not svc.loop.assigned and time.monotonic() < deadline:
                time.sleep(0.005)
            t0, first = time.perf_counter(), svc.loop.handled
            while svc.loop.handled < len(events) and time.monotonic() < deadline:
                time.sleep(0.005)
            elapsed = time.perf_counter() - t0
            stop.set()
            t.join(30)
            out[name] = round((svc.loop.handled - first) / elapsed) if elapsed > 0 else None
            label = {"analytics": "analytics (parquet + postgres)"}.get(name, name)
            print(f"  {label:<31} {out[name]:>9,} ev/s", flush=True)
        shutil.rmtree(tmp, ignore_errors=True)
        return out
    finally:
        broker.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--write-path-only", action="store_true", help="skip part 2 (end to end over the broker)")
    args = ap.parse_args()
    from sinks_helpers import PostServer, start_postgres

    dsn, stop_pg = start_postgres()
    loki = PostServer(lambda path, headers, body: (204, b""))  # a Loki that accepts everything
    try:
        events = corpus_events(args.events)
        print(f"write path: {args.events} Loghub events in batches of {BATCH}, median of {args.rounds} rounds")
        part1 = write_path(events, args.rounds, dsn, loki.url)
        part2 = None
        if not args.write_path_only:
            print("end to end over the embedded broker (3 partitions, one sink service each, confluent client)")
            part2 = end_to_end(events, dsn, loki.url)
    finally:
        loki.stop()
        stop_pg()
    result = {
        "events": args.events,
        "rounds": args.rounds,
        "batch": BATCH,
        "write_path": part1,
        "end_to_end_eps": part2,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "sinks.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"raw numbers: {HERE / 'results' / 'sinks.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

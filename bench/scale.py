"""Scale-out: 1 vs 2 `logtide process` replicas (real processes, one consumer group) on this machine's
2 cores, same broker, same input, in one run.

The input is the processor bench's (demo-source events, 6 partitions here so two replicas get three
each), produced once; each configuration then reads all of it as a fresh consumer group with the
reference pipeline (bench/processor.py: parse JSON + normalize + redact + route to 3 topics). The
clock runs from the group's first committed offset to the commit of the last input offset (the group
join and Python start-up are not timed), read from the group's committed offsets every 0.1 s; the
replicas' CPU time over the same span says how busy they kept the cores.

    python bench/scale.py                      # 100k events, 2 rounds of each
    python bench/scale.py --events 20000 --rounds 1    # quick

Writes bench/results/scale.json. The broker runs on the same 2 cores (and other sessions share them):
expect well under 2x.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from logtide.broker import given_or_embedded  # noqa: E402
from logtide.transport import KafkaSettings, TopicSpec, connect  # noqa: E402

PARTITIONS = 6


def _processor_bench():
    spec = importlib.util.spec_from_file_location("processor_bench", HERE / "processor.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def committed(admin, group: str, topic: str) -> int:
    return sum(off for tp, off in admin.group_offsets(group).items() if tp.topic == topic and off > 0)


def run(bootstrap: str, topic: str, n: int, replicas: int, workdir: Path, pipeline: list) -> dict:
    group = f"scale-{replicas}-{uuid.uuid4().hex[:6]}"
    prefix = f"bench.scale.{uuid.uuid4().hex[:6]}."
    cfg = workdir / f"{group}.json"
    cfg.write_text(
        json.dumps(
            {
                "kafka": {"bootstrap": bootstrap, "client": "confluent"},
                "http": {"host": "127.0.0.1", "port": 0},
                "group_id": group,
                "topics": [topic],
                "route_prefix": prefix,
                "session_timeout_seconds": 6,
                "partitions": PARTITIONS,
                "log_level": "warning",
                "pipeline": pipeline,
            }
        )
    )
    admin = connect(KafkaSettings(bootstrap=bootstrap, client="confluent")).admin()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "logtide.cli", "process", "--config", str(cfg)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=open(workdir / f"{group}-{k}.log", "wb"),
        )
        for k in range(replicas)
    ]
    try:
        deadline = time.monotonic() + 600
        t0 = c0 = None
        while time.monotonic() < deadline:
            c = committed(admin, group, topic)
            now = time.monotonic()
            if t0 is None and c > 0:
                t0, c0 = now, c
                cpu0 = sum(cpu_s(p.pid) for p in procs)
            if c >= n:
                cpu = sum(cpu_s(p.pid) for p in procs) - cpu0
                break
            if any(p.poll() is not None for p in procs):
                raise SystemExit(f"a replica exited; see {workdir}/{group}-*.log")
            time.sleep(0.1)
        else:
            raise SystemExit(f"{replicas} replica(s) did not finish {n} events in 600 s")
        elapsed = now - t0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        admin.close()
    return {
        "replicas": replicas,
        "events": n - c0,
        "seconds": round(elapsed, 3),
        "events_per_s": round((n - c0) / elapsed, 1),
        "replica_cpu_s": round(cpu, 2),
        "cores_busy": round(cpu / elapsed, 2),
        "events_per_cpu_s": round((n - c0) / cpu, 1) if cpu else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--bootstrap", help="use this Kafka instead of the embedded broker")
    args = ap.parse_args()
    pb = _processor_bench()
    bootstrap, stop_broker = given_or_embedded(args.bootstrap)
    settings = KafkaSettings(bootstrap=bootstrap, client="confluent")
    topic = f"bench.scale.raw.{uuid.uuid4().hex[:6]}"
    admin = connect(settings).admin()
    admin.create_topics([TopicSpec(topic, PARTITIONS)])
    admin.close()
    rounds: dict[int, list[dict]] = {1: [], 2: []}
    try:
        size = pb.make_input(settings, topic, args.events)
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as d:
            for _ in range(args.rounds):
                for replicas in (1, 2):  # alternating, so drift in the machine's load hits both
                    r = run(bootstrap, topic, args.events, replicas, Path(d), pb.REFERENCE)
                    rounds[replicas].append(r)
                    print(
                        f"  {replicas} replica(s): {r['events_per_s']:,.0f} events/s ({r['seconds']} s), "
                        f"{r['cores_busy']} cores busy, {r['events_per_cpu_s']:,.0f} events per CPU-second",
                        flush=True,
                    )
    finally:
        stop_broker()
    best = {k: max(v, key=lambda r: r["events_per_s"]) for k, v in rounds.items()}
    ratio = best[2]["events_per_s"] / best[1]["events_per_s"]
    print(f"\n{'replicas':>8} {'events/s (best)':>16} {'median':>10}")
    for k, v in rounds.items():
        print(f"{k:>8} {best[k]['events_per_s']:>16,.0f} {statistics.median(r['events_per_s'] for r in v):>10,.0f}")
    print(f"2 / 1 replicas: {ratio:.2f}x   (load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs)")
    out = HERE / "results" / "scale.json"
    out.write_text(
        json.dumps(
            {
                "bench": "scale",
                "events": args.events,
                "value_bytes": size,
                "partitions": PARTITIONS,
                "rounds": rounds,
                "best": best,
                "ratio_2_over_1": round(ratio, 3),
                "loadavg": os.getloadavg()[0],
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            indent=1,
        )
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

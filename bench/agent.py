"""Node agent throughput and memory: lines/s tailing CRI container files into the broker, as a ratio of
the raw producer rate of the same backend on the same lines; peak RSS of the agent process.

Both sides run in their own subprocess against the same embedded broker (or --bootstrap):
- raw: confluent_kafka.Producer with logtide's producer settings (acks=all, idempotence, lz4, linger
  5 ms) producing each CRI line as it is, keyed by container, counting a line when its delivery
  callback reported the broker's ack;
- agent: the real Agent, once on its pure-Python line path ("python") and once on its native one
  ("agent": the C extension; LOGTIDE_AGENT_NATIVE, agents/line_path.py); default config (format
  auto, partial merging, built-in multiline rules, no rate limit; Kubernetes metadata off, there is
  no API server here), tailing the same files from
  offset 0; timed from its first read until Kafka acknowledged every record but the last one of each
  stream, which waits multiline.timeout_seconds (1 s) for continuation lines: a fixed latency, not
  throughput (the time until every record was acknowledged is reported too). RSS includes startup.
Both producers are connected (one warm-up record, flushed) before their clocks start.
CPU per line is the child process's CPU time (every thread, the Kafka client's included) over the
same window as the rate: on a shared machine it moves less with the load than lines/s does.

    python bench/agent.py                 # 200k lines (Loghub corpus wrapped in CRI framing, 8 containers)
    python bench/agent.py --lines 50000   # a quick run

Besides lines/s, each row gives its CPU per line (process CPU, the Kafka client's threads included,
over the timed part: robust on a shared machine) and what a node pays: cores per 10k lines/s.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

#: the Loghub corpus beside the repo; LOGTIDE_CORPUS names another place (a git worktree elsewhere)
CORPUS = Path(os.environ.get("LOGTIDE_CORPUS") or HERE.parent.parent / "shared" / "corpus" / "loghub")
CONTAINERS = 8
PARTITIONS = 3
GOAL_RATIO = 0.60
GOAL_RSS_MB = 64


def write_cri_files(root: Path, total: int) -> list[Path]:
    """The Loghub corpus as container output: CRI framing, long lines split in 16 KiB P pieces."""
    lines: list[bytes] = []
    for path in sorted(glob.glob(str(CORPUS / "*.log"))):
        lines.extend(Path(path).read_bytes().splitlines())
    if not lines:
        raise SystemExit(f"no Loghub corpus at {CORPUS} (set LOGTIDE_CORPUS)")
    files = []
    per_file = total // CONTAINERS
    for c in range(CONTAINERS):
        path = root / f"bench_app{c}-0_uid-{c}" / f"app{c}" / "0.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        out = bytearray()
        for i in range(per_file):
            line = lines[(c * per_file + i) % len(lines)]
            ts = b"2024-05-01T12:%02d:%02d.%09dZ" % (i // 60000 % 60, i // 1000 % 60, i)
            out += ts + (b" stderr F " if i % 9 == 0 else b" stdout F ") + line + b"\n"
        path.write_bytes(bytes(out))
        files.append(path)
    return files


# --- the two children -----------------------------------------------------------------------------


def child_raw(bootstrap: str, topic: str, files: list[str]) -> dict:
    import confluent_kafka as ck

    batches = [(f"bench/app{c}-0/app{c}".encode(), Path(f).read_bytes().splitlines()) for c, f in enumerate(files)]
    total = sum(len(lines) for _, lines in batches)
    p = ck.Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 100_000,
        }
    )
    acked = [0]

    def cb(err, msg):
        if err is None:
            acked[0] += 1

    p.produce(topic, b"warm-up", b"warm-up")  # connected (and producer id assigned) before the clock starts
    p.flush(30)
    start, cpu = time.perf_counter(), time.process_time()
    # interleave containers in 1000-line slices, as a tailer reading several files would
    for i in range(0, max(len(lines) for _, lines in batches), 1000):
        for key, lines in batches:
            for line in lines[i : i + 1000]:
                while True:
                    try:
                        p.produce(topic, line, key, on_delivery=cb)
                        break
                    except BufferError:
                        p.poll(0.05)
            p.poll(0)
    p.flush(120)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "lines": total,
        "acked": acked[0],
        "seconds": seconds,
        "per_s": acked[0] / seconds,
        "cpu_us_per_line": cpu * 1e6 / total,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def child_floor(bootstrap: str, topic: str, files: list[str]) -> dict:
    """The least per-line work the issue's contract asks for, in the tightest loop we could write: the
    raw side's loop plus, per line, splitting the CRI framing, its timestamp to Unix nanoseconds
    (the cached-second parser the agent uses), decoding UTF-8, a deterministic id
    (BLAKE2b of file + offset), the envelope as JSON (shared fields pre-encoded; no headers). No partial/multi-line merging, rotation, checkpoints or metrics. What no agent written
    in Python per record can beat; the agent's distance to it is what our code costs."""
    import hashlib

    import confluent_kafka as ck

    from logtide.agents.parser.timestamps import TimestampParser
    from logtide import envelope

    # acknowledgements as the agent learns them: failures reported, successes counted at the end
    p = ck.Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 100_000,
            "delivery.report.only.error": True,
        }
    )
    failed = [0]

    def cb(err, msg):
        failed[0] += 1

    batches = []
    for c, f in enumerate(files):
        template = envelope.EventTemplate(
            source="k8s",
            resource={"k8s.namespace.name": "bench", "k8s.pod.name": f"app{c}-0"},
            attributes={"log.iostream": "stdout", "log.file.path": f},
        )
        batches.append(
            (
                f"bench/app{c}-0/app{c}".encode(),
                Path(f).read_bytes().splitlines(),
                hashlib.blake2b(f.encode(), digest_size=16),
                template.record,
            )
        )
    total = sum(len(lines) for _, lines, _, _ in batches)
    p.produce(topic, b"warm-up", b"warm-up")
    p.flush(30)
    start, cpu = time.perf_counter(), time.process_time()
    observed = time.time_ns()
    parse_time = TimestampParser().parse
    offsets = [0] * len(batches)
    for i in range(0, max(len(lines) for _, lines, _, _ in batches), 1000):
        for b, (key, lines, seed, record) in enumerate(batches):
            offset = offsets[b]
            for line in lines[i : i + 1000]:
                ts, _stream, _tag, message = line.split(b" ", 3)
                h = seed.copy()
                h.update(b"%d" % offset)
                offset += len(line) + 1
                value = record(h.hexdigest(), parse_time(ts), observed, observed, message.decode())
                while True:
                    try:
                        p.produce(topic, value, key, -1, cb)
                        break
                    except BufferError:
                        p.poll(0.05)
            offsets[b] = offset
            p.poll(0)
    left = p.flush(120)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    acked = total - left - failed[0]
    return {
        "lines": total,
        "acked": acked,
        "seconds": seconds,
        "per_s": acked / seconds,
        "cpu_us_per_line": cpu * 1e6 / total,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def child_agent(bootstrap: str, topic: str, pods: str, ck_dir: str, expected: int, queue: int | None) -> dict:
    import threading

    from logtide.agents import metrics
    from logtide.agents.cli import build_agent
    from logtide.agents.config import AgentConfig
    from logtide.transport import connect

    config = AgentConfig.model_validate(
        {
            "mode": "kubernetes",
            "pods_root": pods,
            "containers_root": pods + "/none",
            "topic": topic,
            "checkpoint_dir": ck_dir,
            "kafka": {"bootstrap": bootstrap, "client": "confluent"},
            "kubernetes": {"enabled": False},
            "http": {"port": 0},
            **({"queue": {"max_records": queue}} if queue else {}),
        }
    )
    agent = build_agent(config, connect(config.kafka))
    from logtide.agents.agent import tune_gc

    tune_gc()  # as `logtide agent` does
    # as for raw: connected (and producer id assigned) before the clock starts
    agent.sender.producer.produce(topic, b"warm-up", b"warm-up")
    agent.sender.producer.flush(30)
    stop = threading.Event()
    t = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    produced = metrics.RECORDS_PRODUCED
    read_start = [None]
    lines_read = metrics.BYTES_READ

    t.start()
    deadline = time.monotonic() + 300
    while lines_read._value.get() == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    start, cpu = time.perf_counter(), time.process_time()
    # The last record of each stream waits multiline.timeout_seconds for continuation lines that
    # never come: a fixed latency, not throughput. The rate stops the clock before those records;
    # the time until every record was acknowledged is reported beside it.
    held = 2 * CONTAINERS
    while produced._value.get() < expected - held and time.monotonic() < deadline:
        time.sleep(0.001)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    while produced._value.get() < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    all_seconds = time.perf_counter() - start
    done = produced._value.get()
    stop.set()
    t.join(60)
    del read_start
    from logtide.agents import line_path

    return {
        "lines": expected,
        "acked": int(done),
        "seconds": seconds,
        "per_s": (expected - held) / seconds,
        "cpu_us_per_line": cpu * 1e6 / (expected - held),
        "native": line_path.NATIVE is not None,
        "seconds_until_all_acked": all_seconds,
        "per_s_until_all_acked": done / all_seconds,
        "multiline_merges": int(metrics.MULTILINE_MERGES._value.get()),
        "backpressure_seconds": round(metrics.BACKPRESSURE._value.get(), 2),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# --- the driver --------------------------------------------------------------------------------------


def run_child(args: list[str], env: dict | None = None) -> dict:
    res = subprocess.run(
        [sys.executable, __file__, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
    if res.returncode != 0:
        raise SystemExit(f"child failed: {res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--bootstrap", help="use this Kafka instead of the embedded broker")
    ap.add_argument("--queue", type=int, help="the agent's queue.max_records (default: the config default)")
    ap.add_argument(
        "--python-only",
        action="store_true",
        help="run the 'agent' row on the pure-Python line path too (no C extension built)",
    )
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "raw":
            out = child_raw(rest[0], rest[1], rest[2:])
        elif kind == "floor":
            out = child_floor(rest[0], rest[1], rest[2:])
        else:
            out = child_agent(rest[0], rest[1], rest[2], rest[3], int(rest[4]), int(rest[5]) or None)
        print(json.dumps(out))
        return 0

    from logtide.broker import given_or_embedded
    from logtide.transport import KafkaSettings, TopicSpec, connect

    bootstrap, stop_broker = given_or_embedded(
        args.bootstrap, log_file=os.path.join(tempfile.gettempdir(), "logtide-bench-agent-broker.log")
    )
    try:
        with tempfile.TemporaryDirectory(prefix="logtide-bench-agent-") as tmp:
            root = Path(tmp)
            files = write_cri_files(root / "pods", args.lines)
            total = (args.lines // CONTAINERS) * CONTAINERS
            size_mb = sum(f.stat().st_size for f in files) / 1e6
            suffix = str(int(time.time()))
            raw_topic, agent_topic = f"bench.agent.raw.{suffix}", f"bench.agent.agent.{suffix}"
            floor_topic, python_topic = f"bench.agent.floor.{suffix}", f"bench.agent.python.{suffix}"
            admin = connect(KafkaSettings(bootstrap=bootstrap, client="confluent")).admin()
            admin.create_topics([TopicSpec(t, PARTITIONS) for t in (raw_topic, floor_topic, agent_topic, python_topic)])
            admin.close()
            raw = run_child(["--child", "raw", bootstrap, raw_topic, *map(str, files)])
            floor = run_child(["--child", "floor", bootstrap, floor_topic, *map(str, files)])
            # the agent on its pure-Python line path, then on its native one (agents/line_path.py)
            python = run_child(
                [
                    "--child",
                    "agent",
                    bootstrap,
                    python_topic,
                    str(root / "pods"),
                    str(root / "ck-py"),
                    str(total),
                    str(args.queue or 0),
                ],
                {"LOGTIDE_AGENT_NATIVE": "0"},
            )
            agent = run_child(
                [
                    "--child",
                    "agent",
                    bootstrap,
                    agent_topic,
                    str(root / "pods"),
                    str(root / "ck"),
                    str(total),
                    str(args.queue or 0),
                ],
                {"LOGTIDE_AGENT_NATIVE": "0" if args.python_only else "1"},
            )
    finally:
        stop_broker()
    ratio = agent["per_s"] / raw["per_s"]
    # CPU per line: process CPU (all threads, the Kafka client's too) over the timed part; cores per
    # 10k lines/s is what a node pays for that rate: cpu_us_per_line * 10_000 / 1e6
    print(
        f"{'':<8}{'lines':>9}{'seconds':>9}{'lines/s':>10}{'CPU us/line':>13}{'cores/10k l/s':>15}{'peak RSS MB':>13}"
    )
    for name, r in (("raw", raw), ("floor", floor), ("python", python), ("agent", agent)):
        print(
            f"{name:<8}{r['acked']:>9}{r['seconds']:>9.2f}{r['per_s']:>10.0f}{r['cpu_us_per_line']:>13.2f}"
            f"{r['cpu_us_per_line'] / 100:>15.3f}{r['peak_rss_mb']:>13.1f}"
        )
    print(
        f"agent: the {'native' if agent['native'] else 'pure-Python'} line path; python: the pure-Python one; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        f"agent CPU per line / raw's = {agent['cpu_us_per_line'] / raw['cpu_us_per_line']:.2f} "
        f"(goal <= {1 / GOAL_RATIO:.2f}); python agent's / raw's = "
        f"{python['cpu_us_per_line'] / raw['cpu_us_per_line']:.2f}"
    )
    print(
        f"agent until every record was acknowledged (multi-line timeout included): "
        f"{agent['seconds_until_all_acked']:.2f} s, {agent['per_s_until_all_acked']:.0f} lines/s"
    )
    print(
        f"floor / raw = {floor['per_s'] / raw['per_s']:.3f}  (the least per-line work of the contract, see child_floor)"
    )
    print(f"agent / floor = {agent['per_s'] / floor['per_s']:.3f}")
    print(
        f"agent / raw = {ratio:.3f} (goal >= {GOAL_RATIO}); agent peak RSS {agent['peak_rss_mb']:.1f} MB "
        f"(goal <= {GOAL_RSS_MB}); {size_mb:.1f} MB of CRI files, {CONTAINERS} containers"
    )
    result = {
        "bench": "agent",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python bench/agent.py"
        + (f" --lines {args.lines}" if args.lines != 200_000 else "")
        + (" --python-only" if args.python_only else "")
        + (f" --queue {args.queue}" if args.queue else ""),
        "broker": "external" if args.bootstrap else "embedded tansu",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average": os.getloadavg()},
        "input": {
            "lines": total,
            "containers": CONTAINERS,
            "format": "cri",
            "mb": round(size_mb, 1),
            "corpus": "loghub (all files, cycled)",
        },
        "load_average": os.getloadavg(),
        "raw": raw,
        "floor": floor,
        "python_agent": python,
        "agent": agent,
        "agent_vs_raw": round(ratio, 3),
        "floor_vs_raw": round(floor["per_s"] / raw["per_s"], 3),
        "agent_vs_floor": round(agent["per_s"] / floor["per_s"], 3),
        "goals": {"ratio": GOAL_RATIO, "peak_rss_mb": GOAL_RSS_MB},
        "met": {"ratio": ratio >= GOAL_RATIO, "peak_rss": agent["peak_rss_mb"] <= GOAL_RSS_MB},
    }
    out = HERE / "results" / "agent.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""End-to-end latency: a line written to a container log file → `logtide agent` → logtide.raw.k8s →
`logtide process` → logtide.route.monitoring → `logtide alert` → webhook received.

Every role is a real subprocess on the embedded broker (confluent backend). This process writes Loghub
corpus lines in CRI framing to 4 container files at the target rate (all of them tailed by the agent
and run through the processor's pipeline; the errors among them go on to the alerting engine and its
rules), plus 10 probe lines per second (`level=error probe=<id>`), each of which opens a new alert
group (`match` rule, `group_wait: 0s`). The webhook receiver of bench/alerting.py (HMAC-checked)
notes when each probe's notification arrives; latency = arrival − the moment the line was written. Compare bench/alerting.py (the alerting
hop alone, from Kafka to the webhook).

    python bench/e2e.py [--rates 1000,5000] [--seconds 20]

Writes bench/results/e2e.json. The machine is shared (2 cores for the broker, three roles and this
writer): numbers are noisy.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import statistics
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
from tests.faults.chain import cri_line, write_yaml  # noqa: E402
from tests.faults.harness import RoleProcess  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "loghub"
PROBES_PER_S = 10
CONTAINERS = ("web", "auth", "db", "worker")
PIPELINE = [
    {"type": "parse", "formats": ["json", "syslog", "logfmt", "plain"]},
    {"type": "normalize"},
    {"type": "redact", "kinds": ["email", "password"]},
    {
        "type": "route",
        "rules": [{"when": "severity_number >= 17", "sinks": ["monitoring"]}, {"when": "true", "sinks": ["analytics"]}],
    },
]
RULES = {
    "rules": [
        {
            "name": "Probe",
            "kind": "match",
            "condition": "exists attributes.probe",
            "group_by": ["attributes.probe"],
            "window": "30s",
        },
        {
            "name": "ErrorBurst",
            "kind": "threshold",
            "condition": "severity_number >= 17",
            "group_by": ["service.name"],
            "count": 1000000,
            "window": "1m",
        },
    ]
}


def _alerting_bench():
    """bench/alerting.py: its signed-webhook probe receiver and percentile are reused here."""
    spec = importlib.util.spec_from_file_location("alerting_bench", HERE / "alerting.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


AB = _alerting_bench()


def corpus() -> list[bytes]:
    out = []
    for path in sorted(glob.glob(str(CORPUS / "*.log"))):
        with open(path, "rb") as f:
            out.extend(line for line in f.read().splitlines() if line.strip())
    return out


def run_rate(bootstrap: str, rate: int, seconds: float, lines: list[bytes], workdir: Path) -> dict:
    tag = uuid.uuid4().hex[:6]
    raw, prefix = f"bench.e2e.raw.{tag}", f"bench.e2e.{tag}."
    settings = KafkaSettings(bootstrap=bootstrap, client="confluent")
    admin = connect(settings).admin()
    admin.create_topics([TopicSpec(raw, 3), TopicSpec(prefix + "monitoring", 3)])
    admin.close()
    recv = AB.ProbeReceiver()
    pods = workdir / f"pods-{tag}"
    files = {}
    for n, c in enumerate(CONTAINERS):
        d = pods / f"shop_{c}-0_uid-{n}" / c
        d.mkdir(parents=True)
        files[c] = open(d / "0.log", "ab", buffering=0)
    kafka = {"bootstrap": bootstrap, "client": "confluent"}
    http = {"host": "127.0.0.1", "port": 0}
    write_yaml(workdir / f"rules-{tag}.yaml", RULES)
    configs = {
        "agent": write_yaml(
            workdir / f"agent-{tag}.yaml",
            {
                "kafka": kafka,
                "http": http,
                "mode": "kubernetes",
                "pods_root": str(pods),
                "containers_root": str(pods / "none"),
                "topic": raw,
                "checkpoint_dir": str(workdir / f"ck-{tag}"),
                "format": "cri",
                "kubernetes": {"enabled": False},
                "multiline": {"enabled": False},
                "read": {"scan_interval_seconds": 0.5, "idle_poll_seconds": 0.01},
            },
        ),
        "process": write_yaml(
            workdir / f"process-{tag}.yaml",
            {
                "kafka": {**kafka, "consumer": {"fetch.wait.max.ms": 20}},
                "http": http,
                "group_id": f"e2e-{tag}",
                "topics": [raw],
                "route_prefix": prefix,
                "session_timeout_seconds": 6,
                "pipeline": PIPELINE,
            },
        ),
        "alert": write_yaml(
            workdir / f"alert-{tag}.yaml",
            {
                "kafka": {**kafka, "consumer": {"fetch.wait.max.ms": 50}},
                "http": http,
                "topics": [prefix + "monitoring"],
                "group_id": f"e2e-alert-{tag}",
                "session_timeout_seconds": 6,
                "rules_files": [str(workdir / f"rules-{tag}.yaml")],
                "state_path": str(workdir / f"alert-{tag}.db"),
                "api": {"host": "127.0.0.1", "port": 0},
                "route": {
                    "receiver": "hook",
                    "group_by": ["alertname", "probe"],
                    "group_wait": "0s",
                    "group_interval": "1m",
                    "repeat_interval": "1h",
                },
                "receivers": [{"name": "hook", "webhook": [{"url": recv.url, "secrets": [AB.SECRET]}]}],
            },
        ),
    }
    roles = [
        RoleProcess(
            [name, "--config", path, "--log-level", "warning"],
            env={"PYTHONPATH": str(ROOT)},
            log_path=str(workdir / f"{name}-{tag}.log"),
        )
        for name, path in configs.items()
    ]
    sent: dict[str, float] = {}

    def probe(kind: str) -> None:
        pid = f"{kind}-{uuid.uuid4().hex[:8]}"
        now = time.time()
        files["web"].write(cri_line(b"level=error probe=" + pid.encode() + b' msg="probe"', time.time_ns()))
        sent[pid] = now

    try:
        for r in roles:
            r.start()
        recv.warm_up(lambda: probe("warmup"), 120, 2, f"no notification within 120 s; see the logs in {workdir}")
        sent.clear()
        started = time.monotonic()
        n = i = 0
        next_probe = started
        tick = 0.01
        while (now := time.monotonic()) - started < seconds:
            due = int((now - started) * rate) - n
            if due > 0:
                batch: dict[str, list[bytes]] = {c: [] for c in CONTAINERS}
                ts = time.time_ns()
                for k in range(due):
                    batch[CONTAINERS[(n + k) % len(CONTAINERS)]].append(cri_line(lines[i % len(lines)], ts + k))
                    i += 1
                for c, chunk in batch.items():
                    if chunk:
                        files[c].write(b"".join(chunk))
                n += due
            if now >= next_probe:
                probe("p")
                next_probe += 1.0 / PROBES_PER_S
            time.sleep(tick)
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + 60
        while len(recv.received) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        for r in roles:
            r.stop()
        recv.httpd.shutdown()
        for f in files.values():
            f.close()
    lat = [recv.received[p] - t for p, t in sent.items() if p in recv.received]
    return {
        "target_rate": rate,
        "achieved_rate": round(n / elapsed, 1),
        "lines": n,
        "probes": len(sent),
        "notified": len(lat),
        "bad_signatures": recv.bad,
        "p50_s": round(AB.pct(lat, 50), 4),
        "p99_s": round(AB.pct(lat, 99), 4),
        "max_s": round(max(lat), 4) if lat else None,
        "mean_s": round(statistics.mean(lat), 4) if lat else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="1000,5000")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--bootstrap", help="use this Kafka instead of the embedded broker")
    args = ap.parse_args()
    lines = corpus()
    bootstrap, stop_broker = given_or_embedded(args.bootstrap)
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-e2e-") as d:
            for rate in [int(r) for r in args.rates.split(",")]:
                results.append(run_rate(bootstrap, rate, args.seconds, lines, Path(d)))
                r = results[-1]
                print(
                    f"  {rate}/s: p50 {r['p50_s']} s, p99 {r['p99_s']} s ({r['notified']}/{r['probes']} probes)",
                    flush=True,
                )
    finally:
        stop_broker()
    print(f"\n{'rate/s':>7} {'achieved':>9} {'probes':>7} {'notified':>9} {'p50 s':>7} {'p99 s':>7} {'max s':>7}")
    for r in results:
        print(
            f"{r['target_rate']:>7} {r['achieved_rate']:>9} {r['probes']:>7} {r['notified']:>9} "
            f"{r['p50_s']:>7} {r['p99_s']:>7} {r['max_s']!s:>7}"
        )
    out = HERE / "results" / "e2e.json"
    out.write_text(
        json.dumps(
            {
                "bench": "e2e",
                "seconds": args.seconds,
                "loadavg": os.getloadavg()[0],
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "results": results,
            },
            indent=1,
        )
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

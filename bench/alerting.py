"""Alerting latency: from an event produced to Kafka to the webhook notification received.

The engine runs as a real `logtide alert --config ...` subprocess against the embedded broker
(or $LOGTIDE_BOOTSTRAP). This process produces background load from the Loghub corpus (all of it
evaluated by five rules: threshold, ratio, new_term, spike, absence) at the target rate, plus
probe events (10/s) that each open a new alert group; a local HTTP receiver verifies the HMAC
signature and records when each probe's notification arrives.

    python bench/alerting.py [--rates 1000,5000] [--seconds 20] [--groups 10,50000]

Writes bench/results/alerting.json. The machine is shared (2 cores): numbers are noisy.

    python bench/alerting.py --scale [--events 100000,200000] [--active 1000,10000,100000]

Cost at high cardinality (issue 22), without Kafka: ``logtide alert test`` (a subprocess, as an SRE
runs it) over generated events with one distinct user per 4 events, of a threshold rule grouped by
user and a new_term rule on it (events/s; 2x events should take ~2x time); and the engine's cost per
batch (2,000 events touching 100 keys) against the number of active keys it tracks (flat, not
linear), with the state size per key. Writes bench/results/alerting-scale.json.
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from logtide import envelope  # noqa: E402
from logtide.broker import given_or_embedded  # noqa: E402
from logtide.transport import KafkaSettings, TopicSpec, connect  # noqa: E402

from logtide.alerting.notifiers.webhook import verify  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "loghub"
SECRET = "bench-secret"
PROBES_PER_S = 10

RULES = """rules:
  - name: Probe
    kind: match
    condition: exists attributes.probe
    group_by: [attributes.probe]
    window: 30s
  - name: ErrorBurst
    kind: threshold
    condition: severity_number >= 17
    group_by: [service.name]
    count: 100000
    window: 1m
  - name: ErrorRatio
    kind: ratio
    errors: severity_number >= 17
    group_by: [service.name]
    above: 0.99
    window: 5m
  - name: NewWord
    kind: new_term
    field: attributes.word
    group_by: [service.name]
    learning: 1h
  - name: Volume
    kind: spike
    group_by: [service.name]
    window: 1m
    reference: 10m
  - name: Quiet
    kind: absence
    group_by: [service.name]
    window: 10m
"""


def corpus_events(limit: int = 20000) -> list[tuple[str, str]]:
    out = []
    for path in sorted(glob.glob(str(CORPUS / "*.log"))):
        service = Path(path).stem.split("_")[0].lower()
        with open(path, errors="replace") as fh:
            for line in fh:
                out.append((service, line.rstrip("\n")))
    return out[:limit] or [("demo", "INFO nothing to see")]


def level_of(line: str) -> str:
    for lv in ("FATAL", "ERROR", "WARN", "INFO", "DEBUG"):
        if lv in line:
            return lv
    return "INFO"


class ProbeReceiver:
    def __init__(self):
        self.received: dict[str, float] = {}
        self.bad = 0
        recv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.time()
                ok = verify(self.headers, body, [SECRET])
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if not ok:
                    recv.bad += 1
                    return
                for a in orjson.loads(body)["alerts"]:
                    probe = a["labels"].get("probe")
                    if probe and a["status"] == "firing":
                        recv.received.setdefault(probe, now)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def warm_up(self, probe, timeout: float, settle: float, failure: str) -> None:
        """Send a probe a second until one is notified (the whole chain answers), wait ``settle``
        seconds, forget what warm-up received; SystemExit(failure) after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self.received and time.monotonic() < deadline:
            probe()
            time.sleep(1)
        if not self.received:
            raise SystemExit(failure)
        time.sleep(settle)
        self.received.clear()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def engine_batches(port: int) -> dict:
    """Batches the engine handled and their mean evaluate / persist time, from its /metrics."""
    import urllib.request

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    vals: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("logtide_alerting_batch_seconds_") and ("_sum{" in line or "_count{" in line):
            name, value = line.rsplit(" ", 1)
            vals[name] = float(value)
    out = {}
    for stage in ("evaluate", "persist"):
        n = vals.get(f'logtide_alerting_batch_seconds_count{{stage="{stage}"}}', 0)
        total = vals.get(f'logtide_alerting_batch_seconds_sum{{stage="{stage}"}}', 0)
        out[stage] = {"batches": int(n), "mean_ms": round(1000 * total / n, 2) if n else None}
    return out


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


PER_USER_RULE = """  - name: PerUser
    kind: threshold
    group_by: [attributes.user]
    count: 100000
    window: 10m
    max_groups: 200000
"""


def tracked_keys(port: int, rule: str) -> float:
    import urllib.request

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(f'logtide_alerting_tracked_keys{{rule="{rule}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def proc_usage(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) and peak RSS in MB of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/status") as fh:
        hwm = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    return cpu, hwm / 1024


def run_rate(bootstrap: str, rate: int, seconds: float, lines, workdir: Path, groups: int = 0) -> dict:
    """``groups``: events also carry attributes.user (one of ``groups``) counted by a per-user rule,
    and every group gets an event before the timed run (so that many groups are active)."""
    topic = f"bench.alerting.{uuid.uuid4().hex[:8]}"
    transport = connect(KafkaSettings(bootstrap=bootstrap, client="confluent"))
    admin = transport.admin()
    admin.create_topics([TopicSpec(topic, 3)])
    admin.close()
    recv = ProbeReceiver()
    metrics_port = free_port()
    rules = workdir / f"rules-{rate}-{groups}.yaml"
    rules.write_text(RULES + (PER_USER_RULE if groups else ""))
    cfg = workdir / f"alert-{rate}.yaml"
    cfg.write_text(
        orjson.dumps(
            {
                "kafka": {"bootstrap": bootstrap, "client": "confluent", "consumer": {"fetch.wait.max.ms": 50}},
                "topics": [topic],
                "group_id": f"bench-{topic}",
                "rules_files": [str(rules)],
                "state_path": str(workdir / f"state-{rate}-{groups}.db"),
                "http": {"host": "127.0.0.1", "port": metrics_port},
                "api": {"host": "127.0.0.1", "port": 0},
                "log_level": "warning",
                "route": {
                    "receiver": "hook",
                    "group_by": ["alertname", "probe"],
                    "group_wait": "0s",
                    "group_interval": "1m",
                    "repeat_interval": "1h",
                },
                "receivers": [{"name": "hook", "webhook": [{"url": recv.url, "secrets": [SECRET]}]}],
            }
        ).decode()
    )
    engine = subprocess.Popen(
        [sys.executable, "-m", "logtide.cli", "alert", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / f"engine-{rate}.log", "wb"),
    )
    producer = transport.producer(linger_ms=2)
    sent: dict[str, float] = {}

    def produce(ev: dict, key: bytes) -> None:
        ev["ingest_time"] = time.time_ns()
        producer.produce(topic, envelope.encode(ev), key=key)

    def probe(tag: str) -> None:
        pid = f"{tag}-{uuid.uuid4().hex[:8]}"
        now = time.time_ns()
        ev = envelope.new_event(
            id=pid,
            body="probe",
            source="bench",
            time=now,
            observed_time=now,
            severity_text="INFO",
            attributes={"probe": pid},
            resource={"service.name": "bench"},
        )
        sent[pid] = time.time()
        produce(ev, pid.encode())
        producer.poll(0)

    try:

        def warm_up_probe():
            probe("warmup")
            producer.flush(5)

        # warm up: wait until the engine consumes and notifies
        recv.warm_up(warm_up_probe, 90, 1, f"engine did not notify within 90s; see {workdir}/engine-{rate}.log")
        sent.clear()
        if groups:
            t = time.time_ns()
            for g in range(groups):
                produce(
                    envelope.new_event(
                        id=f"fill-{g}",
                        body="fill",
                        source="bench",
                        time=t,
                        observed_time=t,
                        severity_text="INFO",
                        attributes={"user": f"u{g}"},
                        resource={"service.name": "bench"},
                    ),
                    b"fill%d" % (g % 64),
                )
                if g % 1000 == 0:
                    producer.poll(0)
            producer.flush(60)
            deadline = time.monotonic() + 120
            while tracked_keys(metrics_port, "PerUser") < groups and time.monotonic() < deadline:
                time.sleep(0.5)
        cpu0, _ = proc_usage(engine.pid)
        started = time.monotonic()
        n = i = 0
        next_probe = started
        interval = 1.0 / rate
        while time.monotonic() - started < seconds:
            target = started + n * interval
            now = time.monotonic()
            if target > now:
                time.sleep(min(target - now, 0.005))
                continue
            service, line = lines[i % len(lines)]
            i += 1
            t = time.time_ns()
            ev = envelope.new_event(
                id=f"{rate}-{n}",
                body=line,
                source="bench",
                time=t,
                observed_time=t,
                severity_text=level_of(line),
                attributes={"word": line.split(" ")[-1][:40], **({"user": f"u{n % groups}"} if groups else {})},
                resource={"service.name": service},
            )
            produce(ev, service.encode())
            n += 1
            if n % 500 == 0:
                producer.poll(0)
            if now >= next_probe:
                probe("p")
                next_probe += 1.0 / PROBES_PER_S
        producer.flush(30)
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + 30
        while len(recv.received) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.2)
        batches = engine_batches(metrics_port)
        cpu1, peak_rss = proc_usage(engine.pid)
        active = tracked_keys(metrics_port, "PerUser")
    finally:
        engine.terminate()
        try:
            engine.wait(30)
        except subprocess.TimeoutExpired:
            engine.kill()
        producer.close()
        recv.httpd.shutdown()
    lat = [recv.received[p] - t for p, t in sent.items() if p in recv.received]
    return {
        "target_rate": rate,
        "achieved_rate": round(n / elapsed, 1),
        "events": n,
        "probes": len(sent),
        "notified": len(lat),
        "bad_signatures": recv.bad,
        "p50_s": round(pct(lat, 50), 4),
        "p99_s": round(pct(lat, 99), 4),
        "max_s": round(max(lat), 4) if lat else None,
        "mean_s": round(statistics.mean(lat), 4) if lat else None,
        "engine_batches": batches,
        "groups": groups,
        "active_groups": active,
        "engine_peak_rss_mb": round(peak_rss, 1),
        "engine_cpu_us_per_event": round((cpu1 - cpu0) / max(n, 1) * 1e6, 1),
    }


SCALE_RULES = """rules:
  - name: UserErrors
    kind: threshold
    condition: severity_text == "ERROR"
    group_by: [attributes.user]
    count: 5
    window: 5m
    max_groups: 200000
  - name: NewUser
    kind: new_term
    field: attributes.user
    learning: 1m
    window: 5m
    max_groups: 200000
    max_terms: 200000
"""
T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z


def scale_event(i: int, n: int, keys: int) -> dict:
    """Event i of n spread over 10 minutes; user i % keys (one distinct user per n/keys events)."""
    return {
        "id": f"s{i}",
        "time": T0 + i * (600 * 10**9 // n),
        "body": f"request {i} failed" if i % 3 == 0 else "ok",
        "severity_text": "ERROR" if i % 3 == 0 else "INFO",
        "attributes": {"user": f"user-{i % keys}"},
    }


def bench_alert_test(n: int, workdir: Path) -> dict:
    keys = n // 4
    events = workdir / f"events-{n}.jsonl"
    with open(events, "wb") as fh:
        for i in range(n):
            fh.write(orjson.dumps(scale_event(i, n, keys)) + b"\n")
    rules = workdir / "rules.yaml"
    rules.write_text(SCALE_RULES)
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "logtide.cli", "alert", "test", str(rules), str(events)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"alert test failed: {out.stderr[-2000:]}")
    summary = [line for line in out.stdout.splitlines() if line.startswith(("summary", "  UserErrors", "  NewUser"))]
    return {
        "events": n,
        "keys": keys,
        "bytes": events.stat().st_size,
        "seconds": round(elapsed, 2),
        "events_per_s": round(n / elapsed),
        "summary": summary,
    }


def bench_batch_cost(active: int) -> dict:
    """Seconds per ingest of a 2,000-event batch touching 100 keys, with ``active`` keys tracked."""
    import tracemalloc

    import yaml

    from logtide.envelope import new_event

    from logtide.alerting.backtest import offline_config
    from logtide.alerting.engine import AlertEngine
    from logtide.alerting.rules import parse_rules
    from logtide.alerting.store import Store

    rules = parse_rules(yaml.safe_load(SCALE_RULES.replace("200000", str(2 * active))), "bench.yaml")
    engine = AlertEngine(offline_config(None), rules, Store(":memory:"), notify=lambda n: None)

    def ev(i: int, user: int, t: int) -> dict:
        return new_event(
            id=f"b{i}",
            body="request failed",
            source="bench",
            time=t,
            observed_time=t,
            severity_text="ERROR" if i % 3 == 0 else "INFO",
            attributes={"user": f"user-{user}"},
        )

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    step = 10**9 // 2000  # 2,000 events per second of event time
    i = 0
    for start in range(0, active, 2000):  # every key once, within 60 s of event time
        engine.ingest(
            [(ev(i + k, start + k, T0 + (i + k) * (60 * 10**9 // active)), 0) for k in range(min(2000, active - start))]
        )
        i += 2000
    per_key = (tracemalloc.get_traced_memory()[0] - before) / active
    tracemalloc.stop()
    t = T0 + 61 * 10**9
    times = []
    for b in range(30):  # 30 batches, 2,000 events on 100 keys each, one second of event time apart
        batch = [(ev(10**7 + b * 2000 + k, k % 100, t + k * step), 0) for k in range(2000)]
        t0 = time.perf_counter()
        engine.ingest(batch)
        engine.persist()
        times.append(time.perf_counter() - t0)
        t += 10**9
    tracked = sum(len(e.series) for e in engine.evaluators.values())
    return {
        "active_keys": active,
        "tracked_series": tracked,
        "batch_ms_median": round(statistics.median(times) * 1000, 2),
        "batch_ms_p90": round(pct(times, 90) * 1000, 2),
        "state_bytes_per_key": round(per_key),
    }


def scale(args) -> int:
    results: dict = {"alert_test": [], "batch_cost": []}
    with tempfile.TemporaryDirectory(prefix="bench-alerting-scale-") as d:
        for n in [int(x) for x in args.events.split(",")]:
            r = bench_alert_test(n, Path(d))
            results["alert_test"].append(r)
            print(
                f"alert test: {r['events']} events, {r['keys']} keys, {r['bytes'] // 1_000_000} MB: "
                f"{r['seconds']} s, {r['events_per_s']} events/s"
            )
            for line in r["summary"]:
                print("   ", line)
    for active in [int(x) for x in args.active.split(",")]:
        r = bench_batch_cost(active)
        results["batch_cost"].append(r)
        print(
            f"batch of 2000 events on 100 keys with {active} active keys: median {r['batch_ms_median']} ms, "
            f"p90 {r['batch_ms_p90']} ms; state {r['state_bytes_per_key']} B per key"
        )
    results["loadavg"] = os.getloadavg()
    out = ROOT / "bench" / "results" / "alerting-scale.json"
    out.write_text(
        orjson.dumps(
            {"bench": "alerting-scale", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **results},
            option=orjson.OPT_INDENT_2,
        ).decode()
    )
    print(f"load average {results['loadavg']}; wrote {out}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="1000,5000")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument(
        "--groups",
        default="0",
        help="comma list: also a per-user rule with this many active groups (0: none), e.g. 10,50000",
    )
    ap.add_argument("--scale", action="store_true", help="the high-cardinality benchmarks (no Kafka)")
    ap.add_argument("--events", default="100000,200000", help="--scale: alert test sizes")
    ap.add_argument("--active", default="1000,10000,100000", help="--scale: active keys for the batch cost")
    args = ap.parse_args()
    if args.scale:
        return scale(args)
    lines = corpus_events()
    bootstrap, stop_broker = given_or_embedded(os.environ.get("LOGTIDE_BOOTSTRAP"))
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-alerting-") as d:
            for rate in [int(r) for r in args.rates.split(",")]:
                for groups in [int(g) for g in args.groups.split(",")]:
                    results.append(run_rate(bootstrap, rate, args.seconds, lines, Path(d), groups))
    finally:
        stop_broker()
    print(f"{'rate/s':>7} {'achieved':>9} {'probes':>7} {'notified':>9} {'p50 s':>7} {'p99 s':>7} {'max s':>7}")
    for r in results:
        print(
            f"{r['target_rate']:>7} {r['achieved_rate']:>9} {r['probes']:>7} {r['notified']:>9} "
            f"{r['p50_s']:>7} {r['p99_s']:>7} {r['max_s']!s:>7}   engine batches: {r['engine_batches']}"
        )
        if r["groups"]:
            print(
                f"        groups {r['groups']} (active {r['active_groups']:.0f}): engine peak RSS "
                f"{r['engine_peak_rss_mb']} MB, CPU {r['engine_cpu_us_per_event']} us/event"
            )
    out = ROOT / "bench" / "results" / ("alerting.json" if args.groups == "0" else "alerting-groups.json")
    out.write_text(
        orjson.dumps(
            {
                "bench": "alerting",
                "goal": "p99 <= 1 s",
                "seconds": args.seconds,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "loadavg": os.getloadavg(),
                "results": results,
            },
            option=orjson.OPT_INDENT_2,
        ).decode()
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

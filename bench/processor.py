"""Processor throughput: the reference pipeline (parse JSON + normalize + redact + route to 3 topics)
on one core, against (a) the same client's consume→produce passthrough and (b) Quix Streams 3.x
running the same pipeline, on the same broker, in the same run.

All three read the same input topic (demo-source events: JSON, plain, access-log and stack-trace
bodies with e-mail addresses; 3 partitions) from the start as a fresh consumer group, produce with the
same client settings (acks=all, idempotence, lz4, linger 5 ms) and count an input done only once its
outputs are acknowledged (logtide: per batch, before the offset commit; Quix: at its checkpoint, the
run ends when its last checkpoint is committed). The clock starts at the first record received (the
group join is not timed). The process is pinned to one CPU; the embedded broker is not.

    python bench/processor.py                      # 100k events, 3 rounds, pinned to CPU 1
    python bench/processor.py --events 20000 --rounds 1
    python bench/processor.py --profile            # cProfile of the processor's handler without Kafka
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from logtide import envelope  # noqa: E402
from logtide.broker import given_or_embedded  # noqa: E402
from logtide.consume import BatchLoop  # noqa: E402
from logtide.transport import KafkaSettings, TopicSpec, connect  # noqa: E402

PARTITIONS = 3
SINKS = ("monitoring", "audit", "analytics")
#: The reference pipeline of the issue: parse JSON + normalize + redact + route to 3 topics.
REFERENCE = [
    {"type": "parse", "formats": ["json"]},
    {"type": "normalize"},
    {"type": "redact"},  # every built-in kind: email, card, bearer, jwt, aws_key, password, ipv4, ipv6
    {
        "type": "route",
        "rules": [
            {"when": "severity_number >= 17", "sinks": ["monitoring"]},
            {"when": 'resource["service.name"] in ["auth", "payments"]', "sinks": ["audit"]},
            {"when": "true", "sinks": ["analytics"]},
        ],
    },
]
MAX_BATCH = 2000  # records per batch for both logtide loops (--max-batch)
PRODUCER = {"linger.ms": 5, "compression.type": "lz4", "enable.idempotence": True, "acks": "all"}


def make_input(settings: KafkaSettings, topic: str, n: int) -> int:
    from logtide.collectors.demo import DemoLogs

    gen = DemoLogs(seed=7)
    producer = connect(settings).producer()
    size = 0
    for _ in range(n):
        event, key = gen.next()
        event["ingest_time"] = time.time_ns()
        value = envelope.encode(event)
        size += len(value)
        producer.produce(topic, value, key=key)  # as sources write them: no headers
        producer.poll(0)
    assert producer.flush(60) == 0
    producer.close()
    return size // n


def create(settings, names: list[str]) -> None:
    admin = connect(settings).admin()
    try:
        admin.create_topics([TopicSpec(t, PARTITIONS) for t in names])
    finally:
        admin.close()


class Timed:
    """Wraps a batch handler: the clock starts at the first batch and stops when n inputs are durable."""

    def __init__(self, handler, n: int, stop: threading.Event):
        self.handler, self.n, self.stop = handler, n, stop
        self.count, self.t0, self.t1, self.c0, self.c1 = 0, None, None, None, None

    def __call__(self, batch):
        if self.t0 is None:
            self.t0, self.c0 = time.perf_counter(), time.process_time()
        self.handler(batch)
        self.count += len(batch)
        if self.count >= self.n and self.t1 is None:
            self.t1, self.c1 = time.perf_counter(), time.process_time()
            self.stop.set()

    def rate(self) -> tuple[float, float]:
        """(events per wall-clock second, events per CPU-second of this process)"""
        return self.count / (self.t1 - self.t0), self.count / (self.c1 - self.c0)


def run_loop(settings, raw: str, n: int, handler_for, label: str) -> tuple[float, float]:
    transport = connect(settings)
    stop = threading.Event()
    handler, cleanup = handler_for(transport)
    timed = Timed(handler, n, stop)
    loop = BatchLoop(
        transport,
        component=f"bench-{label}",
        group_id=f"bench-{label}-{uuid.uuid4().hex[:6]}",
        topics=[raw],
        handler=timed,
        max_batch=MAX_BATCH,
        session_timeout_seconds=6,
    )
    thread = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    thread.start()
    thread.join(600)
    cleanup()
    return timed.rate()


def passthrough(settings, raw: str, n: int) -> tuple[float, float]:
    """consume → produce the same bytes (key, headers) → flush → commit: the client's ceiling."""
    out = f"bench.pass.{uuid.uuid4().hex[:6]}"
    create(settings, [out])

    def handler_for(transport):
        producer = transport.producer()
        errors = [0]

        def delivered(err, rec):
            if err is not None:
                errors[0] += 1

        def handle(batch):
            produce = producer.produce
            for rec in batch:
                produce(out, rec.value, key=rec.key, headers=rec.headers, on_delivery=delivered)
            if producer.flush(30) or errors[0]:
                raise RuntimeError("passthrough lost records")

        return handle, producer.close

    return run_loop(settings, raw, n, handler_for, "passthrough")


def floor(settings, raw: str, n: int) -> tuple[float, float]:
    """The least per-event work of the reference pipeline, in one tight handler: decode and validate
    the envelope, a JSON body into attributes (message and level out of it), redaction of body and
    attributes with the processor's own engine (all 8 kinds; one alternation pass behind exact
    pre-checks, the cheapest correct redaction we have), the three route rules inline, one encode,
    one send per sink (no headers), acks as the processor learns them. No step framework,
    per-source normalize, DLQ paths, metrics or lag. What a processor in Python can hardly beat; the
    processor's distance to it is what our pipeline costs."""
    import orjson

    from logtide.processors.steps.redact import ALL_KINDS, Redactor

    prefix = f"bench.floor.{uuid.uuid4().hex[:6]}."
    create(settings, [prefix + s for s in SINKS])

    def handler_for(transport):
        producer = transport.producer(report_successes=False)
        failures = [0]

        def failed(err, rec):
            failures[0] += 1

        sends = {s: producer.bind(prefix + s, failed) for s in SINKS}
        redact = Redactor(list(ALL_KINDS)).redact_value
        decode, loads, dumps = envelope.decode, orjson.loads, orjson.dumps
        severity_number = envelope.severity_number

        def handle(batch):
            for rec in batch:
                event = decode(rec.value, check_depth=False)
                body = event["body"]
                if type(body) is str and body[:1] == "{":
                    try:
                        parsed = loads(body)
                    except orjson.JSONDecodeError:
                        parsed = None
                    if type(parsed) is dict:
                        event["attributes"].update(parsed)
                        message = parsed.get("msg", parsed.get("message"))
                        if type(message) is str:
                            event["body"] = message
                        level = parsed.get("level")
                        if type(level) is str:
                            event["severity_text"], event["severity_number"] = level, severity_number(level)
                event["body"] = redact(event["body"])
                event["attributes"] = redact(event["attributes"])
                sinks = ["analytics"]
                if event["severity_number"] >= 17:
                    sinks.append("monitoring")
                if event["resource"].get("service.name") in ("auth", "payments"):
                    sinks.append("audit")
                event["routes"] = sinks
                value = dumps(event)
                for sink in sinks:
                    sends[sink](value, rec.key, None)
            if producer.flush(30) or failures[0]:
                raise RuntimeError("floor lost records")

        return handle, producer.close

    return run_loop(settings, raw, n, handler_for, "floor")


def logtide_processor(settings, raw: str, n: int) -> tuple[float, float]:
    from logtide.processors.app import Processor, ProcessorConfig, build_pipeline
    from logtide.processors.steps import StepContext

    prefix = f"bench.route.{uuid.uuid4().hex[:6]}."
    create(settings, [prefix + s for s in SINKS])
    config = ProcessorConfig(
        kafka=settings,
        topics=[raw],
        route_prefix=prefix,
        pipeline=REFERENCE,
        group_id=f"bench-logtide-{uuid.uuid4().hex[:6]}",
        session_timeout_seconds=6,
        max_batch=MAX_BATCH,
    )
    transport = connect(settings)
    ctx = StepContext(sinks=SINKS)
    proc = Processor(config, transport, build_pipeline(config, "reference", ctx), ctx)
    stop = threading.Event()
    timed = Timed(proc.loop.handler, n, stop)
    proc.loop.handler = timed
    thread = threading.Thread(target=proc.run, args=(stop,), daemon=True)
    thread.start()
    thread.join(600)
    return timed.rate()


def quix(settings, raw: str, n: int) -> tuple[float, float]:
    """The same steps inside Quix Streams: deserialize JSON, the pipeline, three filtered branches to topics."""
    import logging

    from quixstreams import Application

    from logtide.processors.pipeline import Pipeline, build_steps
    from logtide.processors.steps import StepContext

    prefix = f"bench.quix.{uuid.uuid4().hex[:6]}."
    create(settings, [prefix + s for s in SINKS])
    pipeline = Pipeline(build_steps(REFERENCE, StepContext(sinks=SINKS)))
    app = Application(
        broker_address=settings.bootstrap,
        consumer_group=f"bench-quix-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        loglevel=logging.WARNING,
        auto_create_topics=True,
        producer_extra_config=dict(PRODUCER),
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1200},
    )
    source = app.topic(raw, value_deserializer="json", key_deserializer="bytes")
    state = {"count": 0, "t0": None, "c0": None}

    def process(event):
        if state["t0"] is None:
            state["t0"], state["c0"] = time.perf_counter(), time.process_time()
        outputs = pipeline.run(envelope.validate(envelope.upgrade(event)))
        return outputs[0][0] if outputs else None

    def done(_event):
        state["count"] += 1
        if state["count"] >= n:
            app.stop()

    sdf = app.dataframe(source)
    sdf = sdf.apply(process).filter(lambda e: e is not None)
    for sink in SINKS:
        target = app.topic(prefix + sink, value_serializer="json", key_serializer="bytes")
        sdf.filter(lambda e, s=sink: s in e["routes"]).to_topic(target)
    sdf.update(done)
    app.run()
    t1, c1 = time.perf_counter(), time.process_time()  # run() returns after the final checkpoint
    return state["count"] / (t1 - state["t0"]), state["count"] / (c1 - state["c0"])


class _CountingProducer:
    """A producer that only counts: the processor's own work without Kafka's."""

    def __init__(self):
        self.produced = 0

    def produce(self, topic, value, key=None, headers=None, partition=None, on_delivery=None, timestamp_ms=None):
        self.produced += 1

    def bind(self, topic, on_delivery):
        return lambda value, key, headers: self.produce(topic, value, key, headers)

    def flush(self, timeout=None):
        return 0

    def poll(self, timeout=0.0):
        return 0

    def close(self):
        pass


class _NoKafka:
    name = "none"

    def producer(self, **_):
        return _CountingProducer()


def profile(n: int) -> None:
    """Where the handler's time goes without Kafka: ``Processor.handle`` on batches of records (decode →
    pipeline → encode, metrics) with a producer that only counts."""
    import cProfile
    import pstats

    from logtide.collectors.demo import DemoLogs
    from logtide.transport import Record
    from logtide.processors.app import Processor, ProcessorConfig, build_pipeline
    from logtide.processors.steps import StepContext

    gen = DemoLogs(seed=7)
    records = []
    for i in range(n):
        event, key = gen.next()
        event["ingest_time"] = time.time_ns()
        records.append(Record("raw", i % PARTITIONS, i, key, envelope.encode(event), None, None))
    config = ProcessorConfig(
        kafka=KafkaSettings(bootstrap="unused:9092"), topics=["raw"], pipeline=REFERENCE, max_batch=MAX_BATCH
    )

    def handler():
        ctx = StepContext(sinks=SINKS)
        return Processor(config, _NoKafka(), build_pipeline(config, "reference", ctx), ctx)

    def work(proc):
        for i in range(0, n, MAX_BATCH):
            proc.handle(records[i : i + MAX_BATCH])

    proc = handler()
    t, c = time.perf_counter(), time.thread_time()
    work(proc)
    wall, cpu = time.perf_counter() - t, time.thread_time() - c
    print(
        f"no Kafka: {n / wall:,.0f} events/s, {cpu / n * 1e6:.1f} us CPU per event, "
        f"{proc.producer.produced / n:.2f} outputs per event"
    )
    prof = cProfile.Profile()
    prof.runcall(work, handler())
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def main() -> int:
    global MAX_BATCH
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bootstrap", help="use this Kafka instead of the embedded broker")
    ap.add_argument("--cpu", type=int, default=1, help="CPU to pin this process to (-1: no pinning)")
    ap.add_argument("--no-quix", action="store_true")
    ap.add_argument("--max-batch", type=int, default=2000, help="records per batch (logtide and passthrough)")
    ap.add_argument("--profile", action="store_true", help="profile the handler without Kafka and exit")
    args = ap.parse_args()
    MAX_BATCH = args.max_batch
    if args.profile:
        profile(min(args.events, 50_000))
        return 0
    bootstrap, stop_broker = given_or_embedded(args.bootstrap)  # before pinning: the broker keeps both CPUs
    if args.cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    settings = KafkaSettings(bootstrap=bootstrap, client="confluent")
    try:
        raw = f"bench.raw.{uuid.uuid4().hex[:6]}"
        create(settings, [raw])
        t = time.perf_counter()
        avg = make_input(settings, raw, args.events)
        print(
            f"input: {args.events} demo events, ~{avg} bytes each, {PARTITIONS} partitions "
            f"(produced in {time.perf_counter() - t:.1f}s)",
            flush=True,
        )
        runs = {"passthrough": [], "floor": [], "logtide": [], "quix": []}
        cpu = {"passthrough": [], "floor": [], "logtide": [], "quix": []}
        for r in range(args.rounds):
            for name, fn in (
                ("passthrough", passthrough),
                ("floor", floor),
                ("logtide", logtide_processor),
                ("quix", quix),
            ):
                if name == "quix" and args.no_quix:
                    continue
                wall, per_cpu = fn(settings, raw, args.events)
                runs[name].append(wall)
                cpu[name].append(per_cpu)
                print(f"round {r + 1}  {name:<12} {wall:>10,.0f} events/s   {per_cpu:>10,.0f} events/CPU-s", flush=True)
        med = {k: statistics.median(v) for k, v in runs.items() if v}
        med_cpu = {k: statistics.median(v) for k, v in cpu.items() if v}
        result = {
            "command": "python " + " ".join([os.path.relpath(sys.argv[0], HERE.parent)] + sys.argv[1:]),
            "events": args.events,
            "rounds": args.rounds,
            "max_batch": MAX_BATCH,
            "partitions": PARTITIONS,
            "avg_value_bytes": avg,
            "pinned_cpu": args.cpu,
            "machine": f"{platform.machine()} {os.cpu_count()} CPUs, shared, noisy",
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
            "pipeline": REFERENCE,
            "events_per_s": runs,
            "events_per_cpu_s": cpu,
            "median": med,
            "median_per_cpu_s": med_cpu,
            "ratio_vs_passthrough": med["logtide"] / med["passthrough"],
            "floor_vs_passthrough": med["floor"] / med["passthrough"],
            "ratio_vs_floor": med["logtide"] / med["floor"],
            "ratio_vs_quix": (med["logtide"] / med["quix"]) if "quix" in med else None,
            "cpu_ratio_vs_passthrough": med_cpu["logtide"] / med_cpu["passthrough"],
            "cpu_ratio_vs_quix": (med_cpu["logtide"] / med_cpu["quix"]) if "quix" in med_cpu else None,
            # Each round runs the three back to back: its ratios see the same machine load.
            "round_ratios_vs_passthrough": [lt / pt for lt, pt in zip(runs["logtide"], runs["passthrough"])],
            "round_ratios_vs_quix": [lt / q for lt, q in zip(runs["logtide"], runs["quix"])],
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if runs["quix"]:
            result["median_round_ratio_vs_quix"] = statistics.median(result["round_ratios_vs_quix"])
        result["median_round_ratio_vs_passthrough"] = statistics.median(result["round_ratios_vs_passthrough"])
        print()
        print(f"{'':<24}{'events/s':>12}{'events/CPU-s':>14}{'CPU us/event':>14}   (medians of {args.rounds} rounds)")
        for k, v in med.items():
            print(f"{k:<24}{v:>12,.0f}{med_cpu[k]:>14,.0f}{1e6 / med_cpu[k]:>14.1f}")
        print(
            f"logtide / passthrough   {result['ratio_vs_passthrough']:>12.2f}"
            f"{result['cpu_ratio_vs_passthrough']:>14.2f}   (goal >= 0.50; median of per-round ratios "
            f"{result['median_round_ratio_vs_passthrough']:.2f})"
        )
        print(
            f"floor / passthrough     {result['floor_vs_passthrough']:>12.2f}   (the least work of the "
            f"reference pipeline, see floor())"
        )
        print(f"logtide / floor         {result['ratio_vs_floor']:>12.2f}")
        if result["ratio_vs_quix"]:
            print(
                f"logtide / quix streams  {result['ratio_vs_quix']:>12.2f}{result['cpu_ratio_vs_quix']:>14.2f}"
                f"   (goal >= 1.5; median of per-round ratios {result['median_round_ratio_vs_quix']:.2f})"
            )
        out = HERE / "results" / "processor.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"raw numbers: {out}")
        return 0
    finally:
        stop_broker()


if __name__ == "__main__":
    sys.exit(main())

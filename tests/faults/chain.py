"""The logtide chain as users run it, for the fault tests: container log files (Loghub corpus lines in
CRI framing) → `logtide agent` → logtide.raw.k8s → `logtide process` → logtide.route.<sink> →
`logtide sink` (audit archive + Parquet), each role a real subprocess (tests.faults.harness.RoleProcess).

Counting is by the envelope id (deterministic: file identity + byte offset): a line is "delivered" to a
stage when its id is there; a duplicate is a second record with an id already seen."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading
import time

import orjson
import yaml

from logtide import envelope
from logtide.transport import KafkaSettings, TopicSpec, connect
from tests.conftest import CORPUS, ROOT
from tests.faults.conftest import read_topic
from tests.faults.harness import RoleProcess

RAW = "logtide.raw.k8s"
AUDIT_KEY = "fault-suite-key"
#: the container whose lines go to the audit sink (every line goes to analytics)
AUDITED = "auth"

PIPELINE = [
    {"type": "parse", "formats": ["json", "syslog", "logfmt", "plain"]},
    {"type": "normalize"},
    {"type": "redact", "kinds": ["email", "password"]},
    {
        "type": "route",
        "rules": [
            {"when": "severity_number >= 17", "sinks": ["monitoring"]},
            {"when": f'resource["k8s.container.name"] == "{AUDITED}"', "sinks": ["audit"]},
            {"when": "true", "sinks": ["analytics"]},
        ],
    },
]


def cri_line(body: bytes, ts_ns: int) -> bytes:
    secs, ns = divmod(ts_ns, 10**9)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".%09dZ" % ns
    return stamp.encode() + b" stdout F " + body + b"\n"


def corpus_lines(name: str) -> list[bytes]:
    with open(os.path.join(CORPUS, name), "rb") as f:
        return [line for line in f.read().splitlines() if line.strip()]


class CorpusWriter:
    """Appends corpus lines as CRI records to one file per container, like the kubelet does."""

    def __init__(self, pods_root, containers: dict[str, str]):
        # containers: container name → corpus file name
        self.files = {}
        self.lines = {}
        for n, (container, corpus) in enumerate(sorted(containers.items())):
            d = os.path.join(str(pods_root), f"shop_{container}-0_uid-{n}", container)
            os.makedirs(d, exist_ok=True)
            self.files[container] = open(os.path.join(d, "0.log"), "ab", buffering=0)
            self.lines[container] = corpus_lines(corpus)
        self.written = {c: 0 for c in containers}

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.lines.values())

    def write_all(self, seconds: float, stop: threading.Event | None = None) -> None:
        """Write every line, spread evenly over ``seconds`` (in small batches)."""
        rounds = max(1, int(seconds / 0.05))
        for r in range(rounds):
            if stop is not None and stop.is_set():
                return
            for c, lines in self.lines.items():
                upto = len(lines) * (r + 1) // rounds
                chunk = lines[self.written[c] : upto]
                if chunk:
                    now = time.time_ns()
                    self.files[c].write(b"".join(cri_line(b, now + i) for i, b in enumerate(chunk)))
                    self.written[c] = upto
            time.sleep(0.05)

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def _key_file(workdir) -> str:
    """The audit key as a mounted secret (an inline hmac_key is refused)."""
    path = os.path.join(str(workdir), "audit.key")
    with open(path, "w") as f:
        f.write(AUDIT_KEY)
    return path


def write_yaml(path, data: dict) -> str:
    with open(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return str(path)


class TopicCounter:
    """One consumer that follows a topic from offset 0 and counts ids, for polling loops (creating and
    closing a librdkafka consumer every second aborted the test process once in a while)."""

    def __init__(self, settings: KafkaSettings, topic: str, keep_events: bool = False):
        self.consumer = connect(settings).consumer(None)
        self.topic = topic
        self.keep_events = keep_events
        self.ids: collections.Counter = collections.Counter()
        self.events: list[dict] = []
        self.assigned = False

    def update(self) -> collections.Counter:
        if not self.assigned:
            parts = self.consumer.partitions_for(self.topic)
            if not parts:
                return self.ids
            self.consumer.assign(parts)
            for tp in parts:
                self.consumer.seek(tp, 0)
            self.assigned = True
        while True:
            batch = self.consumer.poll_batch(10_000, 0.3)
            if not batch:
                return self.ids
            for rec in batch:
                event = envelope.decode(rec.value)
                self.ids[event["id"]] += 1
                if self.keep_events:
                    self.events.append(event)

    def close(self) -> None:
        self.consumer.close()


class Chain:
    """Configs and role processes of the chain under ``workdir`` against ``bootstrap``."""

    def __init__(
        self,
        workdir,
        bootstrap: str,
        containers: dict[str, str],
        *,
        roles=("agent", "process", "sink"),
        agent_queue: int = 500,
        kafka: dict | None = None,
    ):
        """``kafka``: the roles' (and the test's readers') ``kafka:`` block, default plaintext confluent."""
        self.workdir = workdir
        self.bootstrap = bootstrap
        kafka = kafka or {"bootstrap": bootstrap, "client": "confluent"}
        self.settings = KafkaSettings(**kafka)
        self.pods = workdir / "pods"
        self.writer = CorpusWriter(self.pods, containers)
        self.checkpoints = workdir / "agent-ck"
        http = {"host": "127.0.0.1", "port": 0}
        self.configs = {
            "agent": write_yaml(
                workdir / "agent.yaml",
                {
                    "kafka": kafka,
                    "http": http,
                    "mode": "kubernetes",
                    "pods_root": str(self.pods),
                    "containers_root": str(self.pods / "none"),
                    "topic": RAW,
                    "checkpoint_dir": str(self.checkpoints),
                    "checkpoint_interval_seconds": 0.2,
                    "format": "cri",
                    "kubernetes": {"enabled": False},
                    "multiline": {"enabled": False},
                    "queue": {"max_records": agent_queue},
                    "read": {"scan_interval_seconds": 0.2, "idle_poll_seconds": 0.02},
                },
            ),
            "process": write_yaml(
                workdir / "process.yaml",
                {
                    "kafka": kafka,
                    "http": http,
                    "group_id": "fault-processors",
                    "topics": [RAW],
                    "session_timeout_seconds": 6,
                    "partitions": 3,
                    "max_batch": 500,
                    "pipeline": PIPELINE,
                },
            ),
            "sink": write_yaml(
                workdir / "sink.yaml",
                {
                    "kafka": kafka,
                    "http": http,
                    "audit": {
                        "session_timeout_seconds": 6,
                        "max_batch": 500,
                        "storage": {"path": str(workdir / "audit")},
                        "hmac_key": f"file:{_key_file(workdir)}",
                        "roll_bytes": 100_000,
                    },
                    "analytics": {
                        "session_timeout_seconds": 6,
                        "max_batch": 500,
                        "parquet": {"path": str(workdir / "parquet")},
                    },
                },
            ),
        }
        self.counters: dict[str, TopicCounter] = {}
        self.roles = {
            name: RoleProcess(
                [name, "--config", self.configs[name], "--log-level", "warning"],
                env={"PYTHONPATH": ROOT},
                log_path=str(workdir / f"{name}.log"),
            )
            for name in roles
        }

    def create_topics(self) -> None:
        admin = connect(self.settings).admin()
        try:
            admin.create_topics([TopicSpec(RAW, 3)])
        finally:
            admin.close()

    def start(self) -> None:
        for role in self.roles.values():
            role.start()

    def stop(self) -> dict[str, int | None]:
        codes = {name: role.stop() for name, role in self.roles.items()}
        self.writer.close()
        return codes

    def dead_roles(self) -> list[str]:
        return [name for name, role in self.roles.items() if not role.alive()]

    def log_tail(self, name: str, n: int = 3000) -> str:
        try:
            with open(self.workdir / f"{name}.log", "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    # --- counting ---------------------------------------------------------------------------

    def counter(self, topic: str, keep_events: bool = False) -> TopicCounter:
        """The chain's one following reader of ``topic`` (closed by ``close_readers``)."""
        if topic not in self.counters:
            self.counters[topic] = TopicCounter(self.settings, topic, keep_events)
        return self.counters[topic]

    def distinct(self, topic: str) -> int:
        return len(self.counter(topic).update())

    def close_readers(self) -> None:
        for c in self.counters.values():
            c.close()
        self.counters.clear()

    def topic_ids(self, topic: str) -> collections.Counter:
        return collections.Counter(envelope.decode(r.value)["id"] for r in read_topic(self.settings, topic))

    def raw_events(self) -> list[dict]:
        return [envelope.decode(r.value) for r in read_topic(self.settings, RAW)]

    def audit_ids(self) -> collections.Counter:
        ids = collections.Counter()
        for root, _, files in os.walk(self.workdir / "audit"):
            for name in files:
                if name.startswith("seg-"):
                    with open(os.path.join(root, name), "rb") as f:
                        ids.update(orjson.loads(x)["id"] for x in f.read().splitlines()[1:] if x.strip())
        return ids

    def parquet_counts(self) -> tuple[int, int]:
        """(rows, distinct ids) over every stored row of the analytics dataset."""
        from logtide.processors.sinks.analytics.query import run_query

        if not os.path.isdir(self.workdir / "parquet"):
            return 0, 0
        try:
            rows = run_query(str(self.workdir / "parquet"), "SELECT count(*), count(DISTINCT id) FROM events_all")[1]
        except Exception:  # noqa: BLE001 - a file being written, or no file yet
            return 0, 0
        return tuple(rows[0]) if rows else (0, 0)

    def parquet_ids(self) -> collections.Counter:
        from logtide.processors.sinks.analytics.query import run_query

        return collections.Counter(
            r[0] for r in run_query(str(self.workdir / "parquet"), "SELECT id FROM events_all")[1]
        )

    def audit_verify(self) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "logtide.cli", "audit", "verify", str(self.workdir / "audit")],
            env={**os.environ, "LOGTIDE_AUDIT_KEY": AUDIT_KEY, "PYTHONPATH": ROOT},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def query(self, sql: str) -> list:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "logtide.cli",
                "query",
                sql,
                "--path",
                str(self.workdir / "parquet"),
                "--format",
                "json",
            ],
            env={**os.environ, "PYTHONPATH": ROOT},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return [orjson.loads(x) for x in out.stdout.splitlines() if x.strip()]  # one JSON object per row


def wait_until(predicate, timeout: float, what: str, chain: Chain | None = None, describe=None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if chain is not None and chain.dead_roles():
            dead = chain.dead_roles()
            raise AssertionError(
                f"role(s) {dead} exited while waiting for {what}:\n" + "\n".join(chain.log_tail(d) for d in dead)
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f": {describe()}" if describe else ""))
        time.sleep(1.0)


def rss_kb(pid: int) -> int:
    """Resident set size of one process (kB), 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0

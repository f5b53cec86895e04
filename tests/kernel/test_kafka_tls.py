"""Kafka over TLS for real: stunnel terminating TLS (and mutual TLS) in front of embedded brokers that
advertise the TLS port (tests/kernel/kafka_tls.py). Both transports, every role as a process from its
own config, `logtide up --config`, and the refusals a user meets when TLS is set up wrong."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
import yaml

from logtide import envelope
from logtide.role import connect_checked
from logtide.transport import KafkaSettings, TopicPartition, TopicSpec, TransportRefused
from tests.conftest import ROOT, TEST_SESSION_TIMEOUT_SECONDS
from tests.kernel.kafka_tls import env_without_bootstrap
from tests.support.events import make_event

pytestmark = pytest.mark.timeout(120)

LOGTIDE = [sys.executable, "-m", "logtide"]


@pytest.fixture(params=["tls", "mtls"])
def mutual(request) -> bool:
    return request.param == "mtls"


def write_yaml(path, data: dict) -> str:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


# --- both transports through TLS ------------------------------------------------------------------


def test_both_transports_produce_and_consume_through_tls(tls_kafka, backend, mutual):
    settings = KafkaSettings(**tls_kafka.settings(backend, mutual=mutual))
    transport = connect_checked(settings)
    topic = f"tls.{uuid.uuid4().hex[:10]}"
    admin = transport.admin()
    try:
        assert admin.create_topics([TopicSpec(topic, 2)]) == [topic]
        assert admin.list_topics()[topic] == 2
    finally:
        admin.close()

    acked, errors = [], []
    producer = transport.producer()
    try:
        for i in range(40):
            producer.produce(
                topic,
                f"line-{i}".encode(),
                key=f"k{i % 4}".encode(),
                headers=[("h", b"v")],
                on_delivery=lambda err, rec: (errors if err else acked).append(err or rec),
            )
        assert producer.flush(30) == 0
    finally:
        producer.close()
    assert not errors and len(acked) == 40

    # A group member: the coordinator is found through metadata, i.e. at the advertised (TLS) address.
    group = f"tls-{uuid.uuid4().hex[:8]}"
    consumer = transport.consumer(group, session_timeout_seconds=TEST_SESSION_TIMEOUT_SECONDS)
    seen = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 40
        while len(seen) < 40 and time.monotonic() < deadline:
            seen.extend(consumer.poll_batch(100, 0.5))
        ends: dict[TopicPartition, int] = {}
        for r in seen:
            ends[r.tp] = max(ends.get(r.tp, 0), r.offset + 1)
        consumer.commit(ends)
    finally:
        consumer.close()
    assert sorted(r.value for r in seen) == sorted(f"line-{i}".encode() for i in range(40))
    assert all(("h", b"v") in r.headers for r in seen)
    admin = transport.admin()
    try:
        assert sum(admin.group_offsets(group).values()) == 40
    finally:
        admin.close()


# --- refusals: one line, exit 2, no retry storm, for both clients ----------------------------------


def _role_config(tmp_path, role: str, kafka: dict) -> str:
    http = {"host": "127.0.0.1", "port": 0}
    data = {
        "agent": {
            "mode": "files",
            "include": [str(tmp_path / "logs" / "*.log")],
            "checkpoint_dir": str(tmp_path / "agent-ck"),
            "kubernetes": {"enabled": False},
        },
        "process": {
            "group_id": "tls-processors",
            "topics": ["logtide.raw.k8s"],
            "pipeline": [
                {"type": "parse", "formats": ["json", "plain"]},
                {"type": "route", "rules": [{"when": "true", "sinks": ["analytics"]}]},
            ],
        },
        "sink": {"analytics": {"parquet": {"path": str(tmp_path / "parquet")}}},
        "alert": {
            "api": {"host": "127.0.0.1", "port": 0},
            "state_path": str(tmp_path / "alert.db"),
            "rules_files": [
                write_yaml(
                    tmp_path / "rules.yaml",
                    {
                        "rules": [
                            {
                                "name": "FatalLogged",
                                "kind": "match",
                                "condition": "severity_number >= 21",
                                "window": "5m",
                                "severity": "critical",
                            }
                        ]
                    },
                )
            ],
        },
    }[role]
    return write_yaml(tmp_path / f"{role}.yaml", {"kafka": kafka, "http": http, **data})


def _refusal_cases(ep, client):
    """(case, role that meets it, kafka block, words the one error line must have)."""
    return {
        "untrusted-ca": (
            "agent",
            ep.settings(client, ssl_cafile=str(ep.pki.other_ca)),
            ["not trusted", "kafka.ssl_cafile", str(ep.pki.other_ca)],
        ),
        "hostname-mismatch": (
            "process",
            ep.settings(client, bootstrap=ep.wrong_host),
            ["not valid for this host", "127.0.0.1", "kafka.bootstrap"],
        ),
        "no-client-certificate": (
            "sink",
            ep.settings(client, bootstrap=ep.mtls),
            ["client certificate", "kafka.ssl_certfile", "kafka.ssl_keyfile"],
        ),
        "unreadable-key": (
            "alert",
            ep.settings(client, mutual=True, ssl_keyfile=str(ep.dir / "missing.key")),
            ["cannot read", "kafka.ssl_keyfile", str(ep.dir / "missing.key"), "No such file"],
        ),
        "ssl-to-plaintext": (
            "agent",
            ep.settings(client, bootstrap=ep.plaintext),
            ["no TLS answer", "plaintext listener", "kafka.security_protocol"],
        ),
    }


CASES = ["untrusted-ca", "hostname-mismatch", "no-client-certificate", "unreadable-key", "ssl-to-plaintext"]


@pytest.mark.parametrize("case", CASES)
def test_a_tls_refusal_is_one_line_and_exit_2(tls_kafka, backend, case, tmp_path):
    role, kafka, words = _refusal_cases(tls_kafka, backend)[case]
    (tmp_path / "logs").mkdir()
    config = _role_config(tmp_path, role, kafka)
    # timeout: the check at start is bounded (5 s for the silent plaintext listener), never a retry loop
    r = subprocess.run(
        LOGTIDE + [role, "--config", config],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env_without_bootstrap(),
    )
    assert r.returncode == 2, r.stderr[-3000:]
    # the role's start-up info lines (where /metrics is served) are not part of the refusal
    lines = [line for line in r.stderr.splitlines() if line.strip() and '"level":"info"' not in line]
    # nothing but the error: no client log lines, reconnect warnings or tracebacks
    assert len(lines) == 1, r.stderr[-3000:]
    assert lines[0].startswith(f"logtide {role}: error: "), lines[0]
    for w in words:
        assert w in lines[0], lines[0]


def test_a_key_that_does_not_fit_the_certificate_is_named(tls_kafka):
    settings = KafkaSettings(**tls_kafka.settings("confluent", mutual=True, ssl_keyfile=str(tls_kafka.pki.server_key)))
    with pytest.raises(TransportRefused, match="kafka.ssl_keyfile .*server.key.*KEY_VALUES_MISMATCH"):
        connect_checked(settings)


def test_a_client_certificate_the_broker_does_not_accept_is_refused(tls_kafka):
    # a server-only certificate (no clientAuth usage) offered as the client certificate
    settings = KafkaSettings(
        **tls_kafka.settings(
            "kafka-python",
            mutual=True,
            ssl_certfile=str(tls_kafka.pki.wrong_host_cert),
            ssl_keyfile=str(tls_kafka.pki.wrong_host_key),
        )
    )
    with pytest.raises(TransportRefused, match="rejected the client certificate"):
        connect_checked(settings)


# --- every role as a process, through mutual TLS --------------------------------------------------


def _http_url(log_path) -> str | None:
    try:
        text = open(log_path, encoding="utf-8", errors="replace").read()
    except FileNotFoundError:
        return None
    m = re.search(r'"url":\s*"(http://127\.0\.0\.1:\d+)"', text)
    return m.group(1) if m else None


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_agent_processor_sink_chain_and_alerting_run_through_mutual_tls(tls_kafka, backend, tmp_path, monkeypatch):
    from tests.faults import chain as chain_module
    from tests.faults.chain import RAW, Chain, wait_until
    from tests.faults.harness import RoleProcess

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, level in (("auth.log", "INFO"), ("web.log", "ERROR")):
        (corpus / name).write_text(
            "".join(json.dumps({"level": level, "msg": f"{name} line {i}"}) + "\n" for i in range(300))
        )
    monkeypatch.setattr(chain_module, "CORPUS", str(corpus))
    kafka = tls_kafka.settings(backend, mutual=True)
    chain = Chain(tmp_path, kafka["bootstrap"], {"auth": "auth.log", "web": "web.log"}, kafka=kafka)
    alert = RoleProcess(
        ["alert", "--config", _role_config(tmp_path, "alert", kafka), "--log-level", "info"],
        env={"PYTHONPATH": ROOT},
        log_path=str(tmp_path / "alert.log"),
    )
    chain.create_topics()
    chain.writer.write_all(0.5)
    total = chain.writer.total
    try:
        chain.start()
        alert.start()
        # every line through agent → raw → processor → route → sink, all over mutual TLS
        wait_until(
            lambda: chain.distinct(RAW) >= total and len(chain.audit_ids()) >= len(chain.writer.lines["auth"]),
            100,
            "the chain to deliver every line",
            chain,
            describe=lambda: f"raw {chain.distinct(RAW)}/{total}, audit {len(chain.audit_ids())}",
        )
        assert set(chain.audit_ids().values()) == {1}
        # the alerting engine joined its group over TLS: ready
        wait_until(lambda: _http_url(tmp_path / "alert.log") is not None, 30, "alert's HTTP endpoint")
        url = _http_url(tmp_path / "alert.log")
        wait_until(
            lambda: _get(url + "/readyz")[0] == 200,
            40,
            "alert /readyz",
            describe=lambda: _get(url + "/readyz")[1] + open(tmp_path / "alert.log").read()[-2000:],
        )
    finally:
        codes = chain.stop()
        alert_code = alert.stop()
        chain.close_readers()
    assert codes == {"agent": 0, "process": 0, "sink": 0}, {n: chain.log_tail(n) for n in codes}
    assert alert_code == 0, open(tmp_path / "alert.log").read()[-3000:]


def test_logtide_up_runs_on_a_tls_bootstrap(tls_kafka, tmp_path):
    config = write_yaml(
        tmp_path / "up.yaml",
        {"kafka": tls_kafka.settings("confluent", mutual=True), "workdir": str(tmp_path / "work"), "partitions": 2},
    )
    r = subprocess.run(
        LOGTIDE
        + ["up", "--config", config, "--duration", "10", "--http-port", "0", "--rate", "100", "--log-level", "warning"],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
        env=env_without_bootstrap(),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["bootstrap"] == tls_kafka.mtls  # no embedded broker: the TLS one from the config
    assert summary["topics"]["logtide.raw.demo"] > 0
    assert "demo-source" in summary["services"]


# --- SASL: the password is never shown --------------------------------------------------------------

PASSWORD = "pw-" + uuid.uuid4().hex


def test_sasl_password_is_not_in_logs_metrics_or_readyz_of_a_running_role(broker, tmp_path):
    """A running agent whose config holds a SASL password (the embedded broker serves no SASL: the
    protocol stays PLAINTEXT, so the password is carried in the settings but not used)."""
    from tests.faults.harness import RoleProcess

    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.log").write_text("hello\n")
    kafka = {
        "bootstrap": broker,
        "client": "confluent",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "logtide",
        "sasl_password": "${KAFKA_PASSWORD}",
    }
    role = RoleProcess(
        ["agent", "--config", _role_config(tmp_path, "agent", kafka), "--log-level", "debug"],
        env={"PYTHONPATH": ROOT, "KAFKA_PASSWORD": PASSWORD},
        log_path=str(tmp_path / "agent.log"),
    )
    role.env.pop("LOGTIDE_BOOTSTRAP", None)
    role.start()
    try:
        from tests.faults.chain import wait_until

        wait_until(lambda: _http_url(tmp_path / "agent.log") is not None or not role.alive(), 30, "agent HTTP")
        url = _http_url(tmp_path / "agent.log")
        assert url, open(tmp_path / "agent.log").read()[-3000:]
        for path in ("/metrics", "/readyz", "/healthz"):
            status, body = _get(url + path)
            assert status in (200, 503) and body
            assert PASSWORD not in body, path
    finally:
        assert role.stop() == 0
    log = open(tmp_path / "agent.log").read()
    assert "serving /metrics" in log  # the debug log was written
    assert PASSWORD not in log


def _assert_sasl_refused(r, role: str = "agent") -> None:
    assert r.returncode == 2, r.stderr[-3000:]
    lines = [
        line
        for line in r.stderr.splitlines()
        if line.strip() and '"level":"debug"' not in line and '"level":"info"' not in line
    ]
    assert len(lines) == 1, r.stderr[-3000:]  # no client reconnect warnings: one line
    assert lines[0].startswith(f"logtide {role}: error: Kafka at ") and "refused SASL authentication" in lines[0]
    assert "kafka.sasl_password" in lines[0]
    assert PASSWORD not in r.stderr and PASSWORD not in r.stdout


def test_sasl_over_tls_to_a_broker_without_sasl_is_refused_without_the_password(tls_kafka, backend, tmp_path):
    """SASL_SSL through the TLS endpoint: TLS passes, the broker serves no SASL; the role gives up at
    once with one line, and the password shows nowhere, even at --log-level debug."""
    kafka = tls_kafka.settings(
        backend,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="logtide",
        sasl_password=PASSWORD,
    )
    (tmp_path / "logs").mkdir()
    r = subprocess.run(
        LOGTIDE + ["agent", "--config", _role_config(tmp_path, "agent", kafka), "--log-level", "debug"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env_without_bootstrap(),
    )
    _assert_sasl_refused(r)


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory):
    """A broker that requires SASL and knows no user (Tansu --authentication, memory storage)."""
    from logtide.broker import EmbeddedBroker

    b = EmbeddedBroker(authentication=True, log_file=tmp_path_factory.mktemp("sasl") / "broker.log").start()
    try:
        yield b.bootstrap
    finally:
        b.stop()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256"])
def test_a_refused_sasl_login_is_one_line_without_the_password(sasl_broker, backend, mechanism, tmp_path):
    """A real refusal: Tansu requiring SASL knows no user here (see README: SCRAM users cannot be made)."""
    kafka = {
        "bootstrap": sasl_broker,
        "client": backend,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_username": "nobody",
        "sasl_password": "${KAFKA_PASSWORD}",
    }
    r = subprocess.run(
        LOGTIDE + ["process", "--config", _role_config(tmp_path, "process", kafka)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**env_without_bootstrap(), "KAFKA_PASSWORD": PASSWORD},
    )
    _assert_sasl_refused(r, "process")


def test_process_check_does_not_print_the_password(tmp_path):
    kafka = {
        "bootstrap": "127.0.0.1:9",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "PLAIN",
        "sasl_username": "logtide",
        "sasl_password": PASSWORD,
    }
    r = subprocess.run(
        LOGTIDE + ["process", "--config", _role_config(tmp_path, "process", kafka), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env_without_bootstrap(),
    )
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout
    assert PASSWORD not in r.stdout + r.stderr


def test_unusable_tls_files_are_named_before_connecting(tls_kafka, tmp_path):
    from cryptography.hazmat.primitives import serialization

    from logtide.transport import tls

    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(TransportRefused, match=f"kafka.ssl_cafile {garbage} holds no usable CA certificate"):
        tls.context(KafkaSettings(**tls_kafka.settings("confluent", ssl_cafile=str(garbage))))
    # an encrypted key: refused with its name, never a passphrase prompt on the terminal
    key = serialization.load_pem_private_key(tls_kafka.pki.client_key.read_bytes(), None)
    encrypted = tmp_path / "client.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    settings = KafkaSettings(**tls_kafka.settings("kafka-python", mutual=True, ssl_keyfile=str(encrypted)))
    with pytest.raises(TransportRefused, match=f"kafka.ssl_keyfile {encrypted}: .*encrypted key is not supported"):
        tls.context(settings)
    with pytest.raises(TransportRefused, match="kafka.ssl_keyfile is set without kafka.ssl_certfile"):
        tls.context(KafkaSettings(**tls_kafka.settings("confluent", ssl_keyfile=str(tls_kafka.pki.client_key))))


# --- the commands that run no role, through mutual TLS ---------------------------------------------


def test_day2_tools_reach_a_mutual_tls_cluster_through_a_role_config(tls_kafka, tmp_path):
    """`logtide topics`, `tap`, `replay` and `lag` take the processor's own config file (--config, or
    $LOGTIDE_KAFKA_CONFIG): its kafka: block carries the CA, the client certificate and key. Without it
    the TLS listener answers nothing a plaintext client understands."""
    kafka = tls_kafka.settings("confluent", mutual=True)
    (tmp_path / "logs").mkdir()
    config = _role_config(tmp_path, "process", kafka)
    topic, copy = f"tls.tools.{uuid.uuid4().hex[:8]}", f"tls.copy.{uuid.uuid4().hex[:8]}"
    transport = connect_checked(KafkaSettings(**kafka))
    admin = transport.admin()
    try:
        admin.create_topics([TopicSpec(topic, 1), TopicSpec(copy, 1)])
    finally:
        admin.close()
    producer = transport.producer()
    try:
        for i in range(5):
            producer.produce(topic, envelope.encode(make_event(i, run="tls-tools", body=f"line {i}")))
        assert producer.flush(30) == 0
    finally:
        producer.close()

    def tool(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            LOGTIDE + list(argv),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env=env or env_without_bootstrap(),
        )

    r = tool("topics", "--config", config, "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {row["topic"]: row for row in json.loads(r.stdout)}
    assert rows[topic]["records"] == 5

    r = tool("tap", topic, "--from", "beginning", "--count", "5", "--duration", "30", "--json", "--config", config)
    assert r.returncode == 0, r.stderr[-2000:]
    assert [json.loads(line)["body"] for line in r.stdout.splitlines()] == [f"line {i}" for i in range(5)]

    # the same file by environment variable, the way a pod mounts it; --client over the file's client
    env = {**env_without_bootstrap(), "LOGTIDE_KAFKA_CONFIG": config, "LOGTIDE_STATE_DIR": str(tmp_path / "state")}
    r = tool("replay", "--topic", topic, "--from", "0", "--to-topic", copy, "--client", "kafka-python", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    r = tool("topics", "--json", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert {row["topic"]: row for row in json.loads(r.stdout)}[copy]["records"] == 5

    # a mistake in the file is named with its line, and no bootstrap at all says where one comes from
    bad = write_yaml(tmp_path / "bad.yaml", {"kafka": {**kafka, "security_protocol": "TLS"}})
    r = tool("lag", "--config", bad)
    assert r.returncode == 2 and "bad.yaml:" in r.stderr and "security_protocol" in r.stderr, r.stderr
    r = tool("lag")
    assert r.returncode == 2 and "--config FILE" in r.stderr, r.stderr

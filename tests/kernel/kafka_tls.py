"""A real TLS (and mutual TLS) Kafka endpoint for tests: Debian's stunnel terminating TLS in front of
an embedded Tansu broker, with a CA and certificates generated here.

Each TLS service gets a broker of its own that *advertises the TLS port*: a client bootstraps through
stunnel, reads the metadata and reconnects to the advertised address, which must be TLS too (a broker
advertising its plaintext port would let the client bypass TLS after the first request).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from logtide.broker import EmbeddedBroker, _die_with_parent, free_port


@dataclass
class Pki:
    """Paths of the generated PEM files."""

    ca: Path  # the CA clients trust
    other_ca: Path  # a CA that signed nothing the endpoints serve (the "untrusted CA" case)
    server_cert: Path  # SAN 127.0.0.1 and localhost
    server_key: Path
    wrong_host_cert: Path  # signed by ca, SAN kafka.example.invalid only (the hostname-mismatch case)
    wrong_host_key: Path
    client_cert: Path  # signed by ca, for mutual TLS
    client_key: Path


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, *pems: bytes) -> Path:
    path.write_bytes(b"".join(pems))
    path.chmod(0o600)
    return path


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _ca(cn: str):
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(ca_key, ca_cert, cn: str, sans: list[x509.GeneralName], usage):
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca("logtide test CA")
    _other_key, other_cert = _ca("some other CA")
    loopback = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    s_key, s_cert = _leaf(ca_key, ca_cert, "127.0.0.1", loopback, ExtendedKeyUsageOID.SERVER_AUTH)
    w_key, w_cert = _leaf(
        ca_key,
        ca_cert,
        "kafka.example.invalid",
        [x509.DNSName("kafka.example.invalid")],
        ExtendedKeyUsageOID.SERVER_AUTH,
    )
    c_key, c_cert = _leaf(ca_key, ca_cert, "logtide-client", [], ExtendedKeyUsageOID.CLIENT_AUTH)
    d = directory
    return Pki(
        ca=_write(d / "ca.pem", _cert_pem(ca_cert)),
        other_ca=_write(d / "other-ca.pem", _cert_pem(other_cert)),
        server_cert=_write(d / "server.pem", _cert_pem(s_cert)),
        server_key=_write(d / "server.key", _key_pem(s_key)),
        wrong_host_cert=_write(d / "wrong-host.pem", _cert_pem(w_cert)),
        wrong_host_key=_write(d / "wrong-host.key", _key_pem(w_key)),
        client_cert=_write(d / "client.pem", _cert_pem(c_cert)),
        client_key=_write(d / "client.key", _key_pem(c_key)),
    )


def stunnel_binary() -> str:
    found = shutil.which("stunnel4") or shutil.which("stunnel")
    if not found:
        raise RuntimeError("stunnel not found: apt-get install stunnel4 (scripts/install.sh does)")
    return found


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 15.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"stunnel exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"stunnel did not listen on {port} within {timeout}s")


class TlsKafka:
    """Two brokers behind one stunnel: ``tls`` (server TLS), ``mtls`` (client certificate required),
    plus ``wrong_host`` (the TLS broker behind a certificate for another name) and ``plaintext``
    (the TLS broker's own port, for SSL-against-plaintext)."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.pki = make_pki(directory / "pki")
        self.tls_port, self.mtls_port, self.wrong_host_port = free_port(), free_port(), free_port()
        self.brokers: list[EmbeddedBroker] = []
        self.proc: subprocess.Popen | None = None

    @property
    def tls(self) -> str:
        return f"127.0.0.1:{self.tls_port}"

    @property
    def mtls(self) -> str:
        return f"127.0.0.1:{self.mtls_port}"

    @property
    def wrong_host(self) -> str:
        return f"127.0.0.1:{self.wrong_host_port}"

    @property
    def plaintext(self) -> str:
        return self.brokers[0].bootstrap

    def start(self) -> TlsKafka:
        tls_broker = EmbeddedBroker(advertised_port=self.tls_port, log_file=self.dir / "broker-tls.log").start()
        self.brokers.append(tls_broker)
        mtls_broker = EmbeddedBroker(advertised_port=self.mtls_port, log_file=self.dir / "broker-mtls.log").start()
        self.brokers.append(mtls_broker)
        p = self.pki
        conf = self.dir / "stunnel.conf"
        log = self.dir / "stunnel.log"
        conf.write_text(f"""\
foreground = yes
pid =
output = {log}
debug = notice

[tls]
accept = 127.0.0.1:{self.tls_port}
connect = {tls_broker.bootstrap}
cert = {p.server_cert}
key = {p.server_key}

[wrong-host]
accept = 127.0.0.1:{self.wrong_host_port}
connect = {tls_broker.bootstrap}
cert = {p.wrong_host_cert}
key = {p.wrong_host_key}

[mtls]
accept = 127.0.0.1:{self.mtls_port}
connect = {mtls_broker.bootstrap}
cert = {p.server_cert}
key = {p.server_key}
CAfile = {p.ca}
verifyChain = yes
requireCert = yes
""")
        # stunnel dies with the test session, like the brokers (PR_SET_PDEATHSIG)
        self.proc = subprocess.Popen(
            [stunnel_binary(), str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        for port in (self.tls_port, self.wrong_host_port, self.mtls_port):
            _wait_port(port, self.proc, log)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for b in self.brokers:
            b.stop()

    def settings(self, client: str, *, mutual: bool = False, **override) -> dict:
        """The ``kafka:`` block of a role config for this endpoint."""
        kafka = {
            "bootstrap": self.mtls if mutual else self.tls,
            "client": client,
            "security_protocol": "SSL",
            "ssl_cafile": str(self.pki.ca),
        }
        if mutual:
            kafka.update(ssl_certfile=str(self.pki.client_cert), ssl_keyfile=str(self.pki.client_key))
        kafka.update(override)
        return kafka


def env_without_bootstrap() -> dict[str, str]:
    """The environment for a role process, without $LOGTIDE_BOOTSTRAP overriding its config."""
    return {k: v for k, v in os.environ.items() if k != "LOGTIDE_BOOTSTRAP"}

"""The TLS check at start: one handshake of our own with a bootstrap server, before any client exists.

The two clients report a TLS failure differently, and neither says why at the point of the error:
librdkafka answers ``Broker transport failure``, kafka-python ``Unable to bootstrap``, while the reason
(untrusted CA, a certificate for another name, a client certificate the broker requires) goes to
their logs, once per reconnect attempt. kafka-python even hangs on a plaintext listener (the broker
waits for the rest of what it takes for a Kafka frame). So a role checks TLS itself first: it reads the
configured files (naming the field of the one it cannot use), handshakes with the same settings the
clients use (the CA file, hostname verification, the client certificate), sends one ApiVersions
request, and turns a refusal into one line with what to fix: ``TransportRefused``, not retried.
"""

from __future__ import annotations

import socket
import ssl
import time

from logtide.transport.base import KafkaSettings, TransportError, TransportRefused

TLS_PROTOCOLS = ("SSL", "SASL_SSL")


def api_versions_frame() -> bytes:
    """A Kafka ApiVersions v0 request (correlation id 1, client id ``logtide``), size-prefixed."""
    body = (
        (18).to_bytes(2, "big") + (0).to_bytes(2, "big") + (1).to_bytes(4, "big") + (7).to_bytes(2, "big") + b"logtide"
    )
    return len(body).to_bytes(4, "big") + body


def _read_file(field: str, path: str) -> None:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise TransportRefused(f"cannot read kafka.{field} {path}: {exc.strerror or exc}") from None


def _no_password() -> str:
    return ""


def context(settings: KafkaSettings) -> ssl.SSLContext:
    """The client side of TLS as both clients set it up: the CA file (or the system's CAs), hostname
    verification, and the client certificate for mutual TLS. A file it cannot use is named."""
    for field in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(settings, field)
        if path:
            _read_file(field, path)
    if settings.ssl_keyfile and not settings.ssl_certfile:
        raise TransportRefused("kafka.ssl_keyfile is set without kafka.ssl_certfile: give both for mutual TLS")
    ctx = ssl.create_default_context()
    if settings.ssl_cafile:
        try:
            ctx.load_verify_locations(cafile=settings.ssl_cafile)
        except ssl.SSLError as exc:
            raise TransportRefused(
                f"kafka.ssl_cafile {settings.ssl_cafile} holds no usable CA certificate ({exc.reason or exc})"
            ) from None
    if settings.ssl_certfile:
        try:
            # The password callback keeps OpenSSL from prompting on the terminal for an encrypted key.
            ctx.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile, password=_no_password)
        except ssl.SSLError as exc:
            raise TransportRefused(
                f"kafka.ssl_certfile {settings.ssl_certfile} / kafka.ssl_keyfile {settings.ssl_keyfile}: "
                f"not a certificate and its private key ({exc.reason or exc}; an encrypted key is not supported)"
            ) from None
    return ctx


def _refusal(where: str, settings: KafkaSettings, exc: BaseException) -> TransportRefused:
    """What a failed handshake means, and what to change."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or str(exc)
        if "mismatch" in reason.lower():
            return TransportRefused(
                f"TLS to {where}: the broker's certificate is not valid for this host "
                f"({reason.rstrip('.')}): use the broker's name from its certificate in "
                "kafka.bootstrap"
            )
        trust = (
            f"kafka.ssl_cafile {settings.ssl_cafile}"
            if settings.ssl_cafile
            else "the system's CAs (kafka.ssl_cafile is not set)"
        )
        return TransportRefused(f"TLS to {where}: the broker's certificate is not trusted by {trust} ({reason})")
    text = getattr(exc, "reason", None) or str(exc)
    low = str(exc).lower()
    if "certificate_required" in low.replace(" ", "_") or "handshake_failure" in low.replace(" ", "_"):
        if not settings.ssl_certfile:
            return TransportRefused(
                f"TLS to {where}: the broker requires a client certificate (mutual TLS): "
                "set kafka.ssl_certfile and kafka.ssl_keyfile"
            )
        return TransportRefused(f"TLS to {where}: the broker refused the handshake ({text})")
    if any(
        s in low.replace(" ", "_")
        for s in ("unknown_ca", "bad_certificate", "certificate_unknown", "unsupported_certificate")
    ):
        return TransportRefused(
            f"TLS to {where}: the broker rejected the client certificate "
            f"kafka.ssl_certfile {settings.ssl_certfile} ({text})"
        )
    if isinstance(exc, (socket.timeout, TimeoutError)) or "wrong version number" in low or "record layer" in low:
        return TransportRefused(
            f"TLS to {where}: no TLS answer (kafka.security_protocol is "
            f"{settings.security_protocol}): is this a plaintext listener?"
        )
    if isinstance(exc, _ClosedAfterHandshake) and not settings.ssl_certfile:
        return TransportRefused(
            f"TLS to {where}: the broker closed the connection right after the TLS handshake: "
            "does it require a client certificate (mutual TLS: set kafka.ssl_certfile and "
            "kafka.ssl_keyfile)?"
        )
    if isinstance(exc, (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError)) or "eof" in low:
        return TransportRefused(
            f"TLS to {where}: the broker closed the connection during the TLS handshake "
            f"({text}): is this a TLS listener, and does it require a client certificate?"
        )
    return TransportRefused(f"TLS to {where}: {text}")


class _ClosedAfterHandshake(ssl.SSLEOFError):
    """The handshake passed, then the broker hung up without saying why."""


class _Unanswered(TimeoutError):
    """The handshake passed, but no Kafka answer came in time (a broker still starting)."""


def _request_after_handshake(tls: ssl.SSLSocket) -> None:
    """TLS 1.3 tells the client about a refused (or missing) client certificate only after the
    handshake, as an alert on the next read: one request and its answer make sure the broker took us.
    A write can fail first (the broker already hung up): the alert may still be there to read."""
    sent: OSError | None = None
    try:
        tls.sendall(api_versions_frame())
    except OSError as exc:
        sent = exc
    try:
        head = tls.recv(4)
    except (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError):
        head = b""
    except TimeoutError:
        raise _Unanswered() from None
    if len(head) < 4:
        raise _ClosedAfterHandshake(str(sent) if sent else "the broker closed the connection")


def check(settings: KafkaSettings, timeout: float = 5.0) -> bool:
    """For a TLS protocol: handshake with the first bootstrap server that accepts a connection.

    True when a broker answered over TLS, False when none accepted a TCP connection or answered (the
    caller's unreachable-broker handling applies), ``TransportRefused`` when one refused TLS. Takes at most
    ``timeout`` in all (each socket operation gets what is left). Does nothing (True) for the plaintext
    protocols.
    """
    if settings.security_protocol not in TLS_PROTOCOLS:
        return True
    ctx = context(settings)
    deadline = time.monotonic() + timeout
    for server in (settings.bootstrap or "").split(","):
        host, _, port = server.strip().rpartition(":")
        host = host.strip("[]")
        where = f"{host}:{port}"
        for attempt in range(3):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                raw = socket.create_connection((host, int(port)), timeout=left)
            except (OSError, ValueError):
                break
            try:
                with ctx.wrap_socket(raw, server_hostname=host) as tls:
                    tls.settimeout(max(0.1, deadline - time.monotonic()))
                    _request_after_handshake(tls)
                return True
            except _ClosedAfterHandshake as exc:
                # Usually the alert of a refused client certificate, lost when the broker's reset
                # overtook it; but a TLS proxy whose broker is away hangs up the same way: ask again,
                # then leave it to the caller's retries (with the hint), not a refusal.
                if attempt == 2:
                    raise TransportError(str(_refusal(where, settings, exc))) from None
            except _Unanswered:
                break
            except (OSError, ssl.SSLError) as exc:
                raise _refusal(where, settings, exc) from None
            finally:
                raw.close()
    return False

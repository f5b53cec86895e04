"""A Salesforce server double over HTTPS (simple-salesforce only speaks https): the OAuth token
endpoint (password and JWT bearer flows), /services/data/vXX.X/query with nextRecordsUrl paging,
the EventLogFile LogFile blob, and Sforce-Limit-Info on every answer. Faults on demand: expired
sessions, 5xx storms, a daily API limit."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from logtide.timeutil import require_rfc3339

from tests.support.http import HttpDouble


def self_signed(directory: str) -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = os.path.join(directory, "sf.crt"), os.path.join(directory, "sf.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
            )
        )
    return cert_path, key_path


def rsa_key_pair() -> tuple[str, object]:
    """(private key PEM for the collector's JWT config, public key for the double to verify)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, key.public_key()


_WHERE = re.compile(r"(\w+)\s*(>=|=)\s*('[^']*'|\S+)")


class SalesforceDouble(HttpDouble):
    API = "59.0"

    def __init__(self, directory: str, page_size: int = 3):
        self.cert, key = self_signed(directory)
        self.page_size = page_size
        self.lock = threading.Lock()
        self.users = {"collector@example.com": "pw" + "TOKEN"}
        self.client = ("cid", "csecret")
        self.jwt_public_key = None
        self.tokens: set[str] = set()
        self.logins = 0
        self.tables: dict[str, list[dict]] = {"EventLogFile": [], "SetupAuditTrail": [], "LoginHistory": []}
        self.blobs: dict[str, bytes] = {}
        self.cursors: dict[str, list[dict]] = {}
        self.api_used, self.api_total = 0, 1_000_000
        self.fail_next: list[int] = []  # statuses to answer the next data requests with
        self.break_blob: tuple[str, int] | None = None  # (file id, bytes): cut that download there, once
        self.requests: list[str] = []
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes, ctype: str = "application/json"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                with double.lock:
                    double.api_used += 1
                    used = double.api_used
                self.send_header("Sforce-Limit-Info", f"api-usage={used}/{double.api_total}")
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, obj):
                self._send(status, json.dumps(obj).encode())

            def do_POST(self):  # noqa: N802
                form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
                if urlparse(self.path).path != "/services/oauth2/token":
                    return self._json(404, [{"errorCode": "NOT_FOUND"}])
                ok = double.check_login({k: v[0] for k, v in form.items()})
                if not ok:
                    return self._json(400, {"error": "invalid_grant", "error_description": "authentication failure"})
                token = secrets.token_hex(12)
                with double.lock:
                    double.tokens.add(token)
                    double.logins += 1
                self._json(
                    200,
                    {
                        "access_token": token,
                        "instance_url": double.url,
                        "token_type": "Bearer",
                        "id": "https://login/id/00D000000000001/005000000000001",
                    },
                )

            def do_GET(self):  # noqa: N802
                url = urlparse(self.path)
                with double.lock:
                    double.requests.append(url.path)
                    token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    valid = token in double.tokens
                    fault = double.fail_next.pop(0) if double.fail_next and valid else None
                if not valid:
                    return self._json(
                        401, [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}]
                    )
                if fault:
                    return self._json(fault, [{"errorCode": "SERVER_UNAVAILABLE", "message": "try later"}])
                if double.api_used >= double.api_total:
                    return self._json(403, [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "limit"}])
                base = f"/services/data/v{double.API}"
                m = re.fullmatch(base + r"/sobjects/EventLogFile/(\w+)/LogFile", url.path)
                if m:
                    return self._blob(m.group(1), double.blobs.get(m.group(1)))
                if url.path == base + "/query/":
                    records = double.run_soql(parse_qs(url.query)["q"][0])
                    return self._json(200, double.page(records, 0))
                m = re.fullmatch(base + r"/query/(\w+)-(\d+)", url.path)
                if m:
                    return self._json(200, double.page(double.cursors[m.group(1)], int(m.group(2)), m.group(1)))
                self._json(404, [{"errorCode": "NOT_FOUND", "message": url.path}])

            def _blob(self, file_id: str, data: bytes | None):
                if data is None:
                    return self._json(404, [{"errorCode": "NOT_FOUND"}])
                if double.break_blob and double.break_blob[0] == file_id:
                    cut = double.break_blob[1]
                    double.break_blob = None
                    self.send_response(200)
                    self.send_header("Content-Type", "text/csv")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self._send(200, data, "text/csv")

        super().__init__(request_handler=Handler, tls=(self.cert, key))

    # --- behaviour ---------------------------------------------------------------------------

    def check_login(self, form: dict) -> bool:
        if form.get("grant_type") == "password":
            return (form.get("client_id"), form.get("client_secret")) == self.client and self.users.get(
                form.get("username")
            ) == form.get("password")
        if form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer" and self.jwt_public_key:
            try:
                claims = jwt.decode(form["assertion"], self.jwt_public_key, algorithms=["RS256"], audience=self.url)
            except jwt.PyJWTError:
                return False
            return claims.get("sub") in self.users and claims.get("iss") == self.client[0]
        return False

    def expire_sessions(self):
        with self.lock:
            self.tokens.clear()

    def add_log_file(
        self,
        file_id: str,
        event_type: str,
        created: str,
        csv_bytes: bytes,
        names: str,
        types: str,
        interval: str = "Hourly",
        log_date: str | None = None,
    ):
        self.blobs[file_id] = csv_bytes
        self.tables["EventLogFile"].append(
            {
                "attributes": {"type": "EventLogFile"},
                "Id": file_id,
                "EventType": event_type,
                "Interval": interval,
                "LogDate": log_date or created,
                "CreatedDate": created,
                "LogFileLength": len(csv_bytes),
                "LogFileFieldNames": names,
                "LogFileFieldTypes": types,
            }
        )

    def add_record(self, table: str, record: dict):
        self.tables[table].append({"attributes": {"type": table}, **record})

    def run_soql(self, soql: str) -> list[dict]:
        table = re.search(r"FROM (\w+)", soql).group(1)
        where = soql.split(" WHERE ", 1)[1].split(" ORDER BY ")[0] if " WHERE " in soql else ""
        order = soql.split(" ORDER BY ")[1].split(",")[0].strip() if " ORDER BY " in soql else "Id"
        rows = list(self.tables[table])
        for field, op, value in _WHERE.findall(where):
            if op == "=":
                rows = [r for r in rows if str(r.get(field)) == value.strip("'")]
            else:
                rows = [r for r in rows if _ts(r[field]) >= _ts(value)]
        return sorted(rows, key=lambda r: (_ts(r[order]), r["Id"]))

    def page(self, records: list[dict], start: int, cursor: str | None = None) -> dict:
        cursor = cursor or "01g" + secrets.token_hex(6)
        self.cursors[cursor] = records
        chunk = records[start : start + self.page_size]
        out = {"totalSize": len(records), "done": start + self.page_size >= len(records), "records": chunk}
        if not out["done"]:
            out["nextRecordsUrl"] = f"/services/data/v{self.API}/query/{cursor}-{start + self.page_size}"
        return out


def _ts(text: str) -> int:
    return require_rfc3339(text)

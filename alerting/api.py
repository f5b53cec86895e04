"""The alerting HTTP API, shaped after Alertmanager's v2 API so its habits carry over:

    GET    /api/v2/alerts[?state=firing|pending|resolved]   alerts with state, value and silencedBy
    GET    /api/v2/alerts/groups                            notification groups and their alerts
    GET    /api/v2/silences                                 all silences with their state
    POST   /api/v2/silences                                 {"matchers": ["team=\\"db\\""] | [{name,value,isRegex,isEqual}],
                                                             "startsAt"?, "endsAt" | "duration": "2h",
                                                             "createdBy", "comment"}  →  {"silenceID": ...}
    DELETE /api/v2/silence/{id}                             expire a silence now
    GET    /-/healthy

Times are RFC 3339. Writes need ``Authorization: Bearer <api.token>`` when a token is configured.
"""

from __future__ import annotations

import hmac
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import orjson

from logtide import log

from logtide.timeutil import NS, parse_duration, require_rfc3339

_log = log.get("alerting.api")
MAX_BODY = 1 << 20


def parse_api_time(value) -> int:
    """A time in the API (and ``alert test`` events): RFC 3339, or Unix ns as an integer."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return require_rfc3339(value)


class AlertApi:
    name = "alert-api"

    def __init__(self, engine, settings):
        self.engine = engine
        self.settings = settings
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code: int, obj) -> None:
                body = orjson.dumps(obj)
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _authorized(self) -> bool:
                token = api.settings.token
                if not token:
                    return True
                given = self.headers.get("Authorization", "")
                return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

            def do_GET(self):  # noqa: N802
                url = urlparse(self.path)
                q = parse_qs(url.query)
                if url.path == "/api/v2/alerts":
                    self._send(200, api.engine.alerts_api((q.get("state") or [None])[0]))
                elif url.path == "/api/v2/alerts/groups":
                    self._send(200, api.engine.groups_api())
                elif url.path == "/api/v2/silences":
                    now = api.engine.clock.now()
                    self._send(200, [s.api(now) for s in api.engine.silences.list()])
                elif url.path in ("/-/healthy", "/-/ready"):
                    self._send(200, {"ok": True})
                else:
                    self._send(404, {"error": "not found: try /api/v2/alerts, /api/v2/alerts/groups, /api/v2/silences"})

            def do_POST(self):  # noqa: N802
                if urlparse(self.path).path != "/api/v2/silences":
                    return self._send(404, {"error": "not found"})
                if not self._authorized():
                    return self._send(401, {"error": "missing or wrong bearer token"})
                n = int(self.headers.get("Content-Length") or 0)
                if n > MAX_BODY:
                    return self._send(413, {"error": "body too large"})
                try:
                    body = orjson.loads(self.rfile.read(n) or b"{}")
                    if not isinstance(body, dict):
                        raise ValueError("the body is a JSON object")
                    now = api.engine.clock.now()
                    starts = parse_api_time(body["startsAt"]) if body.get("startsAt") else now
                    if body.get("endsAt"):
                        ends = parse_api_time(body["endsAt"])
                    elif body.get("duration"):
                        ends = starts + int(parse_duration(body["duration"]) * NS)
                    else:
                        raise ValueError("give endsAt or duration")
                    s = api.engine.silences.add(body.get("matchers") or [], starts, ends,
                                                str(body.get("createdBy") or ""), str(body.get("comment") or ""),
                                                now, body.get("id"))
                except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
                    return self._send(400, {"error": str(exc)})
                _log.info("silence created", extra={"id": s.id, "by": s.created_by,
                                                    "matchers": [str(m) for m in s.matchers]})
                self._send(200, {"silenceID": s.id})

            def do_DELETE(self):  # noqa: N802
                path = urlparse(self.path).path
                if not path.startswith("/api/v2/silence/"):
                    return self._send(404, {"error": "not found"})
                if not self._authorized():
                    return self._send(401, {"error": "missing or wrong bearer token"})
                sid = path.rsplit("/", 1)[1]
                try:
                    s = api.engine.silences.expire(sid, api.engine.clock.now())
                except KeyError:
                    return self._send(404, {"error": f"no silence {sid}"})
                _log.info("silence expired", extra={"id": s.id})
                self._send(200, {"silenceID": s.id, "status": "expired"})

        try:
            self.httpd = ThreadingHTTPServer((settings.host, settings.port), Handler)
        except OSError as exc:
            raise OSError(f"cannot serve the alerting API on {settings.host}:{settings.port}: {exc.strerror} "
                          "(set api.port in the config)") from None
        self.httpd.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"

    def run(self, stop: threading.Event) -> None:
        t = threading.Thread(target=self.httpd.serve_forever, name="alert-api-http", daemon=True)
        t.start()
        _log.info("alerting API", extra={"url": self.url})
        stop.wait()
        self.httpd.shutdown()
        self.httpd.server_close()

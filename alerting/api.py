"""The alerting HTTP API, shaped after Alertmanager's v2 API so its habits carry over:

    GET    /api/v2/alerts[?state=firing|pending|resolved]   alerts with state, value and silencedBy; also
           [?filter=<matcher>&active=&silenced=&inhibited=&unprocessed=&receiver=<regex>] as Alertmanager
    GET    /api/v2/alerts/groups                            notification groups and their alerts
    GET    /api/v2/silences[?filter=<matcher>]              silences with their state
    GET    /api/v2/receivers                                receiver names
    GET    /api/v2/status                                   version, uptime, the routing config (secrets masked)
    POST   /api/v2/silences                                 {"matchers": ["team=\\"db\\""] | [{name,value,isRegex,isEqual}],
                                                             "startsAt"?, "endsAt" | "duration": "2h",
                                                             "createdBy", "comment"}  →  {"silenceID": ...}
    DELETE /api/v2/silence/{id}                             expire a silence now
    GET    /-/healthy

Times are RFC 3339. Writes need ``Authorization: Bearer <api.token>`` when a token is configured.
The shapes are Alertmanager's, so its ``amtool`` works against logtide: ``alert query``, ``silence
add/query/expire`` and ``config show`` (``amtool --alertmanager.url http://127.0.0.1:9093 ...``).
"""

from __future__ import annotations

import hmac
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import orjson

import yaml

from logtide import __version__, log

from logtide.timeutil import NS, parse_duration, require_rfc3339
from logtide.alerting.matchers import parse_matcher
from logtide.alerting.state import rfc3339

_log = log.get("alerting.api")
MAX_BODY = 1 << 20


def parse_api_time(value) -> int:
    """A time in the API (and ``alert test`` events): RFC 3339, or Unix ns as an integer."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return require_rfc3339(value)


SECRET = "<secret>"


def _flag(q: dict, name: str, default: bool = True) -> bool:
    v = (q.get(name) or [None])[0]
    return default if v is None else v.lower() in ("true", "1", "yes")


def config_view(config) -> str:
    """The routing part of the config (route, receivers, inhibit_rules, time_intervals) as YAML in
    Alertmanager's layout, with secrets masked as Alertmanager masks them (``amtool config show``)."""
    dump = config.model_dump(
        mode="json", by_alias=True, exclude_none=True, include={"route", "receivers", "inhibit_rules", "time_intervals"}
    )
    for r in dump.get("receivers", []):
        for w in r.get("webhook", []):
            w["secrets"] = [SECRET for _ in w.get("secrets", [])]
            w["headers"] = {k: SECRET for k in w.get("headers", {})}
        for sl in r.get("slack", []):
            sl["url"] = SECRET
        for pd in r.get("pagerduty", []):
            pd["routing_key"] = SECRET
    return yaml.safe_dump(dump, sort_keys=False)


def _silence_matches_filter(silence, filters: list) -> bool:
    """Alertmanager's silence filter: each filter matcher must match a matcher of the silence with
    the same label name."""
    return all(any(m.name == f.name and f.matches({f.name: m.value}) for m in silence.matchers) for f in filters)


class AlertApi:
    name = "alert-api"

    def __init__(self, engine, settings):
        self.engine = engine
        self.settings = settings
        self.started = time.time_ns()
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
                try:
                    filters = [parse_matcher(f) for f in q.get("filter", [])]
                    rx = (q.get("receiver") or [""])[0]
                    receiver = re.compile(rx) if rx else None
                except (ValueError, re.error) as exc:
                    return self._send(400, {"error": f"bad filter: {exc}"})
                if url.path == "/api/v2/alerts":
                    self._send(
                        200,
                        api.engine.alerts_api(
                            (q.get("state") or [None])[0],
                            filters,
                            active=_flag(q, "active"),
                            silenced=_flag(q, "silenced"),
                            inhibited=_flag(q, "inhibited"),
                            unprocessed=_flag(q, "unprocessed"),
                            receiver=receiver,
                        ),
                    )
                elif url.path == "/api/v2/alerts/groups":
                    self._send(200, api.engine.groups_api())
                elif url.path == "/api/v2/silences":
                    now = api.engine.clock.wall()
                    self._send(
                        200, [s.api(now) for s in api.engine.silences.list() if _silence_matches_filter(s, filters)]
                    )
                elif url.path == "/api/v2/receivers":
                    self._send(200, [{"name": r.name} for r in api.engine.config.receivers])
                elif url.path == "/api/v2/status":
                    self._send(
                        200,
                        {
                            "cluster": {"name": "logtide", "status": "disabled", "peers": []},
                            "config": {"original": config_view(api.engine.config)},
                            "uptime": rfc3339(api.started),
                            "versionInfo": {
                                "version": f"logtide-{__version__}",
                                "branch": "",
                                "buildDate": "",
                                "buildUser": "",
                                "goVersion": "",
                                "revision": "",
                            },
                        },
                    )
                elif url.path in ("/-/healthy", "/-/ready"):
                    self._send(200, {"ok": True})
                else:
                    self._send(
                        404,
                        {
                            "error": "not found: try /api/v2/alerts, /api/v2/alerts/groups, "
                            "/api/v2/silences, /api/v2/receivers, /api/v2/status"
                        },
                    )

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
                    now = api.engine.clock.wall()
                    starts = parse_api_time(body["startsAt"]) if body.get("startsAt") else now
                    if body.get("endsAt"):
                        ends = parse_api_time(body["endsAt"])
                    elif body.get("duration"):
                        ends = starts + int(parse_duration(body["duration"]) * NS)
                    else:
                        raise ValueError("give endsAt or duration")
                    s = api.engine.silences.add(
                        body.get("matchers") or [],
                        starts,
                        ends,
                        str(body.get("createdBy") or ""),
                        str(body.get("comment") or ""),
                        now,
                        body.get("id"),
                    )
                except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
                    return self._send(400, {"error": str(exc)})
                _log.info(
                    "silence created", extra={"id": s.id, "by": s.created_by, "matchers": [str(m) for m in s.matchers]}
                )
                self._send(200, {"silenceID": s.id})

            def do_DELETE(self):  # noqa: N802
                path = urlparse(self.path).path
                if not path.startswith("/api/v2/silence/"):
                    return self._send(404, {"error": "not found"})
                if not self._authorized():
                    return self._send(401, {"error": "missing or wrong bearer token"})
                sid = path.rsplit("/", 1)[1]
                try:
                    s = api.engine.silences.expire(sid, api.engine.clock.wall())
                except KeyError:
                    return self._send(404, {"error": f"no silence {sid}"})
                _log.info("silence expired", extra={"id": s.id})
                self._send(200, {"silenceID": s.id, "status": "expired"})

        try:
            self.httpd = ThreadingHTTPServer((settings.host, settings.port), Handler)
        except OSError as exc:
            raise OSError(
                f"cannot serve the alerting API on {settings.host}:{settings.port}: {exc.strerror} "
                "(set api.port in the config)"
            ) from None
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

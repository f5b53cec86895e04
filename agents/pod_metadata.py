"""Pod and namespace metadata from the Kubernetes API: list+watch of this node's pods, cached.

Two background threads (pods with ``fieldSelector=spec.nodeName=<node>``, and namespaces) each list,
then watch from the list's resourceVersion; on any error they count it, back off (doubling to 30 s)
and list again. The cache keeps serving what it had while the API server is down, and keeps a
deleted pod for ``retain_deleted_seconds`` so the last lines of its files are still enriched.
The client is the official ``kubernetes`` package (its ApiClient: config loading, auth, TLS, pool);
responses are read raw and parsed with orjson (the generated models cost memory and time we do not need).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson
from pydantic import ValidationError

from logtide.agents import metrics
from logtide.agents.config import KubernetesSettings, MultilineSettings
from logtide.agents.path_info import PodRef
from logtide import log

_log = log.get("agents.pod_metadata")

EXCLUDE_ANNOTATION = "logtide.io/exclude"
EXCLUDE_CONTAINERS_ANNOTATION = "logtide.io/exclude-containers"
#: A pod's own line format and multi-line settings, for all its containers or (``-<container>``) one.
PARSER_ANNOTATION = "logtide.io/parser"
MULTILINE_ANNOTATION = "logtide.io/multiline"
_FORMATS = ("auto", "cri", "docker", "plain")


class SourceAnnotations(NamedTuple):
    format: str | None
    multiline: dict | None  # MultilineSettings fields that replace the agent's
    error: str | None  # why an annotation was ignored


def parse_multiline_annotation(value: str) -> dict:
    """``off``; a comma-separated list of languages (``java,python``); or a JSON object of multiline
    settings (``{"start_pattern": "^\\\\d{4}-"}``). Raises ValueError naming what is wrong."""
    value = value.strip()
    if value.lower() in ("off", "false", "none", "disabled"):
        return {"enabled": False}
    if value.startswith("{"):
        try:
            fields = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not a JSON object: {exc}") from None
        if not isinstance(fields, dict):
            raise ValueError("not a JSON object")
    else:
        fields = {"enabled": True, "languages": [v.strip() for v in value.split(",") if v.strip()]}
    try:
        MultilineSettings.model_validate(fields)
    except ValidationError as exc:
        raise ValueError(
            "; ".join((f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "") + e["msg"] for e in exc.errors())
        ) from None
    return fields


def source_annotations(annotations: dict, container: str) -> SourceAnnotations:
    """The format and multiline settings annotations (a pod's or a namespace's) give ``container``
    (``-<container>`` wins over the annotation for all containers); an invalid value is ignored, with
    the reason."""
    fmt = multiline = error = None
    a = annotations
    name = f"{PARSER_ANNOTATION}-{container}" if f"{PARSER_ANNOTATION}-{container}" in a else PARSER_ANNOTATION
    if name in a:
        if str(a[name]).strip() in _FORMATS:
            fmt = str(a[name]).strip()
        else:
            error = f"{name}: {a[name]!r} is not one of {', '.join(_FORMATS)}"
    name = f"{MULTILINE_ANNOTATION}-{container}" if f"{MULTILINE_ANNOTATION}-{container}" in a else MULTILINE_ANNOTATION
    if name in a:
        try:
            multiline = parse_multiline_annotation(str(a[name]))
        except ValueError as exc:
            error = f"{name}: {exc}"
    return SourceAnnotations(fmt, multiline, error)


@dataclass
class PodMeta:
    uid: str
    namespace: str
    name: str
    node: str | None = None
    labels: dict = field(default_factory=dict)
    annotations: dict = field(default_factory=dict)
    owner_kind: str | None = None
    owner_name: str | None = None
    images: dict = field(default_factory=dict)  # container name → image
    restarts: dict = field(default_factory=dict)  # container name → restart count
    resource_version: str = ""
    deleted_at: float | None = None
    #: container → its SourceAnnotations, parsed once (a changed pod is a new PodMeta: the cache goes with it)
    _sources: dict = field(default_factory=dict, repr=False, compare=False)

    def source_annotations(self, container: str) -> SourceAnnotations:
        """The format and multiline settings this pod's annotations give ``container``, parsed once."""
        cached = self._sources.get(container)
        if cached is None:
            cached = self._sources[container] = source_annotations(self.annotations, container)
        return cached

    @classmethod
    def from_object(cls, obj: dict) -> PodMeta:
        md = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        owners = md.get("ownerReferences") or []
        owner = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
        images = {
            c.get("name"): c.get("image") for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
        }
        restarts = {
            c.get("name"): c.get("restartCount", 0)
            for c in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or [])
        }
        return cls(
            uid=md.get("uid", ""),
            namespace=md.get("namespace", ""),
            name=md.get("name", ""),
            node=spec.get("nodeName"),
            labels=dict(md.get("labels") or {}),
            annotations=dict(md.get("annotations") or {}),
            owner_kind=owner.get("kind") if owner else None,
            owner_name=owner.get("name") if owner else None,
            images=images,
            restarts=restarts,
            resource_version=md.get("resourceVersion", ""),
        )


def _api_client(settings: KubernetesSettings):
    """The `kubernetes` package's ApiClient (configuration, auth, TLS, connection pool).

    We call it directly rather than through ``CoreV1Api``: in kubernetes >= 35 importing CoreV1Api
    builds ~250 pydantic models (seconds of CPU and tens of MB on a node agent) for two GET requests.
    """
    from kubernetes import client
    from kubernetes import config as kube_config

    cfg = client.Configuration()
    if settings.api_server:
        cfg.host = settings.api_server.rstrip("/")
        cfg.verify_ssl = settings.verify_ssl
        if settings.token:
            cfg.api_key = {"BearerToken": settings.token}
            cfg.api_key_prefix = {"BearerToken": "Bearer"}
    else:
        try:
            kube_config.load_incluster_config(client_configuration=cfg)
        except kube_config.ConfigException:
            kube_config.load_kube_config(config_file=settings.kubeconfig, client_configuration=cfg)
    return client.ApiClient(cfg)


def _get(api, path: str, query: list[tuple[str, str]], timeout: float):
    """GET one API path; the raw urllib3 response (not read yet), or an error for a non-2xx status."""
    method, url, headers, _body, _post = api.param_serialize(
        method="GET",
        resource_path=path,
        query_params=query,
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    resp = api.call_api(method, url, header_params=headers, _request_timeout=timeout)
    if not 200 <= resp.status < 300:
        body = resp.read()[:300]
        raise RuntimeError(f"GET {path}: HTTP {resp.status} {resp.reason}: {body!r}")
    return resp.response


def _json_lines(response, stop: threading.Event):
    """The objects of a watch stream (one JSON document per line), as they arrive."""
    pending = b""
    for chunk in response.stream(64 * 1024, decode_content=True):
        if stop.is_set():
            return
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield orjson.loads(line)
    if pending.strip():
        yield orjson.loads(pending)


class _ListWatch(threading.Thread):
    """List, then watch from the list's resourceVersion; on failure back off and list again."""

    def __init__(
        self,
        kind: str,
        settings: KubernetesSettings,
        path: str,
        query: list[tuple[str, str]],
        on_list,
        on_event,
        on_state,
    ):
        super().__init__(name=f"agent-kube-{kind}", daemon=True)
        self.kind = kind
        self.settings = settings
        self.path = path
        self.query = query
        self.on_list = on_list
        self.on_event = on_event
        self.on_state = on_state
        self.stop_event = threading.Event()
        self.api = None

    def run(self) -> None:
        backoff = self.settings.retry_seconds
        while not self.stop_event.is_set():
            try:
                if self.api is None:
                    self.api = _api_client(self.settings)
                body = orjson.loads(_get(self.api, self.path, self.query, 15).data)
                self.on_list(body.get("items") or [])
                rv = (body.get("metadata") or {}).get("resourceVersion") or ""
                self.on_state(True)
                backoff = self.settings.retry_seconds
                timeout = self.settings.watch_timeout_seconds
                while not self.stop_event.is_set():  # one watch request per timeout, from the last rv
                    query = self.query + [
                        ("watch", "true"),
                        ("resourceVersion", rv),
                        ("timeoutSeconds", str(timeout)),
                        ("allowWatchBookmarks", "true"),
                    ]
                    response = _get(self.api, self.path, query, timeout + 15)
                    try:
                        for ev in _json_lines(response, self.stop_event):
                            kind = ev.get("type")
                            obj = ev.get("object") or {}
                            if kind == "ERROR":  # e.g. 410 Gone: our resourceVersion is too old
                                raise RuntimeError(f"watch error: {obj.get('message') or obj}")
                            metrics.KUBE_EVENTS.labels(self.kind, str(kind)).inc()
                            rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                            if kind in ("ADDED", "MODIFIED", "DELETED"):
                                self.on_event(kind, obj)
                    finally:
                        response.release_conn()
            except Exception as exc:  # noqa: BLE001 - the API server may fail in any way; we keep going
                if self.stop_event.is_set():
                    break
                metrics.KUBE_API_ERRORS.inc()
                metrics.BAD_INPUT.labels("api_unreachable").inc()
                self.on_state(False)
                _log.warning(
                    "kubernetes api error; retrying",
                    extra={"what": self.kind, "error": str(exc)[:300], "retry_in": backoff},
                )
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, 30.0)


class PodMetadata:
    """The cache the agent reads (from its own thread) while the watch threads write it."""

    def __init__(self, settings: KubernetesSettings):
        self.settings = settings
        self._lock = threading.Lock()
        self._pods: dict[str, PodMeta] = {}  # uid → meta
        self._by_name: dict[tuple[str, str], str] = {}  # (namespace, name) → uid
        self._namespaces: dict[str, dict] = {}  # name → annotations
        self._connected = {"pods": False, "namespaces": False}
        self.synced = threading.Event()  # the first pod list arrived
        self._tried = {"pods": threading.Event(), "namespaces": threading.Event()}  # first list done or failed
        self.version = 0  # grows on every change (to refresh files)
        selector = [("fieldSelector", f"spec.nodeName={settings.node_name}")] if settings.node_name else []
        self._threads = [
            _ListWatch(
                "pods",
                settings,
                "/api/v1/pods",
                selector,
                self._pods_listed,
                self._pod_event,
                lambda ok: self._state("pods", ok),
            ),
            _ListWatch(
                "namespaces",
                settings,
                "/api/v1/namespaces",
                [],
                self._namespaces_listed,
                self._namespace_event,
                lambda ok: self._state("namespaces", ok),
            ),
        ]

    def start(self) -> PodMetadata:
        # Import here, once: two threads importing the kubernetes package at the same time deadlock.
        import kubernetes.client.api_client  # noqa: F401
        import kubernetes.config  # noqa: F401

        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        for t in self._threads:
            t.stop_event.set()

    @property
    def connected(self) -> bool:
        return self._connected["pods"]

    def worth_waiting(self, have_pod: bool) -> bool:
        """Should a new file wait for metadata (pod or namespace annotations not in yet, and the API
        answers or has not been asked yet)?"""
        if have_pod and self._tried["namespaces"].is_set():
            return False
        return self._connected["pods"] or not self._tried["pods"].is_set()

    def _state(self, what: str, ok: bool) -> None:
        self._connected[what] = ok
        self._tried[what].set()
        metrics.KUBE_CONNECTED.set(1 if self._connected["pods"] else 0)

    # --- writers (watch threads) ----------------------------------------------------------------

    def _upsert(self, meta: PodMeta) -> None:
        self._pods[meta.uid] = meta
        self._by_name[(meta.namespace, meta.name)] = meta.uid

    def _pods_listed(self, items: list[dict]) -> None:
        now = time.monotonic()
        with self._lock:
            seen = set()
            for obj in items:
                meta = PodMeta.from_object(obj)
                seen.add(meta.uid)
                self._upsert(meta)
            for uid, meta in self._pods.items():
                if uid not in seen and meta.deleted_at is None:
                    meta.deleted_at = now
            self._expire(now)
            self.version += 1
        self.synced.set()

    def _pod_event(self, kind: str, obj: dict) -> None:
        meta = PodMeta.from_object(obj)
        now = time.monotonic()
        with self._lock:
            if kind == "DELETED":
                old = self._pods.get(meta.uid)
                (old or meta).deleted_at = now
                if old is None:
                    self._upsert(meta)
            else:
                self._upsert(meta)
            self._expire(now)
            self.version += 1

    def _namespaces_listed(self, items: list[dict]) -> None:
        with self._lock:
            self._namespaces = {
                (o.get("metadata") or {}).get("name", ""): dict((o.get("metadata") or {}).get("annotations") or {})
                for o in items
            }
            self.version += 1

    def _namespace_event(self, kind: str, obj: dict) -> None:
        md = obj.get("metadata") or {}
        with self._lock:
            if kind == "DELETED":
                self._namespaces.pop(md.get("name", ""), None)
            else:
                self._namespaces[md.get("name", "")] = dict(md.get("annotations") or {})
            self.version += 1

    def _expire(self, now: float) -> None:
        keep = self.settings.retain_deleted_seconds
        for uid in [u for u, m in self._pods.items() if m.deleted_at is not None and now - m.deleted_at > keep]:
            meta = self._pods.pop(uid)
            if self._by_name.get((meta.namespace, meta.name)) == uid:
                del self._by_name[(meta.namespace, meta.name)]
        metrics.POD_CACHE.set(len(self._pods))

    # --- readers (agent thread) -------------------------------------------------------------------

    def pod(self, ref: PodRef) -> PodMeta | None:
        with self._lock:
            if ref.uid and ref.uid in self._pods:
                return self._pods[ref.uid]
            uid = self._by_name.get((ref.namespace, ref.pod))
            return self._pods.get(uid) if uid else None

    def namespace_annotations(self, namespace: str) -> dict:
        with self._lock:
            return self._namespaces.get(namespace, {})

"""The Kubernetes API collector: pod logs of a namespace (the work item) streamed from the API server.

Per namespace, three kinds of threads:
- the watcher lists pods (label selector) and watches them; it starts a ``ContainerReader`` for each
  container that has started, tells readers of deleted pods their pod is gone, relists on 410 Gone and
  backs off on API errors;
- one reader per container follows its log and queues lines (see ``logstream``);
- the item's own thread drains the queue, drops the resume overlap, ships batches, waits for the acks
  and only then checkpoints each container's position {pod uid, restart count, timestamp, n}.

On stop (shutdown or a rebalance) readers are interrupted, what they queued is shipped and
checkpointed, and only then does the item return.
"""

from __future__ import annotations

import queue
import threading
import time

import urllib3
from kubernetes import watch as k8s_watch

from logtide import envelope, log

from logtide.collectors.base import Backoff, PullCollector, Shipper, log_error, sniff_severity
from logtide.collectors.k8s.api import ApiException, KubernetesApi
from logtide.collectors.k8s.config import KubernetesConfig
from logtide.collectors.k8s.logstream import ContainerReader, Dedup, Position, parse_line

_log = log.get("collectors.k8s")


def started_containers(pod: dict) -> dict[str, int]:
    """Container name → restart count, for containers that have run (they have logs)."""
    out = {}
    for st in (pod.get("status") or {}).get("containerStatuses") or ():
        state = st.get("state") or {}
        if state.get("running") or state.get("terminated") or st.get("restartCount"):
            out[st["name"]] = int(st.get("restartCount") or 0)
    return out


def pod_resource(pod: dict, container: str) -> dict:
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    resource = {
        "k8s.namespace.name": meta.get("namespace"),
        "k8s.pod.name": meta.get("name"),
        "k8s.pod.uid": meta.get("uid"),
        "k8s.container.name": container,
        "k8s.node.name": (pod.get("spec") or {}).get("nodeName"),
        "service.name": labels.get("app.kubernetes.io/name") or labels.get("app") or container,
    }
    for k, v in labels.items():
        resource[f"k8s.pod.labels.{k}"] = v
    return resource


class NamespaceRun:
    """One namespace's watcher, readers and shipping loop (one run of the work item)."""

    def __init__(self, collector: KubernetesCollector, namespace: str):
        self.c = collector
        self.cfg: KubernetesConfig = collector.config
        self.namespace = namespace
        self.item = namespace
        self.queue: queue.Queue = queue.Queue(maxsize=max(10_000, 10 * self.cfg.batch_lines))
        self.lock = threading.Lock()
        self.pods: dict[str, dict] = {}
        self.readers: dict[str, ContainerReader] = {}
        self.positions: dict[str, Position] = {}
        self.dedups: dict[str, Dedup] = {}
        self.gone: set[str] = set()
        self.stopping = threading.Event()
        self._watcher: k8s_watch.Watch | None = None

    # --- watching pods ------------------------------------------------------------------------

    def watch_loop(self) -> None:
        backoff = Backoff(0.5, 30.0)
        api = self.c.api
        while not self.stopping.is_set():
            try:
                self.c.metrics.api_call("list_pods")
                pods, rv = api.list_pods(self.namespace)
                names = set()
                for pod in pods:
                    names.add(pod["metadata"]["name"])
                    self.on_pod("ADDED", pod)
                with self.lock:
                    vanished = [p for n, p in self.pods.items() if n not in names]
                for pod in vanished:
                    self.on_pod("DELETED", pod)
                self._watcher = k8s_watch.Watch()
                self.c.metrics.api_call("watch_pods")
                for event in api.watch_pods(self.namespace, rv, self._watcher):
                    if self.stopping.is_set():
                        break
                    obj = event.get("raw_object") or event.get("object")
                    if isinstance(obj, dict) and event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        self.on_pod(event["type"], obj)
                backoff.reset()
            except ApiException as exc:
                if exc.status == 410:
                    continue  # resourceVersion too old: list again
                self.c.metrics.error("api")
                log_error(
                    self.c.name, "api", "pod list/watch failed; retrying", namespace=self.namespace, status=exc.status
                )
                backoff.wait_quietly(self.stopping)
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                if self.stopping.is_set():
                    return
                self.c.metrics.error("network")
                log_error(
                    self.c.name,
                    "network",
                    "pod watch broke; listing again",
                    namespace=self.namespace,
                    error=exc.__class__.__name__,
                )
                backoff.wait_quietly(self.stopping)

    def on_pod(self, kind: str, pod: dict) -> None:
        meta = pod.get("metadata") or {}
        name, uid = meta.get("name"), meta.get("uid")
        with self.lock:
            if self.stopping.is_set():
                return
            if kind == "DELETED":
                self.pods.pop(name, None)
                for key, reader in self.readers.items():
                    if reader.pod == name:
                        reader.pod_gone.set()  # its follow stream ends with the pod; it exits then
                        self.gone.add(key)
                return
            old = self.pods.get(name)
            if old is not None and (old.get("metadata") or {}).get("uid") != uid:
                for reader in self.readers.values():
                    if reader.pod == name:  # same name, new pod: the old one's readers end
                        reader.shutdown()
            self.pods[name] = pod
            for container, restarts in started_containers(pod).items():
                key = f"{self.namespace}/{name}/{container}"
                reader = self.readers.get(key)
                if reader is not None and reader.thread.is_alive() and not reader.stop.is_set():
                    reader.restarts = restarts
                    continue
                self._start_reader(key, pod, container, restarts)

    def _start_reader(self, key: str, pod: dict, container: str, restarts: int) -> None:
        name, uid = pod["metadata"]["name"], pod["metadata"].get("uid")
        cp = self.c.checkpoints.get(key)
        if cp and cp.get("uid") == uid:
            pos = Position(int(cp.get("ts", 0)), int(cp.get("n", 0)))
            since, previous = pos.ts or None, int(cp.get("restarts", 0)) < restarts
        else:
            pos, since, previous = Position(), None, restarts > 0
        self.positions[key] = pos
        self.dedups[key] = Dedup()
        self.gone.discard(key)
        reader = ContainerReader(
            self.c.api, self.c.metrics, self.queue, self.namespace, name, container, since, previous
        )
        # What the shipping loop needs about the container instance this reader follows.
        reader.uid, reader.restarts, reader.resource = uid, restarts, pod_resource(pod, container)
        self.readers[key] = reader.start()

    # --- shipping -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        shipper = self.c.shipper()
        watcher = threading.Thread(target=self.watch_loop, name=f"k8s-watch:{self.namespace}", daemon=True)
        watcher.start()
        try:
            while not stop.is_set():
                self.ship_once(shipper, self.cfg.flush_interval_seconds)
                self.forget_deleted()
        finally:
            self.stopping.set()
            with self.lock:
                readers = list(self.readers.values())
            for r in readers:
                r.shutdown()
            self._interrupt_watch()
            for r in readers:
                r.thread.join(10)
            # Flush before letting go: what the readers queued is shipped and checkpointed.
            while not self.queue.empty():
                self.ship_once(shipper, 0)

    def _interrupt_watch(self) -> None:
        resp = getattr(self._watcher, "_resp", None)
        if self._watcher is not None:
            self._watcher.stop()
        try:
            if resp is not None:
                resp.shutdown()
        except Exception:
            pass

    def ship_once(self, shipper: Shipper, wait: float) -> None:
        entries = []
        try:
            entries.append(self.queue.get(timeout=wait) if wait > 0 else self.queue.get_nowait())
            while len(entries) < self.cfg.batch_lines:
                entries.append(self.queue.get_nowait())
        except queue.Empty:
            pass
        if not entries:
            return
        batch, touched = [], {}
        now = time.time()
        for kind, key, line in entries:
            dedup = self.dedups.get(key)
            if dedup is None:
                continue
            if kind == "reset":
                dedup.reset()
                continue
            ts, text = parse_line(line)
            if ts is None:
                ts = max(dedup.ts, 0)
            k = dedup.number(ts)
            pos = self.positions[key]
            if not Dedup.is_new(ts, k, pos):
                self.c.metrics.duplicates.inc()
                continue
            pos.ts, pos.n = ts, k
            touched[key] = pos
            batch.append(self._event(key, ts, k, text))
        if batch:
            shipper.ship(self.c.topic, batch)
            self.c.metrics.lag(self.item, now - max(p.ts for p in touched.values()) / 1e9)
        values = {
            key: {"uid": self.readers[key].uid, "restarts": self.readers[key].restarts, "ts": pos.ts, "n": pos.n}
            for key, pos in touched.items()
        }
        if values:
            self.c.checkpoints.put_many(self.item, values)

    def _event(self, key: str, ts: int, k: int, text: str) -> tuple[dict, bytes]:
        reader = self.readers[key]
        container = reader.container
        event = envelope.new_event(
            id=envelope.make_id("k8s", reader.uid, container, ts, k),
            body=text,
            source="k8s",
            time=ts,
            severity_text=sniff_severity(text),
            resource=dict(reader.resource),
        )
        return event, key.encode()

    def forget_deleted(self) -> None:
        """Drop the checkpoints of deleted pods once their readers finished and all lines were shipped."""
        if not self.gone or not self.queue.empty():
            return
        with self.lock:
            done = [k for k in self.gone if not self.readers[k].thread.is_alive()]
            for key in done:
                self.gone.discard(key)
                self.readers.pop(key, None)
        for key in done:
            self.c.checkpoints.delete(key)


class KubernetesCollector(PullCollector):
    name = "k8s"

    def __init__(self, config: KubernetesConfig, transport):
        super().__init__(transport)
        self.config = config
        self.topic = config.topic
        self.api = KubernetesApi(config)

    def work_items(self) -> list[str]:
        return list(self.config.namespaces)

    def run_item(self, item: str, stop: threading.Event) -> None:
        NamespaceRun(self, item).run(stop)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.api.close()

"""Kubernetes API access for the collector, through the official ``kubernetes`` client.

Pods are listed and watched as raw JSON (tolerant of fields the client's models do not know). Logs
are opened as raw streams through the client's public ``param_serialize``/``call_api``: the generated
``read_namespaced_pod_log`` of this client version has no ``since_time`` parameter, and resuming at an
absolute time (not "N seconds ago") is the point of a checkpoint.
"""

from __future__ import annotations

import json

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from logtide.timeutil import format_rfc3339

from logtide.collectors.k8s.config import KubernetesConfig


def build_client(cfg: KubernetesConfig) -> k8s_client.ApiClient:
    if cfg.api_server:
        conf = k8s_client.Configuration()
        conf.host = cfg.api_server
        if cfg.token:
            conf.api_key = {"authorization": cfg.token.get_secret_value()}
            conf.api_key_prefix = {"authorization": "Bearer"}
        conf.verify_ssl = cfg.verify_ssl
        if cfg.ca_file:
            conf.ssl_ca_cert = cfg.ca_file
        return k8s_client.ApiClient(conf)
    if cfg.kubeconfig or not cfg.in_cluster:
        return k8s_config.new_client_from_config(config_file=cfg.kubeconfig, context=cfg.context)
    conf = k8s_client.Configuration()
    k8s_config.load_incluster_config(client_configuration=conf)
    return k8s_client.ApiClient(conf)


class KubernetesApi:
    def __init__(self, cfg: KubernetesConfig):
        self.cfg = cfg
        self.client = build_client(cfg)
        self.core = k8s_client.CoreV1Api(self.client)

    def list_pods(self, namespace: str) -> tuple[list[dict], str]:
        """(pods as dicts, resourceVersion to watch from)."""
        kwargs = {"label_selector": self.cfg.label_selector} if self.cfg.label_selector else {}
        resp = self.core.list_namespaced_pod(namespace, _preload_content=False, _request_timeout=(10, 60), **kwargs)
        body = json.loads(resp.data)
        return body.get("items") or [], (body.get("metadata") or {}).get("resourceVersion", "")

    def watch_pods(self, namespace: str, resource_version: str, watcher: k8s_watch.Watch):
        """Raw watch events ({'type', 'object'}) until the server ends the watch."""
        kwargs = {"label_selector": self.cfg.label_selector} if self.cfg.label_selector else {}
        yield from watcher.stream(
            self.core.list_namespaced_pod,
            namespace,
            resource_version=resource_version,
            timeout_seconds=self.cfg.watch_timeout_seconds,
            deserialize=False,
            _request_timeout=(10, self.cfg.watch_timeout_seconds + 30),
            **kwargs,
        )

    def open_log(
        self, namespace: str, pod: str, container: str, *, follow: bool, since_ns: int | None, previous: bool = False
    ) -> urllib3.BaseHTTPResponse:
        """A raw log stream with timestamps (read lines from it, ``shutdown()`` it to stop)."""
        query: list[tuple[str, str]] = [("container", container), ("timestamps", "true")]
        if follow:
            query.append(("follow", "true"))
        if previous:
            query.append(("previous", "true"))
        if since_ns:
            # sinceTime: RFC 3339 in whole seconds (the overlap of a resume is dropped by id)
            query.append(("sinceTime", format_rfc3339(since_ns, digits=0)))
        elif self.cfg.start_seconds_ago:
            query.append(("sinceSeconds", str(int(self.cfg.start_seconds_ago))))
        request = self.client.param_serialize(
            "GET",
            "/api/v1/namespaces/{namespace}/pods/{name}/log",
            path_params={"namespace": namespace, "name": pod},
            query_params=query,
            header_params={"Accept": "text/plain"},
            auth_settings=["BearerToken"],
        )
        resp = self.client.call_api(*request, _request_timeout=(10, self.cfg.stream_idle_seconds))
        if not 200 <= resp.status <= 299:
            resp.read()
            raise ApiException.from_response(http_resp=resp, body=None, data=None)
        return resp.response

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:
            pass


__all__ = ["ApiException", "KubernetesApi"]

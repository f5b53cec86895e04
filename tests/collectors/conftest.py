"""Fixtures for the collectors' tests: moto's real HTTP server, the AWS fault proxy, and helpers to
run a collector's work item in a thread and read back what reached Kafka."""

from __future__ import annotations

import boto3
import pytest

from collect_aws_faults import AwsFaultProxy


@pytest.fixture(scope="session")
def moto_url():
    import logging

    from moto.server import ThreadedMotoServer
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch):
    """Credentials from the standard chain (environment variables), as in production."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def fault_proxy(moto_url):
    proxy = AwsFaultProxy(moto_url)
    yield proxy
    proxy.stop()


@pytest.fixture
def logs_client(moto_url):
    def make(region: str = "us-east-1"):
        return boto3.client("logs", region_name=region, endpoint_url=moto_url,
                            aws_access_key_id="testing", aws_secret_access_key="testing")
    return make


@pytest.fixture
def sf_double(tmp_path):
    from collect_sf_double import SalesforceDouble
    double = SalesforceDouble(str(tmp_path), page_size=2)
    yield double
    double.stop()


@pytest.fixture
def k8s_double():
    from collect_k8s_double import KubernetesDouble
    double = KubernetesDouble()
    yield double
    double.stop()

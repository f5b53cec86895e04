"""Fixtures for the collectors' tests: moto's real HTTP server (its own process), the AWS fault proxy, and helpers to
run a collector's work item in a thread and read back what reached Kafka."""

from __future__ import annotations

import boto3
import pytest

from collect_aws_faults import AwsFaultProxy


@pytest.fixture(scope="session")
def moto_url():
    """moto's server as its own process (as CloudWatch is to the collector: nothing shared but HTTP)."""
    import subprocess
    import sys
    import time
    import urllib.request

    from logtide.broker import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto's server did not start") from None
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(10)


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
        return boto3.client(
            "logs",
            region_name=region,
            endpoint_url=moto_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

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

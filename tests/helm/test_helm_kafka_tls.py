"""The chart's Kafka TLS/SASL values render into exactly the settings the roles use: each rendered
role config loads into its role's model and into the transport settings, with the Secrets projected
where the pod mounts them, and (TLS) connects for real through a mutual-TLS endpoint."""

from __future__ import annotations

import pytest
import yaml

from helm_support import render
from logtide.config import load_config
from logtide.role import connect_checked
from logtide.transport import KafkaSettings, confluent, kafka_python
from test_helm_role_configs import _model, _roles

PASSWORD = "helm-sasl-pw-5b1f0c"


def _project_secrets(spec: dict, container: dict, secrets: dict[str, dict[str, bytes]], root) -> dict[str, str]:
    """Write the Secrets the pod mounts as the kubelet would (only ``items`` when listed) under
    ``root``; return mount path -> local directory, for the Kafka secret mounts."""
    volumes = {v["name"]: v for v in spec["volumes"]}
    out = {}
    for m in container["volumeMounts"]:
        secret = volumes[m["name"]].get("secret")
        if not secret or not m["mountPath"].startswith("/etc/logtide/kafka-"):
            continue
        data = secrets[secret["secretName"]]
        local = root / m["name"]
        local.mkdir(parents=True, exist_ok=True)
        items = secret.get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            (local / item["path"]).write_bytes(data[item["key"]])
        out[m["mountPath"]] = str(local)
    return out


def _local_config(config: dict, mounts: dict[str, str], path) -> str:
    """The rendered config with the secret mount paths pointing at their local projection."""
    text = yaml.safe_dump(config)
    for mount, local in mounts.items():
        text = text.replace(mount + "/", local + "/")
    path.write_text(text)
    return str(path)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_mutual_tls_values_render_into_settings_that_connect(tls_kafka, client, tmp_path):
    values = {
        "kafka": {
            "bootstrap": tls_kafka.mtls,
            "client": client,
            "securityProtocol": "SSL",
            "tls": {
                "enabled": True,
                "existingSecret": "kafka-client-tls",
                "caKey": "ca.crt",
                "certKey": "tls.crt",
                "keyKey": "tls.key",
            },
        }
    }
    secrets = {
        "kafka-client-tls": {
            "ca.crt": tls_kafka.pki.ca.read_bytes(),
            "tls.crt": tls_kafka.pki.client_cert.read_bytes(),
            "tls.key": tls_kafka.pki.client_key.read_bytes(),
        }
    }
    rendered = render(values)
    checked = set()
    for role, command, spec, container in _roles(rendered):
        config = rendered.role_config(role)
        assert config["kafka"] == {
            "bootstrap": tls_kafka.mtls,
            "client": client,
            "security_protocol": "SSL",
            "client_id": f"logtide-{role}",
            "ssl_cafile": "/etc/logtide/kafka-tls/ca.crt",
            "ssl_certfile": "/etc/logtide/kafka-tls/tls.crt",
            "ssl_keyfile": "/etc/logtide/kafka-tls/tls.key",
        }
        mounts = _project_secrets(spec, container, secrets, tmp_path / role)
        assert set(mounts) == {"/etc/logtide/kafka-tls"}
        loaded = load_config(_local_config(config, mounts, tmp_path / f"{role}.yaml"), _model(command))
        local = mounts["/etc/logtide/kafka-tls"]
        assert loaded.kafka == KafkaSettings(
            bootstrap=tls_kafka.mtls,
            client=client,
            security_protocol="SSL",
            client_id=f"logtide-{role}",
            ssl_cafile=f"{local}/ca.crt",
            ssl_certfile=f"{local}/tls.crt",
            ssl_keyfile=f"{local}/tls.key",
        )
        connect_checked(loaded.kafka, timeout=20)  # through mutual TLS, with this client
        checked.add(command)
    assert checked >= {"agent", "process", "sink", "alert"}


def test_sasl_values_render_into_settings_with_the_password_from_the_secret(tmp_path):
    values = {
        "kafka": {
            "bootstrap": "kafka-0.kafka:9093",
            "securityProtocol": "SASL_SSL",
            "sasl": {
                "mechanism": "SCRAM-SHA-512",
                "existingSecret": "kafka-user",
                "passwordKey": "password",
                "usernameKey": "user",
            },
            "tls": {"enabled": True, "existingSecret": "kafka-ca", "caKey": "ca.crt"},
        }
    }
    # Secrets as `kubectl create secret --from-file` leaves them: a trailing newline
    secrets = {
        "kafka-user": {"password": f"{PASSWORD}\n".encode(), "user": b"logtide\n"},
        "kafka-ca": {"ca.crt": b"-----BEGIN CERTIFICATE-----\n"},
    }
    rendered = render(values)
    for text in rendered.files.values():
        assert PASSWORD not in text
    checked = set()
    for role, command, spec, container in _roles(rendered):
        config = rendered.role_config(role)
        assert config["kafka"] == {
            "bootstrap": "kafka-0.kafka:9093",
            "client": "auto",
            "security_protocol": "SASL_SSL",
            "client_id": f"logtide-{role}",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_password": "file:/etc/logtide/kafka-sasl/password",
            "sasl_username": "file:/etc/logtide/kafka-sasl/user",
            "ssl_cafile": "/etc/logtide/kafka-tls/ca.crt",
        }
        mounts = _project_secrets(spec, container, secrets, tmp_path / role)
        assert set(mounts) == {"/etc/logtide/kafka-sasl", "/etc/logtide/kafka-tls"}
        loaded = load_config(_local_config(config, mounts, tmp_path / f"{role}.yaml"), _model(command)).kafka
        assert loaded.security_protocol == "SASL_SSL" and loaded.sasl_mechanism == "SCRAM-SHA-512"
        assert loaded.sasl_username == "logtide"
        assert loaded.sasl_password.get_secret_value() == PASSWORD
        assert loaded.ssl_cafile == mounts["/etc/logtide/kafka-tls"] + "/ca.crt"
        assert PASSWORD not in repr(loaded) and PASSWORD not in str(loaded.model_dump())
        # what each client is given
        ck = confluent.ConfluentTransport(loaded)._conf
        assert (
            ck["security.protocol"],
            ck["sasl.mechanism"],
            ck["sasl.username"],
            ck["sasl.password"],
            ck["ssl.ca.location"],
        ) == ("SASL_SSL", "SCRAM-SHA-512", "logtide", PASSWORD, loaded.ssl_cafile)
        kp = kafka_python.KafkaPythonTransport(loaded)._conf
        assert (
            kp["security_protocol"],
            kp["sasl_mechanism"],
            kp["sasl_plain_username"],
            kp["sasl_plain_password"],
            kp["ssl_cafile"],
        ) == ("SASL_SSL", "SCRAM-SHA-512", "logtide", PASSWORD, loaded.ssl_cafile)
        checked.add(command)
    assert checked >= {"agent", "process", "sink", "alert"}


def test_a_client_certificate_without_its_key_does_not_render():
    # it rendered ssl_keyfile: /etc/logtide/kafka-tls/ (the directory) before
    with pytest.raises(Exception, match="kafka.tls.keyKey is required"):
        render(
            {
                "kafka": {
                    "securityProtocol": "SSL",
                    "tls": {"enabled": True, "existingSecret": "kafka-client-tls", "certKey": "tls.crt"},
                }
            }
        )

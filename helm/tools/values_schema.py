"""Write helm/logtide/values.schema.json (the chart's values contract) from the definitions below and
from the roles' own config models.

    python helm/tools/values_schema.py            # regenerate (after changing values or a role's config model)
    python helm/tools/values_schema.py --check    # exit 1 if the committed file is stale (tests/helm runs it)

The schema is strict (additionalProperties: false) so a misspelt key fails `helm install`, and it has
no place for a secret's value: Kafka credentials are only ever Secret names and keys. Each role's
`config` is the JSON schema of the pydantic model the role itself validates its file with
(`model_json_schema()`, ROLE_MODELS below), so `helm install`/`helm lint` refuse an unknown or mistyped
role key the way the role would. Needs the project installed (the venv): it imports the models.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

CHART = Path(__file__).resolve().parents[1] / "logtide"
OUT = CHART / "values.schema.json"


def obj(props: dict, required: tuple[str, ...] = (), extra: bool = False, **kw) -> dict:
    out = {"type": "object", "properties": props, "additionalProperties": extra, **kw}
    if required:
        out["required"] = list(required)
    return out


def free(description: str = "") -> dict:
    """A Kubernetes or free-form object passed through as it is."""
    return {"type": "object", **({"description": description} if description else {})}


def arr(items: dict | None = None, description: str = "") -> dict:
    out: dict = {"type": "array"}
    if items:
        out["items"] = items
    if description:
        out["description"] = description
    return out


#: `logtide <command>` -> the config model it validates its --config file with (module:Class).
ROLE_MODELS = {
    "agent": "logtide.agents.config:AgentConfig",
    "collect": "logtide.collectors.config:CollectConfig",
    "process": "logtide.processors.app:ProcessorConfig",
    "sink": "logtide.processors.sinks.config:SinkConfig",
    "alert": "logtide.alerting.config:AlertConfig",
}


def role_model(command: str):
    module, cls = ROLE_MODELS[command].split(":")
    return getattr(importlib.import_module(module), cls)


def _role_schema_generator():
    from pydantic.json_schema import GenerateJsonSchema

    class RoleConfigSchema(GenerateJsonSchema):
        """The models' schemas, never stricter than the models: a field the role parses with its own code
        (a before/wrap/plain validator: "5m" durations, `severity="critical"` matchers) accepts any value
        here unless the model declares its input type; the `helm test` hook (`logtide check`) checks it."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.core_definitions: dict = {}  # ref -> core schema, to see what a definition-ref names

        def definitions_schema(self, schema):
            self.core_definitions.update({d["ref"]: d for d in schema["definitions"]})
            return super().definitions_schema(schema)

        def _parsed_by_code(self, schema, inner_key: str | None):
            if self.mode == "validation" and schema.get("json_schema_input_schema"):
                return self.generate_inner(schema["json_schema_input_schema"])
            inner = schema.get(inner_key) if inner_key else None
            target = (
                self.core_definitions.get(inner["schema_ref"], {})
                if inner and inner["type"] == "definition-ref"
                else inner
            )
            if target and target["type"] == "model":
                return self.generate_inner(inner)  # a model-level validator: its fields are still checked
            return {"description": "parsed by the role's own code: checked by `logtide check` (helm test)"}

        def function_before_schema(self, schema):
            return self._parsed_by_code(schema, "schema")

        def function_wrap_schema(self, schema):
            return self._parsed_by_code(schema, "schema")

        def function_plain_schema(self, schema):
            return self._parsed_by_code(schema, None)

    return RoleConfigSchema


def role_config_definitions() -> dict:
    """definitions `<role>Config` (the model's schema) and `<role>Config.<Sub>` (its nested models).

    The refs point into the values schema's own `definitions` (a ref is resolved from the document's
    root), prefixed per role because two models may name different nested models alike.
    """
    out = {}
    for key in ROLE_MODELS:
        name = f"{key}Config"
        schema = role_model(key).model_json_schema(
            ref_template=f"#/definitions/{name}.{{model}}", schema_generator=_role_schema_generator()
        )
        for sub, sub_schema in schema.pop("$defs", {}).items():
            out[f"{name}.{sub}"] = sub_schema
        schema.pop("required", None)  # the chart writes what the role needs besides its own keys
        out[name] = schema
    return out


STR = {"type": "string"}
BOOL = {"type": "boolean"}
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
REF = lambda name: {"$ref": f"#/definitions/{name}"}  # noqa: E731

SECRET_MOUNT = obj(
    {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "secretName": {"type": "string", "minLength": 1},
        "mountPath": {"type": "string", "pattern": "^/"},
    },
    required=("name", "secretName", "mountPath"),
)

SERVICE_ACCOUNT = obj({"create": BOOL, "name": STR, "annotations": free("e.g. an IRSA role ARN")})

AUTOSCALING = obj(
    {
        "enabled": BOOL,
        "minReplicas": {"type": "integer", "minimum": 1},
        "maxReplicas": {"type": "integer", "minimum": 1},
        "targetCPUUtilizationPercentage": {"type": "integer", "minimum": 1, "maximum": 100},
        "targetMemoryUtilizationPercentage": {"type": "integer", "minimum": 1, "maximum": 100},
    }
)

#: What every role (agent, collector, processor, sink, alerting) accepts; `config` is set per role below.
ROLE_COMMON = {
    "enabled": BOOL,
    "resources": free(),
    "podSecurityContext": free(),
    "securityContext": free(),
    "nodeSelector": free(),
    "affinity": free(),
    "tolerations": arr(free()),
    "priorityClassName": STR,
    "env": arr(free()),
    "envFrom": arr(free()),
    "extraSecretMounts": arr(REF("secretMount")),
    "extraVolumes": arr(free()),
    "extraVolumeMounts": arr(free()),
    "serviceAccount": REF("serviceAccount"),
}


def with_config(role: dict, command: str) -> dict:
    """The role's schema with its `config` checked by the role's own config model."""
    return {**role, "properties": {**role["properties"], "config": REF(f"{command}Config")}}


DEPLOYMENT_ROLE = obj(
    {
        **ROLE_COMMON,
        "replicas": {"type": "integer", "minimum": 0},
        "autoscaling": REF("autoscaling"),
        "podDisruptionBudget": obj({"enabled": BOOL, "maxUnavailable": {"type": ["integer", "string"]}}),
        "persistence": obj(
            {
                "enabled": BOOL,
                "size": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"},
                "storageClass": STR,
                "accessMode": {"enum": ["ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany"]},
                "existingClaim": STR,
            }
        ),
    }
)


def needs_config(section: str, *required: str, description: str) -> dict:
    """A role that, once enabled, must say in its config what its `section` works on."""
    return {
        "if": {"properties": {"enabled": {"const": True}}, "required": ["enabled"]},
        "then": {
            "required": ["config"],
            "properties": {
                "config": {
                    "required": [section],
                    "properties": {section: {"type": "object", "required": list(required)}},
                    "description": description,
                }
            },
        },
    }


#: Collectors and sinks whose section has required fields: enabling one without them fails at install.
COLLECTOR = with_config(DEPLOYMENT_ROLE, "collect")
SINK = with_config(DEPLOYMENT_ROLE, "sink")
COLLECTORS = {
    "k8s": {**COLLECTOR, **needs_config("k8s", "namespaces", description="k8s.namespaces: the work items")},
    "cloudwatch": {
        **COLLECTOR,
        **needs_config(
            "cloudwatch", "regions", "log_groups", description="cloudwatch.regions and cloudwatch.log_groups"
        ),
    },
    "salesforce": {**COLLECTOR, **needs_config("salesforce", "auth", description="salesforce.auth")},
}
KNOWN_SINKS = {
    "monitoring": SINK,
    "audit": {**SINK, **needs_config("audit", "storage", "hmac_key", description="audit.storage and audit.hmac_key")},
    "analytics": {**SINK, **needs_config("analytics", description="analytics.parquet and/or analytics.postgres")},
}
#: A sink entry not named after a kind gets no section from the chart: once enabled, its config names one.
OTHER_SINK = {
    **SINK,
    "if": {"properties": {"enabled": {"const": True}}, "required": ["enabled"]},
    "then": {
        "required": ["config"],
        "properties": {
            "config": {
                "anyOf": [{"required": [kind]} for kind in ("monitoring", "audit", "analytics")],
                "description": "a sink not named monitoring, audit or analytics says its kind: a monitoring, audit or analytics section",
            }
        },
    },
}

#: The alerting engine: a Deployment role with its API port and its rule files.
ALERTING = {
    **DEPLOYMENT_ROLE,
    "properties": {
        **DEPLOYMENT_ROLE["properties"],
        "config": REF("alertConfig"),
        "api": obj({"port": PORT}),
        "rules": {
            "type": "object",
            "description": "rule file name -> its content",
            "propertyNames": {"pattern": "^[A-Za-z0-9][-_.A-Za-z0-9]*[.]ya?ml$"},
            "additionalProperties": obj({"rules": arr(free())}, required=("rules",)),
        },
    },
}

AGENT = obj(
    {
        **ROLE_COMMON,
        "config": REF("agentConfig"),
        "hostPaths": obj(
            {
                "pods": {"type": "string", "pattern": "^/"},
                "containers": {"type": "string", "pattern": "^/"},
                "extra": arr({"type": "string", "pattern": "^/"}),
            },
            required=("pods", "containers"),
        ),
        "checkpoints": obj(
            {
                "type": {"enum": ["hostPath", "emptyDir"]},
                "hostPath": {"type": "string", "pattern": "^(|/.*)$"},
                "mountPath": {"type": "string", "pattern": "^/"},
                "initChown": BOOL,
            }
        ),
        "updateStrategy": free(),
    }
)

KAFKA = obj(
    {
        "bootstrap": {
            "type": "string",
            "minLength": 1,
            "pattern": "^[^,\\s]+:[0-9]+(,[^,\\s]+:[0-9]+)*$",
            "description": "host:port[,host:port]",
        },
        "client": {"enum": ["auto", "confluent", "kafka-python"]},
        "securityProtocol": {"enum": ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]},
        # No `password` key on purpose: a password in values would end up in a ConfigMap.
        "sasl": obj(
            {
                "mechanism": {"enum": ["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]},
                "username": STR,
                "existingSecret": STR,
                "passwordKey": {"type": "string", "minLength": 1},
                "usernameKey": STR,
            },
            **{
                "if": {"properties": {"mechanism": {"minLength": 1}}, "required": ["mechanism"]},
                "then": {"properties": {"existingSecret": {"minLength": 1}}, "required": ["existingSecret"]},
            },
        ),
        "tls": obj(
            {
                "enabled": BOOL,
                "existingSecret": STR,
                "caKey": {"type": "string", "minLength": 1},
                "certKey": STR,
                "keyKey": STR,
            },
            **{
                "if": {"properties": {"enabled": {"const": True}}, "required": ["enabled"]},
                "then": {"properties": {"existingSecret": {"minLength": 1}}, "required": ["existingSecret"]},
            },
        ),
        "producer": free(),
        "consumer": free(),
    },
    required=("bootstrap",),
)

PROBE = obj(
    {
        k: {"type": "integer", "minimum": 0 if k == "initialDelaySeconds" else 1}
        for k in ("initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold")
    }
)

SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "logtide chart values",
    "definitions": {
        "secretMount": SECRET_MOUNT,
        "serviceAccount": SERVICE_ACCOUNT,
        "autoscaling": AUTOSCALING,
        "otherSink": OTHER_SINK,
    },
    **obj(
        {
            "nameOverride": STR,
            "fullnameOverride": STR,
            "commonLabels": free(),
            "global": free("Helm's global values (shared with parent charts)"),
            "image": obj(
                {
                    "repository": {"type": "string", "minLength": 1},
                    "tag": STR,
                    "digest": {"type": "string", "pattern": "^(|sha256:[a-f0-9]{64})$"},
                    "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                },
                required=("repository",),
            ),
            "imagePullSecrets": arr(free()),
            "kafka": KAFKA,
            "logLevel": {"enum": ["debug", "info", "warning", "error"]},
            "http": obj({"port": PORT}, required=("port",)),
            "podSecurityContext": free(),
            "securityContext": free(),
            "probes": obj({"liveness": PROBE, "readiness": PROBE}),
            "podAnnotations": free(),
            "podLabels": free(),
            "metrics": obj(
                {
                    "scrapeAnnotations": BOOL,
                    "serviceMonitor": obj({"enabled": BOOL, "interval": STR, "scrapeTimeout": STR, "labels": free()}),
                    "prometheusRule": obj(
                        {
                            "enabled": BOOL,
                            "labels": free(),
                            "alertLabels": free(),
                            "lagThreshold": {"type": "number", "minimum": 0},
                            "dlqRateThreshold": {"type": "number", "minimum": 0},
                            "checkpointStaleSeconds": {"type": "number", "minimum": 1},
                            "additionalGroups": arr(free()),
                        }
                    ),
                }
            ),
            "dashboards": obj(
                {
                    "enabled": BOOL,
                    "label": {"type": "string", "minLength": 1},
                    "labelValue": STR,
                    "folder": STR,
                    "namespace": STR,
                }
            ),
            "networkPolicy": obj(
                {
                    "enabled": BOOL,
                    "metricsFrom": arr(free()),
                    "alertingApiFrom": arr(free()),
                    "kafkaPorts": arr(PORT),
                    "kafkaTo": arr(free()),
                    "kubernetesApiPorts": arr(PORT),
                    "endpointPorts": {
                        "type": "object",
                        "additionalProperties": PORT,
                        "description": "endpoint reference as written in a config -> its port",
                    },
                    "extraEgressPorts": arr(PORT),
                }
            ),
            "agent": AGENT,
            "collectors": obj(COLLECTORS),
            "processor": with_config(DEPLOYMENT_ROLE, "process"),
            "sinks": {
                "type": "object",
                "description": "sink name -> sink Deployment",
                "propertyNames": {"pattern": "^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$"},
                "properties": KNOWN_SINKS,
                "additionalProperties": REF("otherSink"),
            },
            "alerting": ALERTING,
        },
        required=("image", "kafka", "http"),
    ),
}


def render() -> str:
    schema = {**SCHEMA, "definitions": {**SCHEMA["definitions"], **role_config_definitions()}}
    return json.dumps(schema, indent=2) + "\n"


if __name__ == "__main__":
    if "--check" in sys.argv:
        sys.exit(
            0 if OUT.read_text() == render() else "values.schema.json is stale: run python helm/tools/values_schema.py"
        )
    OUT.write_text(render())
    print(f"wrote {OUT}")

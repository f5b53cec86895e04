"""Config of the Salesforce collector (the ``salesforce:`` section of `logtide collect`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from logtide.config import Model


class PasswordAuth(Model):
    """OAuth username-password flow of a connected app (password + security token)."""

    kind: Literal["password"] = "password"
    username: str
    password: SecretStr
    security_token: SecretStr = SecretStr("")
    client_id: str
    client_secret: SecretStr


class JwtAuth(Model):
    """OAuth JWT bearer flow: a connected app with a certificate, no password."""

    kind: Literal["jwt"] = "jwt"
    username: str
    client_id: str
    #: PEM private key, usually ``file:/var/run/secrets/salesforce/key.pem``.
    private_key: SecretStr
    #: Audience of the assertion; defaults to login_url (test.salesforce.com for sandboxes).
    audience: str | None = None


class SalesforceConfig(Model):
    #: Kafka topic of the events.
    topic: str = "logtide.raw.salesforce"
    login_url: str = "https://login.salesforce.com"
    api_version: str = "59.0"
    auth: PasswordAuth | JwtAuth = Field(discriminator="kind")
    #: CA bundle for TLS to Salesforce (a corporate proxy's CA); default: the system store.
    ca_bundle: str | None = None
    #: EventLogFile event types to collect, e.g. Login, API, ReportExport, URI.
    event_types: list[str] = Field(default_factory=list)
    intervals: list[Literal["Hourly", "Daily"]] = Field(default_factory=lambda: ["Hourly"])
    #: Audit objects read by SOQL with paging.
    audit: list[Literal["SetupAuditTrail", "LoginHistory"]] = Field(default_factory=list)
    #: Where an item without checkpoint starts: this many days back.
    start_days_ago: float = Field(default=1, ge=0)
    poll_interval_seconds: float = Field(default=300, gt=0)
    #: Back off when the org's daily API usage (Sforce-Limit-Info) reaches this fraction.
    api_usage_limit: float = Field(default=0.8, gt=0, le=1)
    limit_backoff_seconds: float = Field(default=900, gt=0)
    #: Checkpoint inside a large log file every this many rows (a restart resumes mid-file).
    rows_per_checkpoint: int = Field(default=5000, ge=1)
    request_timeout_seconds: float = Field(default=60, gt=0)
    #: Value of salesforce.org_id when the rows carry no ORGANIZATION_ID.
    org_id: str | None = None

"""Log in to Salesforce through the OAuth token endpoint: username-password or JWT bearer flow.

Returns the access token and the org's instance URL; the token is used with simple-salesforce as a
session id. A refused login raises LoginRefused (wrong or expired credentials: retrying will not help
until someone fixes them, so the caller backs off long), a 5xx or network error LoginUnavailable.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import urlparse

import jwt
import requests

from logtide.collectors.salesforce.config import JwtAuth, SalesforceConfig


class LoginRefused(Exception):
    pass


class LoginUnavailable(Exception):
    def __init__(self, message: str, kind: str = "login_unavailable"):
        super().__init__(message)
        self.kind = kind


_SSL_REASON = re.compile(r"\[SSL: [A-Z_]+\] ([^'\"]+?)\s*\(_ssl")


def describe_request_error(exc: requests.RequestException, url: str, ca_bundle: str | None) -> tuple[str, str]:
    """(kind, one line naming the cause and, for TLS, the fix) for a request that got no answer."""
    if isinstance(exc, requests.exceptions.SSLError):
        m = _SSL_REASON.search(str(exc))
        reason = m.group(1) if m else str(exc.__context__ or exc).split("(Caused by ", 1)[-1][:200]
        host = urlparse(url).netloc
        fix = (
            f"the CA bundle set in salesforce.ca_bundle ({ca_bundle}) does not trust it"
            if ca_bundle
            else "if a proxy or private CA signs it, set salesforce.ca_bundle to that CA's PEM file"
        )
        return "tls", f"TLS to {host} failed: {reason}; {fix}"
    return "network", f"cannot reach {url}: {exc.__class__.__name__}"


@dataclass
class Token:
    access_token: str
    instance_url: str


def token_request(config: SalesforceConfig) -> dict:
    auth = config.auth
    if isinstance(auth, JwtAuth):
        claims = {
            "iss": auth.client_id,
            "sub": auth.username,
            "aud": auth.audience or config.login_url,
            "exp": int(time.time()) + 180,
        }
        assertion = jwt.encode(claims, auth.private_key.get_secret_value(), algorithm="RS256")
        return {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
    return {
        "grant_type": "password",
        "client_id": auth.client_id,
        "client_secret": auth.client_secret.get_secret_value(),
        "username": auth.username,
        "password": auth.password.get_secret_value() + auth.security_token.get_secret_value(),
    }


def login(config: SalesforceConfig, session: requests.Session) -> Token:
    url = config.login_url.rstrip("/") + "/services/oauth2/token"
    try:
        resp = session.post(url, data=token_request(config), timeout=config.request_timeout_seconds)
    except requests.RequestException as exc:
        kind, message = describe_request_error(exc, url, config.ca_bundle)
        raise LoginUnavailable(message, kind if kind == "tls" else "login_unavailable") from None
    if resp.status_code >= 500 or resp.status_code == 429:
        raise LoginUnavailable(f"token endpoint answered {resp.status_code}")
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if resp.status_code != 200 or "access_token" not in body:
        # error_description never contains the secret, only e.g. "authentication failure".
        raise LoginRefused(
            f"login refused ({resp.status_code}): {body.get('error', '')} {body.get('error_description', '')}".strip()
        )
    return Token(body["access_token"], body["instance_url"])

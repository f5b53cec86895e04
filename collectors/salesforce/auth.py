"""Log in to Salesforce through the OAuth token endpoint: username-password or JWT bearer flow.

Returns the access token and the org's instance URL; the token is used with simple-salesforce as a
session id. A refused login raises LoginRefused (wrong or expired credentials: retrying will not help
until someone fixes them, so the caller backs off long), a 5xx or network error LoginUnavailable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt
import requests

from logtide.collectors.salesforce.config import JwtAuth, SalesforceConfig


class LoginRefused(Exception):
    pass


class LoginUnavailable(Exception):
    pass


@dataclass
class Token:
    access_token: str
    instance_url: str


def token_request(config: SalesforceConfig) -> dict:
    auth = config.auth
    if isinstance(auth, JwtAuth):
        claims = {"iss": auth.client_id, "sub": auth.username, "aud": auth.audience or config.login_url,
                  "exp": int(time.time()) + 180}
        assertion = jwt.encode(claims, auth.private_key.get_secret_value(), algorithm="RS256")
        return {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
    return {"grant_type": "password", "client_id": auth.client_id,
            "client_secret": auth.client_secret.get_secret_value(), "username": auth.username,
            "password": auth.password.get_secret_value() + auth.security_token.get_secret_value()}


def login(config: SalesforceConfig, session: requests.Session) -> Token:
    url = config.login_url.rstrip("/") + "/services/oauth2/token"
    try:
        resp = session.post(url, data=token_request(config), timeout=config.request_timeout_seconds)
    except requests.RequestException as exc:
        raise LoginUnavailable(f"cannot reach {url}: {exc.__class__.__name__}") from None
    if resp.status_code >= 500 or resp.status_code == 429:
        raise LoginUnavailable(f"token endpoint answered {resp.status_code}")
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if resp.status_code != 200 or "access_token" not in body:
        # error_description never contains the secret, only e.g. "authentication failure".
        raise LoginRefused(f"login refused ({resp.status_code}): {body.get('error', '')} "
                           f"{body.get('error_description', '')}".strip())
    return Token(body["access_token"], body["instance_url"])

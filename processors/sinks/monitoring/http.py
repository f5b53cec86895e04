"""A small JSON/NDJSON POST with gzip and retries with backoff, shared by the Loki and Elasticsearch outputs."""

from __future__ import annotations

import base64
import gzip
import time
import urllib.error
import urllib.request

from logtide.consume import Retry

#: Status codes worth trying again: overload, rate limit and server errors.
RETRIABLE = {408, 429, 500, 502, 503, 504}


class HttpRejected(Exception):
    """The server refused the payload itself (4xx other than 408/429): sending it again cannot help."""

    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status


def post(
    url: str,
    body: bytes,
    *,
    content_type: str,
    headers: dict[str, str] | None = None,
    gzip_body: bool = True,
    timeout: float = 10.0,
    attempts: int = 3,
    backoff: float = 0.2,
    username: str | None = None,
    password: str | None = None,
) -> bytes:
    """POST and return the response body. Raises Retry when the server stays unreachable or failing."""
    hdrs = {"Content-Type": content_type, **(headers or {})}
    if gzip_body:
        body = gzip.compress(body, compresslevel=3)
        hdrs["Content-Encoding"] = "gzip"
    if username:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        hdrs["Authorization"] = f"Basic {token}"
    last = ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        req = urllib.request.Request(url, data=body, headers=hdrs, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - URL from config
                return resp.read()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace")
            if exc.code not in RETRIABLE:
                raise HttpRejected(exc.code, text) from None
            last = f"HTTP {exc.code}: {text[:200]}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
    raise Retry(f"{url}: {last}")

"""Minimal HTTP helpers on the standard library (the services package has no HTTP client
dependency). Every response and error object is closed, so no ResourceWarning leaks."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from driftwarden.errors import ServiceError


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when GET `url` answers 2xx; False on any connection or HTTP error."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except urllib.error.HTTPError as e:
        e.close()
        return False
    except OSError:
        return False


def request_json(
    url: str,
    *,
    params: dict[str, str] | None = None,
    method: str = "GET",
    body: Any = None,
    timeout: float = 5.0,
) -> Any:
    """Send a request and decode the JSON answer; raise ServiceError on any failure.

    An HTTP error status whose body is JSON (Prometheus' `{"status": "error", ...}`) is
    reported with that body in the message.
    """
    if params:
        url = f"{url}?{urllib.parse.urlencode(params)}"
    data = None
    headers = {"Accept": "application/json"}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as e:
        with e:
            detail = e.read().decode(errors="replace")[:2000]
        raise ServiceError(f"{method} {url} answered HTTP {e.code}: {detail}") from e
    except OSError as e:
        raise ServiceError(f"{method} {url} failed: {e}") from e
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as e:
        raise ServiceError(f"{method} {url} did not answer JSON: {raw[:200]!r}") from e

"""A JSON HTTP call to the operator API, for the single- and multi-process operator tests."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def call_json(url: str, method: str, body: Any = None, token: str | None = None,
              timeout: float = 10.0) -> tuple[int, Any]:
    """``(status, body)``: the body decoded as JSON when the answer says it is JSON, else text."""
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if "json" in resp.headers.get("Content-Type", "") else raw.decode()
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def get_ok(url: str, token: str | None, timeout: float = 10.0) -> Any:
    """The decoded body of a GET that must answer 200."""
    status, body = call_json(url, "GET", None, token, timeout=timeout)
    assert status == 200, body
    return body

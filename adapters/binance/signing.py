"""Binance SIGNED endpoints: HMAC-SHA256 of the total parameter string, in hex.

https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info (SIGNED
endpoint security): the signature is ``HMAC_SHA256(secret, totalParams)`` where ``totalParams``
is the query string followed by the request body; we send every parameter in the query string,
so it is the query string, and ``signature`` is appended as its last parameter.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from decimal import Decimal
from urllib.parse import quote, urlencode

Param = tuple[str, str]


def signature(secret: str, total_params: str) -> str:
    """The hex HMAC-SHA256 of ``total_params`` under ``secret``."""
    return hmac.new(secret.encode(), total_params.encode(), hashlib.sha256).hexdigest()


def encode_params(params: Iterable[Param]) -> str:
    """``k=v&...`` in the given order, percent-encoded the way Binance decodes it."""
    return urlencode(list(params), quote_via=quote, safe="")


def signed_query(params: Iterable[Param], secret: str, timestamp_ms: int, recv_window_ms: int) -> str:
    """The query string of a SIGNED request: params, recvWindow, timestamp, then signature."""
    total = encode_params([*params, ("recvWindow", str(recv_window_ms)), ("timestamp", str(timestamp_ms))])
    return f"{total}&signature={signature(secret, total)}"


def verify_signed_query(secret: str, query: str) -> bool:
    """Whether ``query`` ends in a valid ``&signature=<hex>`` of everything before it (venue side)."""
    total, sep, sig = query.rpartition("&signature=")
    if not sep or not sig:
        return False
    return hmac.compare_digest(signature(secret, total), sig)


def decimal_param(value: Decimal) -> str:
    """A decimal as Binance reads it: plain notation, no exponent (``1E+1`` -> ``"10"``)."""
    return format(value, "f")

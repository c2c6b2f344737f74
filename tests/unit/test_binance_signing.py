"""Binance HMAC-SHA256 request signing, against Binance's documented example."""

from __future__ import annotations

from decimal import Decimal as D

from arbor.adapters.binance.signing import decimal_param, signature, signed_query, verify_signed_query

# From Binance's API documentation (SIGNED endpoint examples, POST /api/v3/order).
DOC_API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_QUERY = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"

DOC_PARAMS = [("symbol", "LTCBTC"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"), ("quantity", "1"), ("price", "0.1")]


def test_signature_reproduces_the_documented_example():
    """HMAC-SHA256 of the documented query string under the documented secret is the documented hex."""
    assert signature(DOC_SECRET, DOC_QUERY) == DOC_SIGNATURE


def test_signed_query_builds_the_documented_string_and_signature():
    """Params, then recvWindow and timestamp, then the signature as the last parameter."""
    assert signed_query(DOC_PARAMS, DOC_SECRET, 1499827319559, 5000) == f"{DOC_QUERY}&signature={DOC_SIGNATURE}"


def test_verify_accepts_the_documented_query_and_refuses_a_tampered_one():
    """The venue side accepts a valid signature and refuses any change to what was signed."""
    assert verify_signed_query(DOC_SECRET, f"{DOC_QUERY}&signature={DOC_SIGNATURE}")
    assert not verify_signed_query(DOC_SECRET, f"{DOC_QUERY.replace('quantity=1', 'quantity=2')}&signature={DOC_SIGNATURE}")
    assert not verify_signed_query("another-secret", f"{DOC_QUERY}&signature={DOC_SIGNATURE}")
    assert not verify_signed_query(DOC_SECRET, DOC_QUERY)


def test_decimal_params_are_plain_notation():
    """Quantities and prices never go out in exponent notation."""
    assert decimal_param(D("1E+1")) == "10"
    assert decimal_param(D("0.00010")) == "0.00010"
    assert decimal_param(D("1E-7")) == "0.0000001"


def test_client_order_id_needs_no_escaping():
    """Our client order ids pass through the query string unchanged."""
    query = signed_query([("newClientOrderId", "ar0123456789abcdef0123")], DOC_SECRET, 1, 5000)
    assert query.startswith("newClientOrderId=ar0123456789abcdef0123&recvWindow=5000&timestamp=1&signature=")

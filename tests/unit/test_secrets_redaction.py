"""Credentials come only from the environment and never show: not in repr, errors, log lines or messages."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from typing import Any

import aiohttp
import pytest
from arbor.actors.testing import ManualClock
from arbor.adapters.binance.rest import BinanceFuturesRest, BinanceRestConfig
from arbor.adapters.binance.userdata import BinanceUserDataStream
from arbor.adapters.credentials import (
    BINANCE_API_KEY,
    BINANCE_API_SECRET,
    HYPERLIQUID_ACCOUNT,
    HYPERLIQUID_PRIVATE_KEY,
    BinanceCredentials,
    HyperliquidCredentials,
    MissingCredential,
    binance_credentials_from_env,
    hyperliquid_credentials_from_env,
    log_redactor,
)
from arbor.adapters.testing.binance_rest_server import BinanceRestServer
from arbor.adapters.testing.binance_rest_server import Fault as BinanceFault
from arbor.messages import OrderType, PlaceOrder, QueryOrder, QueryPosition, RequestCancel, Side
from loguru import logger

API_KEY = "KEYk3yK3Yk3yK3Yk3yK3Yk3yK3Yk3yK3Yk3yK3Yk3yK3Yk3yK3Yk3yK3Yk3yZ9"
API_SECRET = "SECRETs3cr3tS3CR3Ts3cr3tS3CR3Ts3cr3tS3CR3Ts3cr3tS3CR3Ts3cr3tQ7"
HL_KEY = "0x" + "5eC2e7" * 10 + "abcd"
HL_ACCOUNT = "0x14791697260E4c9A71f18484C9f997B308e59325"
ENV = {BINANCE_API_KEY: API_KEY, BINANCE_API_SECRET: API_SECRET, HYPERLIQUID_PRIVATE_KEY: HL_KEY, HYPERLIQUID_ACCOUNT: HL_ACCOUNT}
T0 = 1_700_000_000_000_000_000


def test_credentials_are_read_from_the_environment():
    """All four variables are read as given (the process environment by default)."""
    assert binance_credentials_from_env(ENV).secrets() == (API_KEY, API_SECRET)
    hl = hyperliquid_credentials_from_env(ENV)
    assert (hl.private_key, hl.account_address) == (HL_KEY, HL_ACCOUNT)


def test_default_environment_is_the_process_environment(monkeypatch):
    """Without a mapping, os.environ is read."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert binance_credentials_from_env().api_key == API_KEY


@pytest.mark.parametrize("missing", [BINANCE_API_KEY, BINANCE_API_SECRET])
def test_missing_binance_variable_is_named(missing):
    """A missing or blank variable is an error naming it."""
    for env in ({k: v for k, v in ENV.items() if k != missing}, {**ENV, missing: "  "}):
        with pytest.raises(MissingCredential, match=missing):
            binance_credentials_from_env(env)


@pytest.mark.parametrize("missing", [HYPERLIQUID_PRIVATE_KEY, HYPERLIQUID_ACCOUNT])
def test_missing_hyperliquid_variable_is_named(missing):
    """A missing Hyperliquid variable is an error naming it."""
    with pytest.raises(MissingCredential, match=missing):
        hyperliquid_credentials_from_env({k: v for k, v in ENV.items() if k != missing})


def test_malformed_key_error_names_the_variable_not_the_value():
    """A key that is not 32 bytes of hex is refused without echoing it."""
    bad = "not-a-key-but-still-secret-0123456789"
    with pytest.raises(MissingCredential) as info:
        hyperliquid_credentials_from_env({**ENV, HYPERLIQUID_PRIVATE_KEY: bad})
    assert HYPERLIQUID_PRIVATE_KEY in str(info.value) and bad not in str(info.value)


def test_repr_and_str_never_show_secrets():
    """repr/str of credentials, and of the Hyperliquid signer and client, hide keys and secrets."""
    binance, hl = binance_credentials_from_env(ENV), hyperliquid_credentials_from_env(ENV)
    shown = [repr(binance), str(binance), repr(hl), str(hl), f"{binance!r} {hl}"]
    pytest.importorskip("eth_account")
    from arbor.adapters.hyperliquid.signing import L1Signer

    shown.append(repr(L1Signer(HL_KEY)))
    for text in shown:
        for secret in (API_KEY, API_SECRET, HL_KEY, HL_KEY[2:]):
            assert secret not in text
    assert HL_ACCOUNT in repr(hl)


def test_log_redactor_scrubs_secrets_from_records():
    """The loguru patcher replaces each secret in a record's message."""
    record = {"message": f"oops {API_SECRET} and {API_KEY}"}
    log_redactor((API_KEY, API_SECRET, ""))(record)
    assert record["message"] == "oops <redacted> and <redacted>"


def test_a_cluster_nodes_warnings_on_stderr_are_redacted(tmp_path, monkeypatch, capsys):
    """A node process's warnings reach stderr with the environment's secret values redacted."""
    from arbor.actors.cluster.logs import setup_node_logging

    monkeypatch.setenv("ARBOR_TEST_API_SECRET", "node-secret-123456")
    sink = setup_node_logging(tmp_path, "worker-0", "INFO")
    try:
        logger.bind(actor="worker-0").warning("signing with node-secret-123456 failed")
    finally:
        logger.remove()
        sink.close()
    err = capsys.readouterr().err
    assert "signing with *** failed" in err and "node-secret-123456" not in err


def test_secrets_never_appear_in_logs_during_binance_order_entry():
    """A full session (resync, 429, 5xx, timeout, rejects, user stream) logs no key or secret."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="TRACE",
                      format="{time} {level} {name}:{function} {message} {extra} {exception}")
    try:
        produced = asyncio.run(asyncio.wait_for(_binance_session(), timeout=20))
    finally:
        logger.remove(sink)
    text = "\n".join(lines) + "\n".join(repr(m) for m in produced)
    assert len(lines) >= 5  # the session did log: warnings for 429, unknown outcome, resync...
    for secret in (API_KEY, API_SECRET):
        assert secret not in text


def test_secrets_never_appear_in_logs_during_hyperliquid_order_entry(shared_data):
    """A Hyperliquid session (place, 429, unknown, cancel, query) logs no private key."""
    pytest.importorskip("eth_account")
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="TRACE",
                      format="{time} {level} {name}:{function} {message} {extra} {exception}")
    try:
        produced = asyncio.run(asyncio.wait_for(_hyperliquid_session(shared_data), timeout=20))
    finally:
        logger.remove(sink)
    text = "\n".join(lines) + "\n".join(repr(m) for m in produced)
    assert len(lines) >= 2
    assert HL_KEY not in text and HL_KEY[2:] not in text and HL_KEY[2:].lower() not in text.lower()


async def _binance_session() -> list[Any]:
    creds = BinanceCredentials(api_key=API_KEY, api_secret=API_SECRET)
    clock = ManualClock(T0)

    async def sleep(seconds: float) -> None:
        clock.advance(int(seconds * 1e9))
        await asyncio.sleep(0)

    out: list[Any] = []
    async with (
        BinanceRestServer(creds, clock, {"BTCUSDT": D("60000")}) as server,
        aiohttp.ClientSession() as session,
    ):
        rest = BinanceFuturesRest(server.base_url, creds, session, clock, sleep, BinanceRestConfig(request_timeout_s=0.3))
        server.skew_ms = -20_000
        order = PlaceOrder(symbol="BTCUSDT", client_order_id="ar00000000000000000001", side=Side.BUY, qty=D("0.01"),
                           order_type=OrderType.LIMIT, limit_price=D("59000"), reduce_only=False, ts_event_ns=T0)
        out += await rest.place(order)
        server.fail_next("POST", "/fapi/v1/order", BinanceFault.http(429, retry_after=1))
        server.fail_next("POST", "/fapi/v1/order", BinanceFault.http(503, process=True))
        out += await rest.place(PlaceOrder(**{**_fields(order), "client_order_id": "ar00000000000000000002"}))
        server.fail_next("POST", "/fapi/v1/order", BinanceFault.hang(process=True))
        out += await rest.place(PlaceOrder(**{**_fields(order), "client_order_id": "ar00000000000000000003"}))
        out += await rest.place(PlaceOrder(**{**_fields(order), "client_order_id": "ar00000000000000000004", "qty": D("0.00001")}))
        out += await rest.query(QueryOrder(symbol="BTCUSDT", client_order_id="ar00000000000000000003", ts_event_ns=T0))
        out += await rest.cancel(RequestCancel(symbol="BTCUSDT", client_order_id="ar00000000000000000009", ts_event_ns=T0))
        out.append(await rest.position(QueryPosition(symbol="BTCUSDT", ts_event_ns=T0)))
        stream = BinanceUserDataStream(rest, server.base_url, session, clock, sleep, out.extend)
        await stream.open()
        stream.on_frame(b'{"e":"garbage"}')
        clock.advance(31 * 60 * 10**9)
        await stream.maintain()
    return out


async def _hyperliquid_session(shared_data: Any) -> list[Any]:
    from arbor.adapters.hyperliquid.exchange import HyperliquidConfig, HyperliquidExchange
    from arbor.adapters.hyperliquid.signing import L1Signer
    from arbor.adapters.testing.hyperliquid_server import Fault, HyperliquidServer

    creds = HyperliquidCredentials(private_key=HL_KEY, account_address=HL_ACCOUNT)
    clock = ManualClock(T0)

    async def sleep(seconds: float) -> None:
        clock.advance(int(seconds * 1e9))
        await asyncio.sleep(0)

    out: list[Any] = []
    server = HyperliquidServer(HL_ACCOUNT, clock, shared_data / "hyperliquid" / "sdk_cassettes", agents=(L1Signer(HL_KEY).address,))
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            exchange = HyperliquidExchange(server.base_url, creds, session, clock, sleep, HyperliquidConfig(request_timeout_s=0.3))
            out.append(repr(exchange))
            order = PlaceOrder(symbol="BTC", client_order_id="ar00000000000000000001", side=Side.BUY, qty=D("0.001"),
                               order_type=OrderType.LIMIT, limit_price=D("29000"), reduce_only=False, ts_event_ns=T0)
            server.fail_next("/exchange", Fault.http(429, retry_after=1))
            out += await exchange.place(order)
            server.fail_next("/exchange", Fault.hang(process=True))
            out += await exchange.place(PlaceOrder(**{**_fields(order), "client_order_id": "ar00000000000000000002"}))
            out += await exchange.cancel(RequestCancel(symbol="BTC", client_order_id="ar00000000000000000001", ts_event_ns=T0))
            out += await exchange.query(QueryOrder(symbol="BTC", client_order_id="ar00000000000000000002", ts_event_ns=T0))
            out.append(await exchange.position(QueryPosition(symbol="BTC", ts_event_ns=T0)))
    finally:
        await server.close()
    return out


def _fields(msg: Any) -> dict[str, Any]:
    return {a.name: getattr(msg, a.name) for a in msg.__attrs_attrs__}

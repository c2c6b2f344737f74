"""Hyperliquid order entry against a local venue built from the SDK's recorded info answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal as D
from typing import Any

import aiohttp
import pytest

pytest.importorskip("eth_account", reason="Hyperliquid signing needs eth-account")

from arbor.actors.executor.orders import client_order_id  # noqa: E402
from arbor.actors.testing import ManualClock  # noqa: E402
from arbor.adapters.credentials import HyperliquidCredentials  # noqa: E402
from arbor.adapters.hyperliquid.exchange import (  # noqa: E402
    HyperliquidConfig,
    HyperliquidExchange,
    client_order_id_for,
    cloid_for,
    order_status,
    round_price,
)
from arbor.adapters.hyperliquid.signing import L1Signer, recover_l1_signer  # noqa: E402
from arbor.adapters.testing.hyperliquid_server import Fault, HyperliquidServer  # noqa: E402
from arbor.messages import (  # noqa: E402
    OrderAccepted,
    OrderRejected,
    OrderStatus,
    OrderStatusReported,
    OrderType,
    PlaceOrder,
    QueryOrder,
    QueryPosition,
    RequestCancel,
    Side,
)

# The SDK's test key (hyperliquid-python-sdk tests/signing_test.py) and its address.
SDK_KEY = "0x0123456789012345678901234567890123456789012345678901234567890123"
SDK_ADDRESS = "0x14791697260E4c9A71f18484C9f997B308e59325"
CREDS = HyperliquidCredentials(private_key=SDK_KEY, account_address=SDK_ADDRESS)
T0 = 1_700_000_000_000_000_000
S_NS = 1_000_000_000
COID = client_order_id("run", "a1")


class Harness:
    def __init__(self, server: HyperliquidServer, exchange: HyperliquidExchange, clock: ManualClock, sleeps: list[float]) -> None:
        self.server, self.exchange, self.clock, self.sleeps = server, exchange, clock, sleeps


@contextlib.asynccontextmanager
async def venue(shared_data: Any, creds: HyperliquidCredentials = CREDS, **config: Any) -> AsyncIterator[Harness]:
    clock = ManualClock(T0)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(int(seconds * S_NS))
        await asyncio.sleep(0)

    server = HyperliquidServer(SDK_ADDRESS, clock, shared_data / "hyperliquid" / "sdk_cassettes")
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            exchange = HyperliquidExchange(server.base_url, creds, session, clock, sleep, HyperliquidConfig(**config))
            yield Harness(server, exchange, clock, sleeps)
    finally:
        await server.close()


def place(coid: str = COID, qty: str = "0.001", otype: OrderType = OrderType.LIMIT, price: str | None = "29000",
          side: Side = Side.BUY, reduce_only: bool = False, symbol: str = "BTC") -> PlaceOrder:
    return PlaceOrder(symbol=symbol, client_order_id=coid, side=side, qty=D(qty), order_type=otype,
                      limit_price=D(price) if otype is OrderType.LIMIT and price else None, reduce_only=reduce_only, ts_event_ns=T0)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=20))


# -- signing -------------------------------------------------------------------------------------------


def test_signature_reproduces_the_sdk_documented_vectors():
    """The SDK's signing_test vectors: order ETH (asset 1) buy 100@100 Gtc, nonce 0, with and without cloid."""
    signer = L1Signer(SDK_KEY)
    order = {"a": 1, "b": True, "p": "100", "s": "100", "r": False, "t": {"limit": {"tif": "Gtc"}}}
    action = {"type": "order", "orders": [order], "grouping": "na"}
    assert signer.sign(action, 0, is_mainnet=True) == {
        "r": "0xd65369825a9df5d80099e513cce430311d7d26ddf477f5b3a33d2806b100d78e",
        "s": "0x2b54116ff64054968aa237c20ca9ff68000f977c93289157748a3162b6ea940e", "v": 28}
    assert signer.sign(action, 0, is_mainnet=False) == {
        "r": "0x82b2ba28e76b3d761093aaded1b1cdad4960b3af30212b343fb2e6cdfa4e3d54",
        "s": "0x6b53878fc99d26047f4d7e8c90eb98955a109f44209163f52d8dc4278cbbd9f5", "v": 27}
    with_cloid = {"type": "order", "orders": [{**order, "c": "0x00000000000000000000000000000001"}], "grouping": "na"}
    assert signer.sign(with_cloid, 0, is_mainnet=True) == {
        "r": "0x41ae18e8239a56cacbc5dad94d45d0b747e5da11ad564077fcac71277a946e3",
        "s": "0x3c61f667e747404fe7eea8f90ab0e76cc12ce60270438b2058324681a00116da", "v": 27}


def test_signature_is_recoverable_to_the_signer():
    """The venue-side recovery of a signed action gives the signer's address."""
    signer = L1Signer(SDK_KEY)
    action = {"type": "cancelByCloid", "cancels": [{"asset": 0, "cloid": cloid_for(COID)}]}
    assert recover_l1_signer(action, signer.sign(action, 42, is_mainnet=True), 42, is_mainnet=True) == SDK_ADDRESS


def test_placed_order_action_and_signature_equal_the_sdks(shared_data):
    """The order we send is byte-for-byte the SDK's action for it, with the SDK's signature."""
    sdk_signing = pytest.importorskip("hyperliquid.utils.signing", reason="hyperliquid-python-sdk not installed")
    from hyperliquid.utils.types import Cloid

    async def scenario() -> dict[str, Any]:
        async with venue(shared_data) as v:
            await v.exchange.place(place())
            return [body for path, body in v.server.requests if path == "/exchange"][0]

    sent = run(scenario())
    wallet = __import__("eth_account").Account.from_key(SDK_KEY)
    wire = sdk_signing.order_request_to_order_wire(
        {"coin": "BTC", "is_buy": True, "sz": 0.001, "limit_px": 29000, "reduce_only": False,
         "order_type": {"limit": {"tif": "Gtc"}}, "cloid": Cloid(cloid_for(COID))}, 0)
    action = sdk_signing.order_wires_to_order_action([wire])
    assert sent["action"] == action and list(sent["action"]["orders"][0]) == list(wire)
    assert sent["signature"] == sdk_signing.sign_l1_action(wallet, action, None, sent["nonce"], None, True)


# -- cloids and mappings --------------------------------------------------------------------------------


def test_cloid_is_16_bytes_and_maps_back_to_our_client_order_id():
    """An executor client order id becomes a 0x + 32 hex cloid and back; other ids hash, one way."""
    for action in ("a1", "a2", "entry-7"):
        coid = client_order_id("run", action)
        cloid = cloid_for(coid)
        assert cloid.startswith("0x") and len(cloid) == 34 and int(cloid, 16) >= 0
        assert client_order_id_for(cloid) == coid
    other = cloid_for("not-one-of-ours")
    assert len(other) == 34 and client_order_id_for(other) is None
    assert cloid_for("not-one-of-ours") == other


def test_venue_statuses_map_to_ours():
    """open/filled/canceled/*Canceled/*Rejected map to NEW/FILLED/CANCELED/REJECTED; partial fills noted."""
    assert order_status("open", D("0")) is OrderStatus.NEW
    assert order_status("open", D("1")) is OrderStatus.PARTIALLY_FILLED
    assert order_status("filled", D("1")) is OrderStatus.FILLED
    assert order_status("marginCanceled", D("0")) is OrderStatus.CANCELED
    assert order_status("iocCancelRejected", D("0")) is OrderStatus.REJECTED
    assert order_status("iocCancelRejected", D("1")) is OrderStatus.CANCELED
    assert order_status("somethingNew", D("0")) is OrderStatus.UNKNOWN


def test_market_prices_round_to_five_significant_figures():
    """Prices keep 5 significant figures and at most 6 - szDecimals decimals; integers pass."""
    assert round_price(D("31641.75"), 1) == D("31642")
    assert round_price(D("1.234567"), 4) == D("1.2346")
    assert round_price(D("0.0012345678"), 6) == D("0.001235")
    assert round_price(D("123456"), 1) == D("123456")


# -- round trips against the local venue ------------------------------------------------------------------


def test_limit_order_rests_is_queried_by_cloid_and_canceled(shared_data):
    """A resting GTC is accepted with its oid, reported NEW by cloid, then canceled."""

    async def scenario() -> None:
        async with venue(shared_data) as v:
            (accepted,) = await v.exchange.place(place())
            assert isinstance(accepted, OrderAccepted) and accepted.venue_order_id.isdigit()
            (report,) = await v.exchange.query(QueryOrder(symbol="BTC", client_order_id=COID, ts_event_ns=T0))
            assert (report.status, report.venue_order_id, report.filled_qty) == (OrderStatus.NEW, accepted.venue_order_id, 0)
            (canceled,) = await v.exchange.cancel(RequestCancel(symbol="BTC", client_order_id=COID, ts_event_ns=T0))
            assert canceled.status is OrderStatus.CANCELED and canceled.client_order_id == COID
            order = v.server.order_by_cloid(cloid_for(COID))
            assert order is not None and order.status == "canceled"

    run(scenario())


def test_market_order_is_an_ioc_at_the_slipped_mid_and_reports_its_fill(shared_data):
    """MARKET buys IOC at mid * 1.05 (5 significant figures), fills at the mid; the position follows."""

    async def scenario() -> None:
        async with venue(shared_data) as v:
            mid = D(v.server.mids["ETH"])
            accepted, report = await v.exchange.place(place(symbol="ETH", qty="0.01", otype=OrderType.MARKET))
            sent = [b for p, b in v.server.requests if p == "/exchange"][0]["action"]["orders"][0]
            assert sent["t"] == {"limit": {"tif": "Ioc"}} and D(sent["p"]) == round_price(mid * D("1.05"), 2)
            assert isinstance(accepted, OrderAccepted)
            assert (report.status, report.filled_qty, report.avg_price) == (OrderStatus.FILLED, D("0.01"), mid)
            position = await v.exchange.position(QueryPosition(symbol="ETH", ts_event_ns=T0))
            assert position.qty == D("0.1334") + D("0.01")  # the recorded position plus this fill

    run(scenario())


def test_position_report_lists_our_and_foreign_open_orders(shared_data):
    """The recorded BTC short and our resting order; orders without our cloid show as oid:<n>."""

    async def scenario() -> None:
        async with venue(shared_data) as v:
            await v.exchange.place(place())
            position = await v.exchange.handle(QueryPosition(symbol="BTC", ts_event_ns=T0))
            (report,) = position
            assert (report.qty, report.avg_price) == (D("-0.00785"), D("26951.0"))
            assert COID in report.open_client_order_ids
            assert all(i == COID or i.startswith("oid:") for i in report.open_client_order_ids)
            assert len(report.open_client_order_ids) == 1 + 18  # 18 recorded foreign BTC orders

    run(scenario())


def test_partial_fill_is_reported_with_its_average_price(shared_data):
    """Two partial fills: the query reports PARTIALLY_FILLED with the fills' volume-weighted price."""

    async def scenario() -> None:
        async with venue(shared_data) as v:
            await v.exchange.place(place(qty="0.004"))
            v.server.fill(cloid_for(COID), D("0.001"), D("29000"))
            v.server.fill(cloid_for(COID), D("0.002"), D("28990"))
            (report,) = await v.exchange.query(QueryOrder(symbol="BTC", client_order_id=COID, ts_event_ns=T0))
            assert (report.status, report.filled_qty) == (OrderStatus.PARTIALLY_FILLED, D("0.003"))
            assert report.avg_price == (D("29000") * D("0.001") + D("28990") * D("0.002")) / D("0.003")

    run(scenario())


def test_rejected_order_carries_the_venue_reason(shared_data):
    """An order under the minimum value becomes OrderRejected('min_notional (<venue words>)')."""

    async def scenario() -> None:
        async with venue(shared_data) as v:
            (out,) = await v.exchange.place(place(qty="0.0001"))
            assert isinstance(out, OrderRejected)
            assert out.reason == "min_notional (Order must have minimum value of $10. asset=0)"
            (ioc,) = await v.exchange.place(place(coid=client_order_id("run", "a2"), otype=OrderType.MARKET, side=Side.BUY,
                                                  reduce_only=True, symbol="ETH", qty="1"))  # ETH is long
            assert isinstance(ioc, OrderRejected) and ioc.reason.startswith("reduce_only_rejected")

    run(scenario())


def test_precision_is_checked_before_sending(shared_data):
    """A size finer than szDecimals or a price with 6 significant figures is refused locally."""

    async def scenario() -> None:
        async with venue(shared_data) as v:
            (size,) = await v.exchange.place(place(qty="0.000001"))
            (price,) = await v.exchange.place(place(price="29000.5"))
            assert size.reason.startswith("invalid_size") and price.reason.startswith("price_not_on_tick")
            assert v.server.count("/exchange") == 0

    run(scenario())


def test_wrong_signing_key_is_refused_by_the_venue(shared_data):
    """Signed by a key that is neither the account nor its agent: rejected, nothing placed."""
    other = HyperliquidCredentials(private_key="0x" + "11" * 32, account_address=SDK_ADDRESS)

    async def scenario() -> None:
        async with venue(shared_data, other) as v:
            (out,) = await v.exchange.place(place())
            assert isinstance(out, OrderRejected) and out.reason.startswith("unknown_account_or_signer (User or API Wallet")
            assert v.server.orders == {}

    run(scenario())


def test_429_is_backed_off_and_retried(shared_data):
    """A 429 with Retry-After 2 waits 2 s on the injected clock, then the order goes through once."""

    async def scenario() -> None:
        async with venue(shared_data) as v:
            v.server.fail_next("/exchange", Fault.http(429, retry_after=2))
            (out,) = await v.exchange.place(place())
            assert isinstance(out, OrderAccepted) and v.sleeps == [2.0]
            assert v.server.count("/exchange", "order") == 2 and len(v.server.orders) == 1

    run(scenario())


def test_unanswered_order_is_unknown_then_settled_by_cloid_never_resent(shared_data):
    """Accepted but never answered: UNKNOWN; the orderStatus query settles it; one order action sent."""

    async def scenario() -> None:
        async with venue(shared_data, request_timeout_s=0.3) as v:
            v.server.fail_next("/exchange", Fault.hang(process=True))
            (out,) = await v.exchange.place(place(symbol="ETH", qty="0.01", otype=OrderType.MARKET))
            assert isinstance(out, OrderStatusReported) and out.status is OrderStatus.UNKNOWN
            (report,) = await v.exchange.query(QueryOrder(symbol="ETH", client_order_id=COID, ts_event_ns=T0))
            assert (report.status, report.filled_qty, report.avg_price) == (OrderStatus.FILLED, D("0.01"), D(v.server.mids["ETH"]))
            assert v.server.count("/exchange", "order") == 1

    run(scenario())


def test_5xx_on_a_place_is_not_retried(shared_data):
    """A 502 on /exchange leaves the order UNKNOWN after exactly one send."""

    async def scenario() -> None:
        async with venue(shared_data) as v:
            v.server.fail_next("/exchange", Fault.http(502))
            (out,) = await v.exchange.place(place())
            assert out.status is OrderStatus.UNKNOWN and v.server.count("/exchange") == 1 and v.sleeps == []
            (report,) = await v.exchange.query(QueryOrder(symbol="BTC", client_order_id=COID, ts_event_ns=T0))
            assert report.status is OrderStatus.NOT_FOUND

    run(scenario())


def test_cancel_of_a_filled_order_reports_it_filled(shared_data):
    """A cancel the venue refuses (already filled) is answered with the FILLED record."""

    async def scenario() -> None:
        async with venue(shared_data) as v:
            await v.exchange.place(place())
            v.server.fill(cloid_for(COID))
            (report,) = await v.exchange.cancel(RequestCancel(symbol="BTC", client_order_id=COID, ts_event_ns=T0))
            assert (report.status, report.filled_qty, report.avg_price) == (OrderStatus.FILLED, D("0.001"), D("29000"))

    run(scenario())

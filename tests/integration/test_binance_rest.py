"""Binance USD-M order entry and user-data stream against a local venue speaking the real wire format."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from decimal import Decimal as D
from typing import Any

import aiohttp
import pytest
from arbor.actors.executor.config import ExecutorConfig
from arbor.actors.executor.logic import ExecutorLogic
from arbor.actors.testing import ManualClock, handled, make_ctx
from arbor.actors.testing import until as _until
from arbor.adapters.binance.rest import BinanceFuturesRest, BinanceRestConfig
from arbor.adapters.binance.userdata import BinanceUserDataStream, UserDataConfig, decode_user_event
from arbor.adapters.credentials import BinanceCredentials
from arbor.adapters.decoding import DecodeError
from arbor.adapters.testing.binance_rest_server import BinanceRestServer, Fault
from arbor.messages import (
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderStatus,
    OrderStatusReported,
    OrderType,
    PlaceOrder,
    PositionReported,
    QueryOrder,
    QueryPosition,
    RequestCancel,
    Side,
    SubmitOrder,
    TimerTick,
)

SYM = "BTCUSDT"
T0 = 1_700_000_000_000_000_000
S_NS = 1_000_000_000
CREDS = BinanceCredentials(api_key="test-key-7f3a", api_secret="test-secret-91c2e")
ORDER = ("POST", "/fapi/v1/order")


class Harness:
    def __init__(self, server: BinanceRestServer, rest: BinanceFuturesRest, clock: ManualClock, sleeps: list[float],
                 session: aiohttp.ClientSession) -> None:
        self.server, self.rest, self.clock, self.sleeps, self.session = server, rest, clock, sleeps, session


@contextlib.asynccontextmanager
async def venue(creds: BinanceCredentials = CREDS, **config: Any) -> AsyncIterator[Harness]:
    clock = ManualClock(T0)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:  # time moves, nobody waits
        sleeps.append(seconds)
        clock.advance(int(seconds * S_NS))
        await asyncio.sleep(0)

    server = BinanceRestServer(CREDS, clock, {SYM: D("60000")})
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            rest = BinanceFuturesRest(server.base_url, creds, session, clock, sleep, BinanceRestConfig(**config))
            yield Harness(server, rest, clock, sleeps, session)
    finally:
        await server.close()


def place(coid: str = "ar00000000000000000001", qty: str = "0.01", otype: OrderType = OrderType.LIMIT,
          price: str | None = "59000", side: Side = Side.BUY, reduce_only: bool = False) -> PlaceOrder:
    return PlaceOrder(symbol=SYM, client_order_id=coid, side=side, qty=D(qty), order_type=otype,
                      limit_price=D(price) if price is not None and otype is OrderType.LIMIT else None,
                      reduce_only=reduce_only, ts_event_ns=T0)


def query(coid: str = "ar00000000000000000001") -> QueryOrder:
    return QueryOrder(symbol=SYM, client_order_id=coid, ts_event_ns=T0)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=20))


# -- order round trips ---------------------------------------------------------------------------------


def test_signed_limit_order_place_query_cancel_round_trip():
    """A resting LIMIT order is accepted, reported NEW by client order id, then canceled."""

    async def scenario() -> None:
        async with venue() as v:
            out = await v.rest.place(place())
            assert len(out) == 1 and isinstance(out[0], OrderAccepted)
            assert out[0].client_order_id == "ar00000000000000000001" and out[0].venue_order_id.isdigit()
            (report,) = await v.rest.query(query())
            assert report.status is OrderStatus.NEW and report.filled_qty == 0 and report.avg_price is None
            (canceled,) = await v.rest.cancel(RequestCancel(symbol=SYM, client_order_id="ar00000000000000000001", ts_event_ns=T0))
            assert isinstance(canceled, OrderCanceled) and canceled.filled_qty == 0
            (report,) = await v.rest.query(query())
            assert report.status is OrderStatus.CANCELED
            sent = [params for method, path, params in v.server.requests if path == "/fapi/v1/order"]
            assert all("signature" in p and "timestamp" in p and p["recvWindow"] == "5000" for p in sent)
            assert sent[0]["newClientOrderId"] == "ar00000000000000000001" and sent[0]["newOrderRespType"] == "RESULT"

    run(scenario())


def test_market_order_reports_its_execution_and_the_position():
    """A MARKET order is accepted and reported FILLED at the mark; the position follows."""

    async def scenario() -> None:
        async with venue() as v:
            accepted, report = await v.rest.place(place(otype=OrderType.MARKET, price=None))
            assert isinstance(accepted, OrderAccepted)
            assert isinstance(report, OrderStatusReported)
            assert (report.status, report.filled_qty, report.avg_price) == (OrderStatus.FILLED, D("0.01"), D("60000"))
            (position,) = await v.rest.handle(QueryPosition(symbol=SYM, ts_event_ns=T0))
            assert isinstance(position, PositionReported)
            assert (position.qty, position.avg_price, position.open_client_order_ids) == (D("0.01"), D("60000"), ())

    run(scenario())


def test_open_orders_and_position_list_resting_orders():
    """Resting orders appear in open orders and in the position report, by client order id."""

    async def scenario() -> None:
        async with venue() as v:
            await v.rest.place(place("ar0000000000000000000a"))
            await v.rest.place(place("ar0000000000000000000b", price="58000"))
            opened = await v.rest.open_orders(SYM)
            assert sorted(o.client_order_id for o in opened) == ["ar0000000000000000000a", "ar0000000000000000000b"]
            position = await v.rest.position(QueryPosition(symbol=SYM, ts_event_ns=T0))
            assert position.qty == 0 and position.avg_price is None
            assert sorted(position.open_client_order_ids) == ["ar0000000000000000000a", "ar0000000000000000000b"]

    run(scenario())


def test_reduce_only_order_reduces_an_open_position():
    """reduceOnly is sent and honoured: it closes the position; without a position it is rejected."""

    async def scenario() -> None:
        async with venue() as v:
            (rejected,) = await v.rest.place(place("ar000000000000000000r1", otype=OrderType.MARKET, side=Side.SELL, reduce_only=True))
            assert isinstance(rejected, OrderRejected) and rejected.reason.startswith("reduce_only_rejected (-2022")
            await v.rest.place(place("ar000000000000000000o1", otype=OrderType.MARKET))
            _, report = await v.rest.place(place("ar000000000000000000r2", otype=OrderType.MARKET, side=Side.SELL, reduce_only=True))
            assert report.status is OrderStatus.FILLED
            assert v.server.requests[-1][2]["reduceOnly"] == "true"
            assert (await v.rest.position(QueryPosition(symbol=SYM, ts_event_ns=T0))).qty == 0

    run(scenario())


# -- rejections -----------------------------------------------------------------------------------------


def test_rejected_order_carries_the_venue_code_and_reason():
    """The venue's -4164 (min notional) becomes OrderRejected naming it and quoting the venue."""

    async def scenario() -> None:
        async with venue() as v:
            (out,) = await v.rest.place(place(qty="0.00001"))
            assert isinstance(out, OrderRejected)
            assert out.reason.startswith("min_notional (-4164: Order's notional must be no smaller than")

    run(scenario())


def test_injected_margin_rejection_maps_to_its_reason():
    """An injected -2019 is OrderRejected('insufficient_margin (-2019: ...)') and nothing is retried."""

    async def scenario() -> None:
        async with venue() as v:
            v.server.fail_next(*ORDER, Fault.reject(-2019, "Margin is insufficient."))
            (out,) = await v.rest.place(place())
            assert out == OrderRejected(symbol=SYM, client_order_id="ar00000000000000000001",
                                        reason="insufficient_margin (-2019: Margin is insufficient.)", ts_event_ns=T0)
            assert v.server.count(*ORDER) == 1

    run(scenario())


def test_bad_signature_is_refused_with_minus_1022():
    """A request signed with the wrong secret is refused by the venue and rejected as invalid_signature."""

    async def scenario() -> None:
        async with venue(BinanceCredentials(api_key=CREDS.api_key, api_secret="wrong-secret")) as v:
            (out,) = await v.rest.place(place())
            assert isinstance(out, OrderRejected) and out.reason.startswith("invalid_signature (-1022")
            assert v.server.orders == {}

    run(scenario())


def test_timestamp_outside_recv_window_resyncs_once_and_retries():
    """-1021 makes the client measure the venue clock and send again, once; one order results."""

    async def scenario() -> None:
        async with venue() as v:
            v.server.skew_ms = -30_000  # the venue's clock is 30 s behind ours
            (out,) = await v.rest.place(place())
            assert isinstance(out, OrderAccepted)
            assert v.rest.time_offset_ms == -30_000
            assert v.server.count(*ORDER) == 2 and v.server.count("GET", "/fapi/v1/time") == 1
            assert len(v.server.orders) == 1

    run(scenario())


def test_duplicate_client_order_id_is_answered_from_the_venue_records():
    """A resubmit of a known client order id creates nothing new: the venue's record answers."""

    async def scenario() -> None:
        async with venue() as v:
            await v.rest.place(place())
            (out,) = await v.rest.place(place())
            assert isinstance(out, OrderStatusReported) and out.status is OrderStatus.NEW
            assert len(v.server.orders) == 1

    run(scenario())


def test_cancel_of_a_filled_order_is_settled_by_query():
    """A refused cancel (-2011: already filled) is answered with the order's FILLED record."""

    async def scenario() -> None:
        async with venue() as v:
            await v.rest.place(place())
            await v.server.fill("ar00000000000000000001")
            (out,) = await v.rest.cancel(RequestCancel(symbol=SYM, client_order_id="ar00000000000000000001", ts_event_ns=T0))
            assert isinstance(out, OrderStatusReported)
            assert (out.status, out.filled_qty, out.avg_price) == (OrderStatus.FILLED, D("0.01"), D("59000"))

    run(scenario())


def test_query_of_an_unknown_order_reports_not_found():
    """-2013 (order does not exist) is reported as NOT_FOUND."""

    async def scenario() -> None:
        async with venue() as v:
            (out,) = await v.rest.query(query("ar000000000000000000zz"))
            assert out.status is OrderStatus.NOT_FOUND

    run(scenario())


# -- rate limits --------------------------------------------------------------------------------------


def test_429_retry_after_is_honoured_then_the_order_goes_through():
    """A 429 with Retry-After 3 waits at least 3 s (on the injected clock) and sends again."""

    async def scenario() -> None:
        async with venue() as v:
            v.server.fail_next(*ORDER, Fault.http(429, retry_after=3))
            (out,) = await v.rest.place(place())
            assert isinstance(out, OrderAccepted)
            assert v.sleeps == [3.0] and v.server.count(*ORDER) == 2

    run(scenario())


def test_repeated_429_backs_off_exponentially_then_gives_up():
    """Without Retry-After the waits double; past max_attempts the order is rejected as rate limited."""

    async def scenario() -> None:
        async with venue(max_attempts=4, backoff_base_s=0.5) as v:
            v.server.fail_next(*ORDER, Fault.http(429), times=4)
            (out,) = await v.rest.place(place())
            assert isinstance(out, OrderRejected) and out.reason.startswith("rate_limited")
            assert v.sleeps == [0.5, 1.0, 2.0] and v.server.count(*ORDER) == 4 and v.server.orders == {}

    run(scenario())


def test_418_with_a_long_ban_is_not_waited_out():
    """A Retry-After beyond backoff_max_s gives up at once rather than sleep through a ban."""

    async def scenario() -> None:
        async with venue(backoff_max_s=60) as v:
            v.server.fail_next(*ORDER, Fault.http(418, retry_after=7200))
            (out,) = await v.rest.place(place())
            assert isinstance(out, OrderRejected) and "418" in out.reason and v.sleeps == []

    run(scenario())


def test_used_weight_near_the_limit_waits_for_the_next_minute():
    """Once X-MBX-USED-WEIGHT-1M reaches the headroom, the next request waits for the next window."""

    async def scenario() -> None:
        async with venue(weight_limit_1m=4, headroom=0.75) as v:
            for _ in range(3):
                await v.rest.query(query())
            assert v.sleeps == []
            start_ms = v.clock.now_ns() // 1_000_000
            await v.rest.query(query())
            assert len(v.sleeps) == 1 and v.sleeps[0] * 1000 == pytest.approx(60_000 - start_ms % 60_000)

    run(scenario())


def test_order_count_header_near_the_limit_waits_for_the_next_10s_window():
    """X-MBX-ORDER-COUNT-10S near its limit holds the next order until the window turns."""

    async def scenario() -> None:
        async with venue(order_limit_10s=2, headroom=1.0) as v:
            await v.rest.place(place("ar000000000000000000c1"))
            await v.rest.place(place("ar000000000000000000c2"))
            assert v.sleeps == []
            await v.rest.place(place("ar000000000000000000c3"))
            assert len(v.sleeps) == 1 and 0 < v.sleeps[0] <= 10

    run(scenario())


# -- unknown outcomes -------------------------------------------------------------------------------------


def test_place_whose_answer_never_arrives_is_unknown_then_settled_by_query_never_resent():
    """Accepted-but-unanswered: UNKNOWN, then the executor's query settles it; exactly one POST."""

    async def scenario() -> None:
        async with venue(request_timeout_s=0.3) as v:
            clock = v.clock
            executor = ExecutorLogic(make_ctx(actor_id=f"{SYM}/executor", symbol=SYM, clock=clock), ExecutorConfig(ack_timeout_ms=2000))
            (placed,) = handled(executor, SubmitOrder(symbol=SYM, action_id="a1", intent=OrderIntent.ENTRY, side=Side.BUY,
                                                    qty=D("0.01"), order_type=OrderType.LIMIT, limit_price=D("59000"),
                                                    reduce_only=False, ts_event_ns=T0))
            v.server.fail_next(*ORDER, Fault.hang(process=True))
            answers = await v.rest.handle(placed)
            assert [a.status for a in answers] == [OrderStatus.UNKNOWN]
            for answer in answers:
                assert executor.handle(answer) == []
            clock.advance(2 * S_NS)
            out = handled(executor, TimerTick(ts_event_ns=clock.now_ns()))
            queries = [m for m in out if isinstance(m, QueryOrder)]
            assert len(queries) == 1
            settled = [m for a in await v.rest.handle(queries[0]) for m in handled(executor, a)]
            tracked = executor.order(placed.client_order_id)
            assert tracked is not None
            assert tracked.status is OrderStatus.NEW
            assert tracked.venue_order_id != ""
            assert settled == [] and v.server.count(*ORDER) == 1 and len(v.server.orders) == 1

    run(scenario())


def test_place_answered_with_503_is_unknown_and_not_retried():
    """A 5xx on a place is not retried: the outcome is UNKNOWN and the venue saw one request."""

    async def scenario() -> None:
        async with venue() as v:
            v.server.fail_next(*ORDER, Fault.http(503, process=True))
            (out,) = await v.rest.place(place(otype=OrderType.MARKET, price=None))
            assert out.status is OrderStatus.UNKNOWN and v.server.count(*ORDER) == 1
            (report,) = await v.rest.query(query())
            assert (report.status, report.filled_qty) == (OrderStatus.FILLED, D("0.01"))

    run(scenario())


def test_query_is_retried_through_a_5xx():
    """Reads are safe to repeat: a 502 on a query is retried with backoff."""

    async def scenario() -> None:
        async with venue() as v:
            await v.rest.place(place())
            v.server.fail_next("GET", "/fapi/v1/order", Fault.http(502))
            (report,) = await v.rest.query(query())
            assert report.status is OrderStatus.NEW and v.sleeps == [0.5]

    run(scenario())


# -- user-data stream ---------------------------------------------------------------------------------------


def test_listen_key_keep_alive_happens_every_30_minutes_on_the_injected_clock():
    """No PUT before 30 minutes; one at 30, another at 60."""

    async def scenario() -> None:
        async with venue() as v:
            stream = BinanceUserDataStream(v.rest, v.server.base_url, v.session, v.clock, lambda s: asyncio.sleep(0), lambda m: None)
            await stream.open()
            v.clock.advance(29 * 60 * S_NS)
            await stream.maintain()
            assert v.server.keepalives == []
            v.clock.advance(60 * S_NS)
            await stream.maintain()
            await stream.maintain()
            assert len(v.server.keepalives) == 1
            v.clock.advance(30 * 60 * S_NS)
            await stream.maintain()
            assert [ms - T0 // 1_000_000 for ms in v.server.keepalives] == [30 * 60_000, 60 * 60_000]

    run(scenario())


def test_refused_keep_alive_gets_a_new_listen_key():
    """A keep-alive the venue refuses (-1125) drops the key so that a new one is made."""

    async def scenario() -> None:
        async with venue() as v:
            stream = BinanceUserDataStream(v.rest, v.server.base_url, v.session, v.clock, lambda s: asyncio.sleep(0), lambda m: None)
            first = await stream.open()
            v.server.expire_listen_key()
            v.clock.advance(30 * 60 * S_NS)
            assert await stream.maintain() is False and stream.listen_key is None
            assert await stream.open() != first

    run(scenario())


def test_user_stream_delivers_order_events_and_reconnects():
    """Accept, fill (fill_id = trade id) and position updates arrive; after a drop the stream comes back."""

    async def scenario() -> None:
        async with venue() as v:
            received: list[Any] = []
            stream = BinanceUserDataStream(v.rest, v.server.base_url, v.session, v.clock, lambda s: asyncio.sleep(0),
                                           received.extend, UserDataConfig(poll_s=0.05))
            stop = asyncio.Event()
            task = asyncio.create_task(stream.run(stop))
            await until(lambda: v.server.user_stream_connections == 1)
            await v.rest.place(place())
            await v.server.fill("ar00000000000000000001", qty=D("0.004"))
            await until(lambda: len(received) >= 3)
            accepted, fill, position = received[:3]
            assert isinstance(accepted, OrderAccepted) and accepted.client_order_id == "ar00000000000000000001"
            assert isinstance(fill, OrderFilled)
            assert (fill.fill_id, fill.qty, fill.price, fill.cum_qty, fill.leaves_qty, fill.is_maker) == (
                str(v.server.last_trade_id), D("0.004"), D("59000"), D("0.004"), D("0.006"), True)
            assert fill.fee == D("0.004") * D("59000") * D("0.0002")
            assert isinstance(position, PositionReported) and position.qty == D("0.004")
            await v.server.drop_user_streams()
            await until(lambda: stream.stats["reconnects"] >= 1 and v.server.user_stream_connections == 1)
            await v.rest.cancel(RequestCancel(symbol=SYM, client_order_id="ar00000000000000000001", ts_event_ns=T0))
            await until(lambda: any(isinstance(m, OrderCanceled) for m in received))
            stop.set()
            await asyncio.wait_for(task, 5)
            assert stream.stats["decode_failures"] == 0

    run(scenario())




# -- user-data decoding on the documented shapes ----------------------------------------------------------


def shape(shared_data: Any, name: str) -> bytes:
    return (shared_data / "shapes" / "binance" / "futures" / "user_data_json" / name).read_bytes()


def test_order_update_new_becomes_order_accepted(shared_data):
    """x=NEW gives OrderAccepted with the client and venue order ids and T in ns."""
    assert decode_user_event(shape(shared_data, "order_update_new.json")) == [
        OrderAccepted(symbol="BTCUSDT", client_order_id="TEST", venue_order_id="8886774", ts_event_ns=1568879465651 * 1_000_000)]


def test_order_update_trade_becomes_order_filled_with_the_trade_id(shared_data):
    """x=TRADE gives OrderFilled: fill_id is 't', qty 'l', price 'L', fee 'n', maker 'm'."""
    (fill,) = decode_user_event(shape(shared_data, "order_update_trade_partial.json"))
    assert fill == OrderFilled(symbol="BTCUSDT", client_order_id="TEST", venue_order_id="8886774", fill_id="12345678",
                               side=Side.BUY, qty=D("0.001"), price=D("7100.50"), fee=D("0.01000000"), is_maker=True,
                               cum_qty=D("0.001"), leaves_qty=D("0.001"), ts_event_ns=1568879465651 * 1_000_000)


def test_account_update_nets_hedge_legs_into_one_position(shared_data):
    """ACCOUNT_UPDATE with BOTH/LONG/SHORT legs reports the net, without a single entry price."""
    (position,) = decode_user_event(shape(shared_data, "account_update.json"))
    assert (position.symbol, position.qty, position.avg_price) == ("BTCUSDT", D("10"), None)


def test_every_documented_futures_user_event_decodes_or_is_ignored(shared_data):
    """All futures user-data shapes decode without error; the liquidation execution is a fill."""
    folder = shared_data / "shapes" / "binance" / "futures" / "user_data_json"
    decoded = {p.name: decode_user_event(p.read_bytes()) for p in sorted(folder.glob("*.json"))}
    assert decoded["trade_lite.json"] == []
    assert isinstance(decoded["order_update_calculated.json"][0], OrderFilled)


@pytest.mark.parametrize("payload", [b"", b"[]", b"{}", b'{"e":"ORDER_TRADE_UPDATE","o":{}}', b'{"e":"NOPE"}', b"\xff"])
def test_malformed_user_frames_raise_decode_error(payload):
    """Garbage, an unknown event or a missing field is DecodeError, never another exception."""
    with pytest.raises(DecodeError):
        decode_user_event(payload)


def test_mutated_documented_events_raise_only_decode_error(shared_data):
    """Every field of a real-shape update removed or retyped in turn: DecodeError or a decode, nothing else."""
    base = json.loads(shape(shared_data, "order_update_trade.json"))
    for key in list(base["o"]):
        for replacement in (None, 1.5, "x", [], -1):
            event = json.loads(json.dumps(base))
            if replacement is None:
                del event["o"][key]
            else:
                event["o"][key] = replacement
            with contextlib.suppress(DecodeError):
                decode_user_event(json.dumps(event).encode())


async def until(condition, timeout: float = 5.0) -> None:
    await _until(condition, timeout)

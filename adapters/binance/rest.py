"""Binance USD-M futures order entry over REST: our order messages in, the venue's answers out.

https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api

Runs on the event loop of the venue shell that owns it; one instance per API key. Its
dependencies come through the constructor: the aiohttp session, a clock (``now_ns()``) and an
async ``sleep`` (so tests move time instead of waiting).

What it promises:

- Every request is signed (HMAC-SHA256, see ``adapters.binance.signing``) with a timestamp on
  the venue's clock: ``sync_time()`` measures the offset from ``GET /fapi/v1/time``, and a
  ``-1021`` (timestamp outside recvWindow) resyncs once and retries, since the venue did not
  process the request.
- ``newClientOrderId`` is the executor's deterministic client order id, so the venue's own
  records answer for an order by it (``origClientOrderId``), and a resubmit is refused by the
  venue (``-4116``) rather than duplicated.
- A place that gets a 5xx, a timeout or a broken connection is NOT retried: its fate is unknown
  (answered as ``OrderStatusReported(status=UNKNOWN)``) until a query by client order id settles
  it. Reads (query, open orders, positions) are retried with backoff.
- 429/418 honour ``Retry-After`` with exponential backoff (the venue did not process the request,
  so a retry is safe); the used weight and order counts of the response headers
  (``X-MBX-USED-WEIGHT-1M``, ``X-MBX-ORDER-COUNT-10S``/``-1M``) make the next request wait for the
  next window when they come near the limit.
- Venue error codes become ``OrderRejected`` reasons: ``"<name> (<code>: <venue message>)"``.

Fills are not made up from REST answers (they carry no trade ids): a place or cancel answer
that says something executed is reported as ``OrderStatusReported``, which the executor settles
from; the individual fills, with trade ids, come through the user-data stream.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
import attrs
from arbor.adapters.binance.signing import decimal_param, encode_params, signed_query
from arbor.adapters.credentials import BinanceCredentials
from arbor.adapters.venues.http_rules import Next, Reply, RetryPolicy, attempt
from arbor.messages import (
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    OrderStatus,
    OrderStatusReported,
    OrderType,
    PlaceOrder,
    PositionReported,
    QueryOrder,
    QueryPosition,
    RequestCancel,
)
from loguru import logger
from yarl import URL

Sleep = Callable[[float], Awaitable[None]]

_NS_PER_MS = 1_000_000
_ZERO = Decimal("0")

# Binance error codes as rejection reasons (futures "Error Codes" page).
REJECT_REASONS: dict[int, str] = {
    -1013: "filter_failure",
    -1021: "timestamp_outside_recv_window",
    -1022: "invalid_signature",
    -1102: "missing_parameter",
    -1111: "precision_over_maximum",
    -1116: "invalid_order_type",
    -1121: "invalid_symbol",
    -2010: "new_order_rejected",
    -2014: "invalid_api_key",
    -2015: "invalid_api_key_ip_or_permissions",
    -2019: "insufficient_margin",
    -2021: "would_immediately_trigger",
    -2022: "reduce_only_rejected",
    -4003: "qty_not_positive",
    -4005: "qty_above_maximum",
    -4014: "price_not_on_tick",
    -4015: "invalid_client_order_id",
    -4023: "qty_not_on_step",
    -4131: "price_out_of_band",
    -4164: "min_notional",
    -5022: "post_only_rejected",
}
DUPLICATE_CLIENT_ORDER_ID = -4116
TIMESTAMP_OUTSIDE_RECV_WINDOW = -1021
UNKNOWN_ORDER = -2011  # cancel of an order the venue does not have (open)
ORDER_DOES_NOT_EXIST = -2013

_STATUS = {
    "NEW": OrderStatus.NEW,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "EXPIRED": OrderStatus.CANCELED,  # IOC/FOK/GTX remainder: dead at the venue
    "EXPIRED_IN_MATCH": OrderStatus.CANCELED,  # self-trade prevention
    "REJECTED": OrderStatus.REJECTED,
    "NEW_INSURANCE": OrderStatus.NEW,
    "NEW_ADL": OrderStatus.NEW,
}


@attrs.frozen(kw_only=True)
class BinanceRestConfig:
    """Limits and timings. The rate limits are the account's (``GET /fapi/v1/exchangeInfo``)."""

    recv_window_ms: int = 5000
    request_timeout_s: float = 10.0
    max_attempts: int = 5  # per request, for failures that are safe to retry
    backoff_base_s: float = 0.5
    backoff_max_s: float = 120.0  # a Retry-After longer than this gives up (a 418 ban can last days)
    weight_limit_1m: int = 2400
    order_limit_10s: int = 300
    order_limit_1m: int = 1200
    headroom: float = 0.9  # wait for the next window once usage reaches this share of a limit
    new_order_resp_type: str = "RESULT"
    venue: str = "binance_usdm"


_RATE_LIMITED = frozenset({429, 418})  # 418: Binance's ban after ignoring 429s


class OutcomeUnknown(Exception):
    """No answer we can read: the request may or may not have been processed."""


class RateLimited(Exception):
    """The venue kept refusing for rate limits; the request was not processed."""


class VenueError(Exception):
    def __init__(self, http_status: int, code: int, msg: str) -> None:
        super().__init__(f"http {http_status} code {code}: {msg}")
        self.http_status = http_status
        self.code = code
        self.msg = msg


class BinanceFuturesRest:
    """Signed REST client of one Binance USD-M futures account."""

    def __init__(
        self,
        base_url: str,
        credentials: BinanceCredentials,
        session: aiohttp.ClientSession,
        clock: Any,
        sleep: Sleep,
        config: BinanceRestConfig | None = None,
        log: Any = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._creds = credentials
        self._session = session
        self._clock = clock
        self._sleep = sleep
        self.config = config or BinanceRestConfig()
        self._retry = RetryPolicy(max_attempts=self.config.max_attempts, backoff_base_s=self.config.backoff_base_s,
                                  backoff_max_s=self.config.backoff_max_s)
        self._log = log if log is not None else logger.bind(venue=self.config.venue)
        self._offset_ms = 0
        # (window index, count) as last reported by the venue, per limit
        self._usage: dict[str, tuple[int, int]] = {}

    # -- time ---------------------------------------------------------------------------------
    @property
    def time_offset_ms(self) -> int:
        """Venue clock minus ours, in ms, as last measured."""
        return self._offset_ms

    async def sync_time(self) -> int:
        """Measure the venue's clock offset (``GET /fapi/v1/time``); returns it in ms."""
        sent = self._local_ms()
        body = await self._request("GET", "/fapi/v1/time", [], signed=False, retry_unknown=True)
        received = self._local_ms()
        server_ms = body.get("serverTime") if isinstance(body, dict) else None
        if type(server_ms) is not int:
            raise OutcomeUnknown("server time answer without serverTime")
        self._offset_ms = server_ms - (sent + received) // 2
        self._log.info("binance time offset {} ms", self._offset_ms)
        return self._offset_ms

    # -- the executor's requests ----------------------------------------------------------------
    async def handle(self, msg: Any) -> list[Any]:
        """The venue's answer to one executor request (``PlaceOrder``, ``RequestCancel``, ...)."""
        if isinstance(msg, PlaceOrder):
            return await self.place(msg)
        if isinstance(msg, RequestCancel):
            return await self.cancel(msg)
        if isinstance(msg, QueryOrder):
            return await self.query(msg)
        if isinstance(msg, QueryPosition):
            return [await self.position(msg)]
        raise TypeError(f"not a venue request: {type(msg).__name__}")

    async def place(self, msg: PlaceOrder) -> list[Any]:
        """Place one order. Answers: accepted (+ a status report if it already executed or died),
        rejected with the venue's reason, or a status report UNKNOWN when the answer was lost."""
        params = [
            ("symbol", msg.symbol),
            ("side", msg.side.value),
            ("type", msg.order_type.value),
            ("quantity", decimal_param(msg.qty)),
        ]
        if msg.order_type is OrderType.LIMIT:
            if msg.limit_price is None:
                return [self._rejected(msg.symbol, msg.client_order_id, "limit_without_price")]
            params += [("timeInForce", "GTC"), ("price", decimal_param(msg.limit_price))]
        if msg.reduce_only:
            params.append(("reduceOnly", "true"))
        params += [("newClientOrderId", msg.client_order_id), ("newOrderRespType", self.config.new_order_resp_type)]
        try:
            body = await self._request("POST", "/fapi/v1/order", params, is_order=True)
        except OutcomeUnknown as exc:
            self._log.warning("place {} {}: outcome unknown ({}); settle by query", msg.symbol, msg.client_order_id, exc)
            return [self._unknown(msg.symbol, msg.client_order_id)]
        except RateLimited as exc:
            return [self._rejected(msg.symbol, msg.client_order_id, f"rate_limited ({exc})")]
        except VenueError as exc:
            if exc.code == DUPLICATE_CLIENT_ORDER_ID:
                # The venue has this order already (an earlier send got through): its records answer.
                return await self.query(QueryOrder(symbol=msg.symbol, client_order_id=msg.client_order_id, ts_event_ns=self._now_ns()))
            return [self._rejected(msg.symbol, msg.client_order_id, reject_reason(exc.code, exc.msg))]
        try:
            report = order_report(body, self._now_ns())
        except ValueError as exc:
            self._log.error("place {} {}: unreadable answer ({}); settle by query", msg.symbol, msg.client_order_id, exc)
            return [self._unknown(msg.symbol, msg.client_order_id)]
        if report.status is OrderStatus.REJECTED:
            return [self._rejected(msg.symbol, msg.client_order_id, "rejected")]
        accepted = OrderAccepted(
            symbol=msg.symbol, client_order_id=msg.client_order_id, venue_order_id=report.venue_order_id, ts_event_ns=report.ts_event_ns
        )
        return [accepted] if report.status is OrderStatus.NEW else [accepted, report]

    async def cancel(self, msg: RequestCancel) -> list[Any]:
        """Cancel by client order id; a refused cancel is answered by the order's records."""
        params = [("symbol", msg.symbol), ("origClientOrderId", msg.client_order_id)]
        try:
            body = await self._request("DELETE", "/fapi/v1/order", params)
        except (OutcomeUnknown, RateLimited) as exc:
            self._log.warning("cancel {} {}: no answer ({}); the executor's timeout queries", msg.symbol, msg.client_order_id, exc)
            return []
        except VenueError as exc:
            # Unknown order (-2011): already filled or canceled, or never placed. The records say which.
            self._log.info("cancel {} {} refused: {}", msg.symbol, msg.client_order_id, exc)
            return await self.query(QueryOrder(symbol=msg.symbol, client_order_id=msg.client_order_id, ts_event_ns=self._now_ns()))
        try:
            report = order_report(body, self._now_ns())
        except ValueError as exc:
            self._log.error("cancel {} {}: unreadable answer ({})", msg.symbol, msg.client_order_id, exc)
            return []
        if report.status is OrderStatus.CANCELED:
            return [
                OrderCanceled(
                    symbol=msg.symbol,
                    client_order_id=msg.client_order_id,
                    filled_qty=report.filled_qty,
                    reason="canceled",
                    ts_event_ns=report.ts_event_ns,
                )
            ]
        return [report]

    async def query(self, msg: QueryOrder) -> list[Any]:
        """The venue's record of one order by client order id (NOT_FOUND if it has none)."""
        params = [("symbol", msg.symbol), ("origClientOrderId", msg.client_order_id)]
        try:
            body = await self._request("GET", "/fapi/v1/order", params, retry_unknown=True)
        except (OutcomeUnknown, RateLimited) as exc:
            self._log.warning("query {} {}: no answer ({}); asked again later", msg.symbol, msg.client_order_id, exc)
            return []
        except VenueError as exc:
            if exc.code == ORDER_DOES_NOT_EXIST:
                return [
                    OrderStatusReported(
                        symbol=msg.symbol,
                        client_order_id=msg.client_order_id,
                        status=OrderStatus.NOT_FOUND,
                        venue_order_id="",
                        filled_qty=_ZERO,
                        avg_price=None,
                        ts_event_ns=self._now_ns(),
                    )
                ]
            self._log.warning("query {} {} refused: {}", msg.symbol, msg.client_order_id, exc)
            return []
        try:
            return [order_report(body, self._now_ns())]
        except ValueError as exc:
            self._log.error("query {} {}: unreadable answer ({})", msg.symbol, msg.client_order_id, exc)
            return []

    async def open_orders(self, symbol: str) -> list[OrderStatusReported]:
        """The symbol's open orders at the venue (``GET /fapi/v1/openOrders``)."""
        body = await self._request("GET", "/fapi/v1/openOrders", [("symbol", symbol)], retry_unknown=True)
        if not isinstance(body, list):
            raise ValueError("openOrders answer is not a list")
        now = self._now_ns()
        return [order_report(o, now) for o in body]

    async def position(self, msg: QueryPosition) -> PositionReported:
        """The venue's position and open orders for the symbol (for reconciliation)."""
        body = await self._request("GET", "/fapi/v2/positionRisk", [("symbol", msg.symbol)], retry_unknown=True)
        qty, avg = net_position(body, msg.symbol)
        orders = await self.open_orders(msg.symbol)
        return PositionReported(
            symbol=msg.symbol,
            qty=qty,
            avg_price=avg,
            open_client_order_ids=tuple(o.client_order_id for o in orders),
            ts_event_ns=self._now_ns(),
        )

    # -- listen key (user-data stream) ------------------------------------------------------
    async def create_listen_key(self) -> str:
        body = await self._request("POST", "/fapi/v1/listenKey", [], signed=False, retry_unknown=True)
        key = body.get("listenKey") if isinstance(body, dict) else None
        if type(key) is not str or not key:
            raise OutcomeUnknown("listenKey answer without a key")
        return key

    async def keep_alive_listen_key(self) -> bool:
        """Extend the listen key's validity by 60 minutes; False if the venue no longer has it."""
        try:
            await self._request("PUT", "/fapi/v1/listenKey", [], signed=False, retry_unknown=True)
        except VenueError as exc:
            self._log.warning("listen key keep-alive refused: {}", exc)
            return False
        return True

    async def close_listen_key(self) -> None:
        try:
            await self._request("DELETE", "/fapi/v1/listenKey", [], signed=False)
        except (OutcomeUnknown, RateLimited, VenueError) as exc:
            self._log.info("listen key close: {}", exc)

    # -- transport --------------------------------------------------------------------------
    async def _request(
        self,
        method: str,
        path: str,
        params: list[tuple[str, str]],
        *,
        signed: bool = True,
        is_order: bool = False,
        retry_unknown: bool = False,
    ) -> Any:
        """One request, retried only where the venue certainly did not act (or it is a read)."""
        cfg = self.config
        resynced = False
        while True:

            async def send_once() -> Reply:
                await self._respect_limits(is_order)
                if signed:
                    query = signed_query(params, self._creds.api_secret, self._local_ms() + self._offset_ms,
                                         cfg.recv_window_ms)
                else:
                    query = encode_params(params)
                url = URL(f"{self._base}{path}?{query}" if query else f"{self._base}{path}", encoded=True)
                async with self._session.request(
                    method,
                    url,
                    headers={"X-MBX-APIKEY": self._creds.api_key},
                    timeout=aiohttp.ClientTimeout(total=cfg.request_timeout_s),
                ) as resp:
                    self._note_usage(resp.headers)
                    return Reply(status=resp.status, text=await resp.text(), retry_after=resp.headers.get("Retry-After"))

            outcome = await attempt(send_once, self._retry, self._sleep, retry_unknown=retry_unknown,
                                    rate_limit_statuses=_RATE_LIMITED,
                                    on_rate_limited=lambda step: self._log.warning(
                                        "{} {}: {}, attempt {}", method, path, step.reason, step.attempt))
            step, status, text = outcome.step, outcome.status, outcome.text
            if step.next is Next.RATE_LIMITED:
                raise RateLimited(step.reason)
            if step.next is Next.UNKNOWN:
                raise OutcomeUnknown(f"{method} {path}: {step.reason}")
            assert status is not None  # answered
            try:
                body = json.loads(text)
            except ValueError:
                if status < 400:
                    raise OutcomeUnknown(f"{method} {path}: http {status} with a body that is not JSON") from None
                raise VenueError(status, 0, _short(text)) from None
            if status >= 400:
                code, msg = _error(body)
                if code == TIMESTAMP_OUTSIDE_RECV_WINDOW and signed and not resynced:
                    resynced = True  # not processed: resync the clock once and send again
                    await self.sync_time()
                    continue
                raise VenueError(status, code, msg)
            return body


    def _note_usage(self, headers: Any) -> None:
        now = self._local_ms() + self._offset_ms
        for name, value in headers.items():
            lname = name.lower()
            if lname.startswith("x-mbx-used-weight-") or lname.startswith("x-mbx-order-count-"):
                window_ms = _window_ms(lname.rsplit("-", 1)[-1])
                if window_ms and value.isdigit():
                    self._usage[lname] = (now // window_ms, int(value))

    async def _respect_limits(self, is_order: bool) -> None:
        """Wait for the next window of any limit whose last reported usage is near it."""
        cfg = self.config
        limits = [("x-mbx-used-weight-1m", cfg.weight_limit_1m)]
        if is_order:
            limits += [("x-mbx-order-count-10s", cfg.order_limit_10s), ("x-mbx-order-count-1m", cfg.order_limit_1m)]
        for name, limit in limits:
            seen = self._usage.get(name)
            if seen is None:
                continue
            window_ms = _window_ms(name.rsplit("-", 1)[-1])
            now = self._local_ms() + self._offset_ms
            index, used = seen
            if index == now // window_ms and used >= cfg.headroom * limit:
                wait_ms = window_ms - now % window_ms
                self._log.warning("{} at {}/{}: waiting {} ms for the next window", name, used, limit, wait_ms)
                await self._sleep(wait_ms / 1000)
                self._usage.pop(name, None)

    # -- helpers ----------------------------------------------------------------------------
    def _local_ms(self) -> int:
        return self._clock.now_ns() // _NS_PER_MS

    def _now_ns(self) -> int:
        return self._clock.now_ns()

    def _rejected(self, symbol: str, coid: str, reason: str) -> OrderRejected:
        return OrderRejected(symbol=symbol, client_order_id=coid, reason=reason, ts_event_ns=self._now_ns())

    def _unknown(self, symbol: str, coid: str) -> OrderStatusReported:
        return OrderStatusReported(
            symbol=symbol,
            client_order_id=coid,
            status=OrderStatus.UNKNOWN,
            venue_order_id="",
            filled_qty=_ZERO,
            avg_price=None,
            ts_event_ns=self._now_ns(),
        )


# -- mapping venue JSON to our messages (pure) ----------------------------------------------------


def reject_reason(code: int, msg: str) -> str:
    """``"min_notional (-4164: Order's notional must be ...)"``: our name, then the venue's words."""
    return f"{REJECT_REASONS.get(code, 'venue_error')} ({code}: {_short(msg, 160)})"


def order_report(body: Any, ts_recv_ns: int) -> OrderStatusReported:
    """An order object (place/cancel/query/openOrders answer) as ``OrderStatusReported``.

    ``ValueError`` when a required field is missing or malformed.
    """
    if not isinstance(body, dict):
        raise ValueError(f"order answer is not an object: {_short(body)}")
    raw_status = body.get("status")
    status = _STATUS.get(raw_status) if type(raw_status) is str else None
    if status is None:
        raise ValueError(f"unknown order status {_short(raw_status)}")
    coid = body.get("clientOrderId")
    order_id = body.get("orderId")
    if type(coid) is not str or type(order_id) is not int:
        raise ValueError("order answer lacks clientOrderId or orderId")
    symbol = body.get("symbol")
    if type(symbol) is not str:
        raise ValueError("order answer lacks symbol")
    filled = parse_decimal(body.get("executedQty", "0"), "executedQty")
    avg = parse_decimal(body.get("avgPrice", "0"), "avgPrice")
    update_ms = body.get("updateTime")
    return OrderStatusReported(
        symbol=symbol,
        client_order_id=coid,
        status=OrderStatus.PARTIALLY_FILLED if status is OrderStatus.NEW and filled > 0 else status,
        venue_order_id=str(order_id),
        filled_qty=filled,
        avg_price=avg if filled > 0 and avg > 0 else None,
        ts_event_ns=update_ms * _NS_PER_MS if type(update_ms) is int and update_ms > 0 else ts_recv_ns,
    )


def net_position(body: Any, symbol: str) -> tuple[Decimal, Decimal | None]:
    """Signed net quantity and entry price of ``symbol`` from a positionRisk answer.

    In hedge mode the LONG and SHORT legs are netted; the entry price is given only when exactly
    one leg is open (a net of two legs has no single entry price).
    """
    if not isinstance(body, list):
        raise ValueError("positionRisk answer is not a list")
    qty = _ZERO
    open_legs: list[tuple[Decimal, Decimal]] = []
    for leg in body:
        if not isinstance(leg, dict) or leg.get("symbol") != symbol:
            continue
        amount = parse_decimal(leg.get("positionAmt"), "positionAmt")
        if amount != 0:
            qty += amount
            open_legs.append((amount, parse_decimal(leg.get("entryPrice"), "entryPrice")))
    avg = open_legs[0][1] if len(open_legs) == 1 and qty != 0 else None
    return qty, avg


def parse_decimal(value: Any, name: str) -> Decimal:
    """A finite Decimal from the venue's decimal string (``ValueError`` otherwise)."""
    if type(value) is not str:
        raise ValueError(f"{name} must be a decimal string, got {type(value).__name__}")
    try:
        d = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{name} is not a decimal: {_short(value)}") from None
    if not d.is_finite():
        raise ValueError(f"{name} is not finite: {_short(value)}")
    return d


def _error(body: Any) -> tuple[int, str]:
    if isinstance(body, dict):
        code, msg = body.get("code"), body.get("msg")
        return (code if type(code) is int else 0, msg if type(msg) is str else _short(body))
    return 0, _short(body)


def _window_ms(suffix: str) -> int:
    """``"1m"`` -> 60000, ``"10s"`` -> 10000; 0 if unreadable."""
    units = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
    number, unit = suffix[:-1], suffix[-1:]
    return int(number) * units[unit] if number.isdigit() and unit in units else 0


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

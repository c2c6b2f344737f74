"""A local Binance USD-M futures order-entry venue for tests: REST + user-data stream on 127.0.0.1.

It speaks the real wire format (signed query strings, ``X-MBX-APIKEY``, error bodies
``{"code": -4164, "msg": ...}``, rate-limit headers, ``ORDER_TRADE_UPDATE``/``ACCOUNT_UPDATE``
events on ``/ws/<listenKey>``) over a small order model: a MARKET order fills at the symbol's
mark price, a LIMIT order that crosses the mark fills there, otherwise it rests until a test
calls ``fill()``. Positions follow the fills.

Misbehaviour on request, for the next matching request(s) (``fail_next``):

- ``Fault.http(429, retry_after=3)`` / ``Fault.http(503)``: answer that status, not processed;
  ``Fault.http(503, process=True)``: process it, then answer 503 (outcome unknown to the client).
- ``Fault.reject(-2019, "Margin is insufficient.")``: a venue error code.
- ``Fault.hang()``: never answer; ``Fault.hang(process=True)``: process (accept the order) and never
  answer. A hung handler is released when the server closes.

Everything it saw is kept for assertions: ``requests`` (method, path, params), ``keepalives``.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs
from aiohttp import WSMsgType, web
from arbor.adapters.binance.signing import verify_signed_query
from arbor.adapters.credentials import BinanceCredentials

_NS_PER_MS = 1_000_000
_ZERO = Decimal("0")
_SIGNED = {("POST", "/fapi/v1/order"), ("GET", "/fapi/v1/order"), ("DELETE", "/fapi/v1/order"),
           ("GET", "/fapi/v1/openOrders"), ("GET", "/fapi/v2/positionRisk")}
_WEIGHT = {"/fapi/v1/order": 1, "/fapi/v1/openOrders": 1, "/fapi/v2/positionRisk": 5, "/fapi/v1/time": 1,
           "/fapi/v1/listenKey": 1}


@attrs.frozen(kw_only=True)
class Fault:
    kind: str  # "status" | "reject" | "hang"
    status: int = 0
    code: int = 0
    msg: str = ""
    retry_after: int | None = None
    process: bool = False

    @staticmethod
    def http(status: int, retry_after: int | None = None, process: bool = False) -> Fault:
        return Fault(kind="status", status=status, retry_after=retry_after, process=process)

    @staticmethod
    def reject(code: int, msg: str, status: int = 400) -> Fault:
        return Fault(kind="reject", status=status, code=code, msg=msg)

    @staticmethod
    def hang(process: bool = False) -> Fault:
        return Fault(kind="hang", process=process)


@attrs.define(kw_only=True)
class _Order:
    order_id: int
    symbol: str
    client_order_id: str
    side: str
    type: str
    qty: Decimal
    price: Decimal
    reduce_only: bool
    status: str = "NEW"
    executed: Decimal = _ZERO
    cum_quote: Decimal = _ZERO
    time_ms: int = 0
    update_ms: int = 0

    @property
    def avg_price(self) -> Decimal:
        return self.cum_quote / self.executed if self.executed > 0 else _ZERO

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    def wire(self) -> dict[str, Any]:
        return {
            "orderId": self.order_id, "symbol": self.symbol, "status": self.status,
            "clientOrderId": self.client_order_id, "price": str(self.price), "avgPrice": _fmt(self.avg_price),
            "origQty": str(self.qty), "executedQty": str(self.executed), "cumQuote": _fmt(self.cum_quote),
            "timeInForce": "GTC", "type": self.type, "reduceOnly": self.reduce_only, "closePosition": False,
            "side": self.side, "positionSide": "BOTH", "stopPrice": "0", "workingType": "CONTRACT_PRICE",
            "priceProtect": False, "origType": self.type, "priceMatch": "NONE", "selfTradePreventionMode": "NONE",
            "goodTillDate": 0, "time": self.time_ms, "updateTime": self.update_ms,
        }


class BinanceRestServer:
    """The venue. ``clock`` (``now_ns()``) is its clock; ``skew_ms`` puts it ahead of the client's."""

    def __init__(
        self,
        credentials: BinanceCredentials,
        clock: Any,
        marks: dict[str, Decimal] | None = None,
        *,
        min_notional: Decimal = Decimal("5"),
        taker_fee_rate: Decimal = Decimal("0.0004"),
        maker_fee_rate: Decimal = Decimal("0.0002"),
    ) -> None:
        self._creds = credentials
        self._clock = clock
        self.marks: dict[str, Decimal] = dict(marks or {"BTCUSDT": Decimal("60000")})
        self.min_notional = min_notional
        self.taker_fee_rate = taker_fee_rate
        self.maker_fee_rate = maker_fee_rate
        self.skew_ms = 0
        self.orders: dict[str, _Order] = {}
        self.positions: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> (signed qty, entry price)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.keepalives: list[int] = []  # server ms of each listen-key keep-alive
        self.listen_key: str | None = None
        self._faults: deque[tuple[str, str, Fault]] = deque()
        self._sockets: list[web.WebSocketResponse] = []
        self._next_order_id = 8_000_000
        self._next_trade_id = 12_000_000
        self._next_key = 0
        self._usage: dict[str, tuple[int, int]] = {}
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> str:
        """Serve on an ephemeral port of 127.0.0.1; returns the base URL."""
        app = web.Application()
        app.router.add_get("/ws/{key}", self._ws)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # aiohttp has no public bound port; set once started
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def close(self) -> None:
        self._released.set()
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> BinanceRestServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- test controls -------------------------------------------------------------------------
    def fail_next(self, method: str, path: str, fault: Fault, times: int = 1) -> None:
        for _ in range(times):
            self._faults.append((method, path, fault))

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _ in self.requests if m == method and p == path)

    @property
    def last_trade_id(self) -> int:
        """The trade id of the newest fill this server made (its fills number up from 12,000,001)."""
        return self._next_trade_id

    async def fill(self, client_order_id: str, qty: Decimal | None = None, price: Decimal | None = None) -> None:
        """Execute (part of) a resting order as maker, at its limit price unless told otherwise."""
        order = self.orders[client_order_id]
        if not order.is_open:
            raise ValueError(f"order {client_order_id} is {order.status}")
        await self._execute(order, qty or order.qty - order.executed, price or order.price, maker=True)

    async def drop_user_streams(self) -> None:
        """Close every user-data websocket (the client should reconnect)."""
        for ws in list(self._sockets):
            await ws.close()

    def now_ms(self) -> int:
        return self._clock.now_ns() // _NS_PER_MS + self.skew_ms

    # -- HTTP ------------------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        method, path = request.method, request.path
        params = {k: v for k, v in request.query.items()}
        self.requests.append((method, path, params))
        fault = self._take_fault(method, path)
        if fault is not None and not fault.process:
            return await self._misbehave(fault)
        if request.headers.get("X-MBX-APIKEY") != self._creds.api_key:
            return _error(401, -2015, "Invalid API-key, IP, or permissions for action.")
        if (method, path) in _SIGNED:
            if not verify_signed_query(self._creds.api_secret, request.rel_url.raw_query_string):
                return _error(400, -1022, "Signature for this request is not valid.")
            if not self._timestamp_ok(params):
                return _error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        weight = self._count("x-mbx-used-weight-1m", _WEIGHT.get(path, 1))
        headers = {"X-MBX-USED-WEIGHT-1M": str(weight)}
        if (method, path) == ("POST", "/fapi/v1/order"):
            headers["X-MBX-ORDER-COUNT-10S"] = str(self._count("x-mbx-order-count-10s", 1))
            headers["X-MBX-ORDER-COUNT-1M"] = str(self._count("x-mbx-order-count-1m", 1))
        handler = _ROUTES.get((method, path))
        if handler is None:
            return _error(404, -1000, f"no route {method} {path}")
        status, body = await handler(self, params)
        if fault is not None:  # processed: now lose the answer
            return await self._misbehave(fault)
        return web.json_response(body, status=status, headers=headers)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for i, (m, p, fault) in enumerate(self._faults):
            if m == method and p == path:
                del self._faults[i]
                return fault
        return None

    async def _misbehave(self, fault: Fault) -> web.StreamResponse:
        if fault.kind == "hang":
            await self._released.wait()
            return _error(503, -1000, "server closing")
        if fault.kind == "reject":
            return _error(fault.status, fault.code, fault.msg)
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if fault.status in (429, 418):
            return _error(fault.status, -1003, "Too many requests; current limit is exceeded.", headers)
        return _error(fault.status, -1000, "An unknown error occured while processing the request.", headers)

    def _timestamp_ok(self, params: dict[str, str]) -> bool:
        try:
            ts = int(params["timestamp"])
            window = int(params.get("recvWindow", "5000"))
        except (KeyError, ValueError):
            return False
        now = self.now_ms()
        return ts < now + 1000 and now - ts <= window

    def _count(self, name: str, weight: int) -> int:
        window_ms = 10_000 if name.endswith("10s") else 60_000
        index = self.now_ms() // window_ms
        seen_index, used = self._usage.get(name, (index, 0))
        used = (used if seen_index == index else 0) + weight
        self._usage[name] = (index, used)
        return used

    # -- endpoints -------------------------------------------------------------------------------
    async def _time(self, params: dict[str, str]) -> tuple[int, Any]:
        return 200, {"serverTime": self.now_ms()}

    async def _place(self, p: dict[str, str]) -> tuple[int, Any]:
        symbol = p.get("symbol", "")
        if symbol not in self.marks:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        side, otype = p.get("side"), p.get("type")
        if side not in ("BUY", "SELL") or otype not in ("MARKET", "LIMIT"):
            return 400, {"code": -1116, "msg": "Invalid orderType."}
        qty = _dec(p.get("quantity"))
        if qty is None or qty <= 0:
            return 400, {"code": -4003, "msg": "Quantity less than or equal to zero."}
        mark = self.marks[symbol]
        price = mark
        if otype == "LIMIT":
            limit = _dec(p.get("price"))
            if limit is None or limit <= 0 or "timeInForce" not in p:
                return 400, {"code": -1102, "msg": "Mandatory parameter 'price' was not sent, was empty/null, or malformed."}
            price = limit
        coid = p.get("newClientOrderId") or f"web_{self._next_order_id}"
        if coid in self.orders:
            return 400, {"code": -4116, "msg": "ClientOrderId is duplicated."}
        reduce_only = p.get("reduceOnly") == "true"
        position = self.positions.get(symbol, (_ZERO, _ZERO))[0]
        if reduce_only:
            reducible = -position if side == "BUY" else position
            if reducible <= 0:
                return 400, {"code": -2022, "msg": "ReduceOnly Order is rejected."}
            qty = min(qty, reducible)
        elif qty * price < self.min_notional:
            return 400, {"code": -4164, "msg": f"Order's notional must be no smaller than {self.min_notional} (unless you choose reduce only)."}
        now = self.now_ms()
        self._next_order_id += 1
        order = _Order(order_id=self._next_order_id, symbol=symbol, client_order_id=coid, side=side, type=otype,
                       qty=qty, price=price if otype == "LIMIT" else _ZERO, reduce_only=reduce_only, time_ms=now, update_ms=now)
        self.orders[coid] = order
        await self._push_order_event(order, "NEW")
        crosses = otype == "MARKET" or (price >= mark if side == "BUY" else price <= mark)
        if crosses:
            await self._execute(order, qty, mark, maker=False)
        return 200, order.wire()

    async def _cancel(self, p: dict[str, str]) -> tuple[int, Any]:
        order = self.orders.get(p.get("origClientOrderId", ""))
        if order is None or order.symbol != p.get("symbol") or not order.is_open:
            return 400, {"code": -2011, "msg": "Unknown order sent."}
        order.status = "CANCELED"
        order.update_ms = self.now_ms()
        await self._push_order_event(order, "CANCELED")
        return 200, order.wire()

    async def _query(self, p: dict[str, str]) -> tuple[int, Any]:
        order = self.orders.get(p.get("origClientOrderId", ""))
        if order is None or order.symbol != p.get("symbol"):
            return 400, {"code": -2013, "msg": "Order does not exist."}
        return 200, order.wire()

    async def _open_orders(self, p: dict[str, str]) -> tuple[int, Any]:
        return 200, [o.wire() for o in self.orders.values() if o.is_open and o.symbol == p.get("symbol")]

    async def _position_risk(self, p: dict[str, str]) -> tuple[int, Any]:
        symbol = p.get("symbol", "")
        qty, entry = self.positions.get(symbol, (_ZERO, _ZERO))
        mark = self.marks.get(symbol, _ZERO)
        return 200, [{
            "symbol": symbol, "positionAmt": str(qty), "entryPrice": str(entry), "breakEvenPrice": str(entry),
            "markPrice": str(mark), "unRealizedProfit": _fmt((mark - entry) * qty), "liquidationPrice": "0",
            "leverage": "20", "maxNotionalValue": "250000", "marginType": "cross", "isolatedMargin": "0.00000000",
            "isAutoAddMargin": "false", "positionSide": "BOTH", "notional": _fmt(mark * qty), "isolatedWallet": "0",
            "updateTime": self.now_ms(),
        }]

    async def _listen_key_create(self, p: dict[str, str]) -> tuple[int, Any]:
        if self.listen_key is None:
            self._next_key += 1
            self.listen_key = f"lk{self._next_key:04d}pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"
        return 200, {"listenKey": self.listen_key}

    async def _listen_key_keepalive(self, p: dict[str, str]) -> tuple[int, Any]:
        if self.listen_key is None:
            return 400, {"code": -1125, "msg": "This listenKey does not exist."}
        self.keepalives.append(self.now_ms())
        return 200, {"listenKey": self.listen_key}

    async def _listen_key_close(self, p: dict[str, str]) -> tuple[int, Any]:
        self.listen_key = None
        return 200, {}

    def expire_listen_key(self) -> None:
        """The venue forgets the key (as after 60 minutes without keep-alive)."""
        self.listen_key = None

    # -- order model -----------------------------------------------------------------------------
    async def _execute(self, order: _Order, qty: Decimal, price: Decimal, *, maker: bool) -> None:
        qty = min(qty, order.qty - order.executed)
        order.executed += qty
        order.cum_quote += qty * price
        order.status = "FILLED" if order.executed >= order.qty else "PARTIALLY_FILLED"
        order.update_ms = self.now_ms()
        self._next_trade_id += 1
        signed = qty if order.side == "BUY" else -qty
        old_qty, old_entry = self.positions.get(order.symbol, (_ZERO, _ZERO))
        new_qty = old_qty + signed
        if new_qty == 0:
            entry = _ZERO
        elif old_qty == 0 or (old_qty > 0) != (new_qty > 0):
            entry = price  # opened, or flipped through zero
        elif abs(new_qty) > abs(old_qty):
            entry = (old_entry * abs(old_qty) + price * qty) / abs(new_qty)
        else:
            entry = old_entry  # reduced
        self.positions[order.symbol] = (new_qty, entry)
        fee = qty * price * (self.maker_fee_rate if maker else self.taker_fee_rate)
        await self._push_order_event(order, "TRADE", last_qty=qty, last_price=price, fee=fee, maker=maker,
                                     trade_id=self._next_trade_id)
        await self._push({"e": "ACCOUNT_UPDATE", "E": self.now_ms(), "T": self.now_ms(), "a": {
            "m": "ORDER", "B": [{"a": "USDT", "wb": "1000.00000000", "cw": "1000.00000000", "bc": "0"}],
            "P": [{"s": order.symbol, "pa": str(new_qty), "ep": str(entry), "bep": str(entry), "cr": "0",
                   "up": "0", "mt": "cross", "iw": "0", "ps": "BOTH"}]}})

    async def _push_order_event(self, order: _Order, execution: str, *, last_qty: Decimal = _ZERO,
                                last_price: Decimal = _ZERO, fee: Decimal = _ZERO, maker: bool = False,
                                trade_id: int = 0) -> None:
        now = self.now_ms()
        await self._push({"e": "ORDER_TRADE_UPDATE", "E": now, "T": now, "o": {
            "s": order.symbol, "c": order.client_order_id, "S": order.side, "o": order.type, "f": "GTC",
            "q": str(order.qty), "p": str(order.price), "ap": _fmt(order.avg_price), "sp": "0", "x": execution,
            "X": order.status, "i": order.order_id, "l": str(last_qty), "z": str(order.executed),
            "L": str(last_price), "N": "USDT", "n": _fmt(fee), "T": now, "t": trade_id, "b": "0", "a": "0",
            "m": maker, "R": order.reduce_only, "wt": "CONTRACT_PRICE", "ot": order.type, "ps": "BOTH",
            "cp": False, "rp": "0", "pP": False, "si": 0, "ss": 0, "V": "NONE", "pm": "NONE", "gtd": 0}})

    async def _push(self, event: dict[str, Any]) -> None:
        text = json.dumps(event, separators=(",", ":"))
        for ws in list(self._sockets):
            if not ws.closed:
                await ws.send_str(text)

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if request.match_info["key"] != self.listen_key:
            await ws.close(code=4001, message=b"invalid listen key")
            return ws
        self._sockets.append(ws)
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        finally:
            self._sockets.remove(ws)
        return ws

    @property
    def user_stream_connections(self) -> int:
        return len(self._sockets)


_ROUTES = {
    ("GET", "/fapi/v1/time"): BinanceRestServer._time,
    ("POST", "/fapi/v1/order"): BinanceRestServer._place,
    ("DELETE", "/fapi/v1/order"): BinanceRestServer._cancel,
    ("GET", "/fapi/v1/order"): BinanceRestServer._query,
    ("GET", "/fapi/v1/openOrders"): BinanceRestServer._open_orders,
    ("GET", "/fapi/v2/positionRisk"): BinanceRestServer._position_risk,
    ("POST", "/fapi/v1/listenKey"): BinanceRestServer._listen_key_create,
    ("PUT", "/fapi/v1/listenKey"): BinanceRestServer._listen_key_keepalive,
    ("DELETE", "/fapi/v1/listenKey"): BinanceRestServer._listen_key_close,
}


def _error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status, headers=headers)


def _dec(text: str | None) -> Decimal | None:
    try:
        value = Decimal(text) if text is not None else None
    except InvalidOperation:
        return None
    return value if value is not None and value.is_finite() else None


def _fmt(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.00000001")).normalize(), "f")

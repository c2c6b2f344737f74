"""A local Hyperliquid venue for tests: ``POST /info`` and ``POST /exchange`` on 127.0.0.1.

Its reference data is the real recorded info answers of the official SDK's test cassettes
(``shared/data/hyperliquid/sdk_cassettes``): ``meta`` (asset indexes, size decimals),
``allMids``, the DYDX ``l2Book``, a ``clearinghouseState`` (its positions are the starting
positions) and ``openOrders`` (foreign resting orders). On top, an order model: a limit order that
crosses the mid fills there (taker), an IOC that does not cross is rejected as the venue does,
a GTC rests until a test calls ``fill()``. /exchange checks the EIP-712 signature (the recovered
signer must be the account or an approved agent) and that nonces are not reused.

Misbehaviour on request (``fail_next``): ``Fault.http(429|5xx)``; ``Fault.hang(process=True)``
(act on the action, never answer); ``Fault.reject("...")`` (a top-level ``status: err``).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
from aiohttp import web
from arbor.adapters.hyperliquid.signing import decimal_to_wire, recover_l1_signer

_ZERO = Decimal("0")


# -- cassettes ---------------------------------------------------------------------------------


def read_cassette(path: Path) -> list[tuple[str, str]]:
    """``(request body, response body)`` of each interaction of a vcrpy YAML cassette.

    Reads only what these cassettes use: single-quoted flow scalars after ``body:`` and
    ``string:`` (YAML folding: a line break and the next line's indentation become one space, an
    empty line a newline, ``''`` a quote). No YAML library needed.
    """
    text = path.read_text()
    requests = _quoted_after(text, "body: '")
    responses = _quoted_after(text, "string: '")
    return list(zip(requests, responses, strict=True))


def _quoted_after(text: str, marker: str) -> list[str]:
    out = []
    start = text.find(marker)
    while start != -1:
        i = start + len(marker)
        chunks: list[str] = []
        while True:
            j = text.index("'", i)
            if j + 1 < len(text) and text[j + 1] == "'":
                chunks.append(text[i : j + 1])
                i = j + 2
                continue
            chunks.append(text[i:j])
            break
        out.append(_fold("".join(chunks)))
        start = text.find(marker, j)
    return out


def _fold(raw: str) -> str:
    lines = raw.split("\n")
    if len(lines) == 1:
        return raw
    parts = [lines[0].rstrip(" ")]
    pending_newlines = 0
    for line in lines[1:]:
        stripped = line.strip(" ")
        if stripped == "":
            pending_newlines += 1
            continue
        parts.append("\n" * pending_newlines if pending_newlines else " ")
        parts.append(stripped)
        pending_newlines = 0
    return "".join(parts)


def cassette_answers(folder: Path) -> dict[str, Any]:
    """The recorded info answers by request type (``meta``, ``allMids``, ``l2Book``, ...)."""
    answers: dict[str, Any] = {}
    for path in sorted(folder.glob("*.yaml")):
        for request, response in read_cassette(path):
            try:
                kind = json.loads(request).get("type")
                answers.setdefault(kind, json.loads(response))
            except (ValueError, AttributeError):
                continue
    return answers


# -- the venue ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Fault:
    kind: str  # "http" | "hang" | "reject"
    status: int = 0
    retry_after: int | None = None
    message: str = ""
    process: bool = False

    @staticmethod
    def http(status: int, retry_after: int | None = None, process: bool = False) -> Fault:
        return Fault(kind="http", status=status, retry_after=retry_after, process=process)

    @staticmethod
    def hang(process: bool = False) -> Fault:
        return Fault(kind="hang", process=process)

    @staticmethod
    def reject(message: str) -> Fault:
        return Fault(kind="reject", message=message)


@attrs.define(kw_only=True)
class _Order:
    oid: int
    coin: str
    is_buy: bool
    limit_px: Decimal
    orig_sz: Decimal
    reduce_only: bool
    tif: str
    cloid: str | None
    timestamp: int
    sz: Decimal = _ZERO  # remaining
    status: str = "open"
    status_ts: int = 0

    def wire(self) -> dict[str, Any]:
        return {
            "coin": self.coin, "side": "B" if self.is_buy else "A", "limitPx": decimal_to_wire(self.limit_px),
            "sz": decimal_to_wire(self.sz), "oid": self.oid, "timestamp": self.timestamp, "triggerCondition": "N/A",
            "isTrigger": False, "triggerPx": "0.0", "children": [], "isPositionTpsl": False,
            "reduceOnly": self.reduce_only, "orderType": "Limit", "origSz": decimal_to_wire(self.orig_sz),
            "tif": self.tif, "cloid": self.cloid,
        }


class HyperliquidServer:
    """The venue for one account. ``clock`` (``now_ns()``) is its clock."""

    def __init__(self, account_address: str, clock: Any, cassettes: Path, *, is_mainnet: bool = True,
                 agents: tuple[str, ...] = (), min_order_value: Decimal = Decimal("10")) -> None:
        self.account = account_address.lower()
        self._signers = {self.account, *(a.lower() for a in agents)}
        self._clock = clock
        self.is_mainnet = is_mainnet
        self.min_order_value = min_order_value
        recorded = cassette_answers(cassettes)
        self.meta: dict[str, Any] = recorded["meta"]
        self.mids: dict[str, str] = dict(recorded["allMids"])
        self.l2_books: dict[str, Any] = {recorded["l2Book"]["coin"]: recorded["l2Book"]}
        self.positions: dict[str, tuple[Decimal, Decimal]] = {}
        for entry in recorded["clearinghouseState"]["assetPositions"]:
            p = entry["position"]
            self.positions[p["coin"]] = (Decimal(p["szi"]), Decimal(p["entryPx"]))
        self._state_template = recorded["clearinghouseState"]
        self.foreign_open_orders: list[dict[str, Any]] = list(recorded.get("openOrders", []))
        self.orders: dict[int, _Order] = {}
        self.fills: list[dict[str, Any]] = []
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._nonces: set[int] = set()
        self._faults: deque[tuple[str, Fault]] = deque()
        self._next_oid = 90_000_000_000
        self._next_tid = 700_000_000_000_000
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    @property
    def universe(self) -> list[str]:
        return [a["name"] for a in self.meta["universe"]]

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/info", self._info)
        app.router.add_post("/exchange", self._exchange)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # aiohttp has no public bound port; set once started
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def close(self) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- test controls -------------------------------------------------------------------------
    def fail_next(self, path: str, fault: Fault, times: int = 1) -> None:
        for _ in range(times):
            self._faults.append((path, fault))

    def count(self, path: str, action_type: str | None = None) -> int:
        return sum(1 for p, body in self.requests if p == path and (
            action_type is None or (body.get("action") or {}).get("type") == action_type))

    def order_by_cloid(self, cloid: str | None) -> _Order | None:
        return next((o for o in self.orders.values() if o.cloid == cloid), None)

    def fill(self, cloid: str, sz: Decimal | None = None, px: Decimal | None = None) -> None:
        """Execute (part of) a resting order as maker."""
        order = self.order_by_cloid(cloid)
        if order is None or order.status != "open":
            raise ValueError(f"no open order with cloid {cloid}")
        self._execute(order, sz or order.sz, px or order.limit_px, crossed=False)

    def now_ms(self) -> int:
        return self._clock.now_ns() // 1_000_000

    # -- HTTP ------------------------------------------------------------------------------------
    async def _info(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(("/info", body))
        fault = self._take_fault("/info")
        if fault is not None:
            return await self._misbehave(fault)
        kind = body.get("type")
        if kind == "meta":
            return web.json_response(self.meta)
        if kind == "allMids":
            return web.json_response(self.mids)
        if kind == "l2Book":
            book = self.l2_books.get(body.get("coin"))
            return web.json_response(book) if book else web.json_response(None)
        if kind == "clearinghouseState":
            return web.json_response(self._clearinghouse_state())
        if kind == "openOrders":
            own = [{k: o.wire()[k] for k in ("coin", "side", "limitPx", "sz", "oid", "timestamp", "origSz", "cloid")}
                   for o in self.orders.values() if o.status == "open"]
            return web.json_response(own + self.foreign_open_orders)
        if kind == "orderStatus":
            oid = body.get("oid")
            order = self.order_by_cloid(oid) if isinstance(oid, str) else self.orders.get(oid)
            if order is None:
                return web.json_response({"status": "unknownOid"})
            return web.json_response({"status": "order", "order": {"order": order.wire(), "status": order.status,
                                                                    "statusTimestamp": order.status_ts}})
        if kind in ("userFills", "userFillsByTime"):
            start = body.get("startTime", 0)
            return web.json_response([f for f in self.fills if f["time"] >= start])
        return web.json_response({"error": f"unknown info type {kind}"}, status=422)

    async def _exchange(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(("/exchange", body))
        fault = self._take_fault("/exchange")
        if fault is not None and not fault.process:
            return await self._misbehave(fault)
        action, nonce, signature = body.get("action"), body.get("nonce"), body.get("signature")
        try:
            signer = recover_l1_signer(action, signature, nonce, is_mainnet=self.is_mainnet,
                                       vault_address=body.get("vaultAddress"), expires_after=body.get("expiresAfter"))
        except Exception:  # a malformed signature recovers nothing
            signer = "0x0000000000000000000000000000000000000000"
        if signer.lower() not in self._signers:
            return web.json_response({"status": "err", "response": f"User or API Wallet {signer.lower()} does not exist."})
        if nonce in self._nonces:
            return web.json_response({"status": "err", "response": "Invalid nonce: duplicate nonce"})
        self._nonces.add(nonce)
        if action.get("type") == "order":
            answer = {"status": "ok", "response": {"type": "order", "data": {"statuses": [self._place(w) for w in action["orders"]]}}}
        elif action.get("type") == "cancelByCloid":
            answer = {"status": "ok", "response": {"type": "cancel", "data": {"statuses": [self._cancel(c) for c in action["cancels"]]}}}
        else:
            answer = {"status": "err", "response": f"unsupported action {action.get('type')}"}
        if fault is not None:
            return await self._misbehave(fault)
        return web.json_response(answer)

    def _take_fault(self, path: str) -> Fault | None:
        for i, (p, fault) in enumerate(self._faults):
            if p == path:
                del self._faults[i]
                return fault
        return None

    async def _misbehave(self, fault: Fault) -> web.StreamResponse:
        if fault.kind == "hang":
            await self._released.wait()
            return web.Response(status=503)
        if fault.kind == "reject":
            return web.json_response({"status": "err", "response": fault.message})
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
        return web.Response(status=fault.status, text="rate limited" if fault.status == 429 else "error", headers=headers)

    # -- order model -----------------------------------------------------------------------------
    def _place(self, wire: dict[str, Any]) -> dict[str, Any]:
        universe = self.universe
        asset = wire["a"]
        if not isinstance(asset, int) or not 0 <= asset < len(universe):
            return {"error": f"Invalid asset {asset}"}
        coin = universe[asset]
        px, sz = Decimal(wire["p"]), Decimal(wire["s"])
        tif = wire["t"]["limit"]["tif"]
        cloid = wire.get("c")
        if cloid is not None and self.order_by_cloid(cloid) is not None:
            return {"error": "Duplicate cloid."}
        mid = Decimal(self.mids[coin])
        position = self.positions.get(coin, (_ZERO, _ZERO))[0]
        if wire["r"]:
            reducible = -position if wire["b"] else position
            if reducible <= 0:
                return {"error": "Reduce only order would increase position."}
        elif px * sz < self.min_order_value:
            return {"error": f"Order must have minimum value of ${self.min_order_value}. asset={asset}"}
        crosses = px >= mid if wire["b"] else px <= mid
        if tif == "Ioc" and not crosses:
            return {"error": f"Order could not immediately match against any resting orders. asset={asset}"}
        self._next_oid += 1
        now = self.now_ms()
        order = _Order(oid=self._next_oid, coin=coin, is_buy=wire["b"], limit_px=px, orig_sz=sz, sz=sz,
                       reduce_only=wire["r"], tif=tif, cloid=cloid, timestamp=now, status_ts=now)
        self.orders[order.oid] = order
        if crosses:
            self._execute(order, sz, mid, crossed=True)
            return {"filled": {"totalSz": decimal_to_wire(sz), "avgPx": decimal_to_wire(mid), "oid": order.oid}}
        return {"resting": {"oid": order.oid, **({"cloid": cloid} if cloid else {})}}

    def _cancel(self, request: dict[str, Any]) -> Any:
        order = self.order_by_cloid(request.get("cloid"))
        if order is None or order.status != "open":
            return {"error": f"Order was never placed, already canceled, or filled. asset={request.get('asset')}"}
        order.status, order.status_ts = "canceled", self.now_ms()
        return "success"

    def _execute(self, order: _Order, sz: Decimal, px: Decimal, *, crossed: bool) -> None:
        sz = min(sz, order.sz)
        order.sz -= sz
        now = self.now_ms()
        if order.sz == 0:
            order.status, order.status_ts = "filled", now
        old_qty, old_entry = self.positions.get(order.coin, (_ZERO, _ZERO))
        signed = sz if order.is_buy else -sz
        new_qty = old_qty + signed
        if new_qty == 0:
            entry = _ZERO
        elif old_qty == 0 or (old_qty > 0) != (new_qty > 0):
            entry = px
        elif abs(new_qty) > abs(old_qty):
            entry = (old_entry * abs(old_qty) + px * sz) / abs(new_qty)
        else:
            entry = old_entry
        self.positions[order.coin] = (new_qty, entry)
        self._next_tid += 1
        self.fills.append({
            "coin": order.coin, "px": decimal_to_wire(px), "sz": decimal_to_wire(sz), "side": "B" if order.is_buy else "A",
            "time": now, "startPosition": decimal_to_wire(old_qty), "dir": "Open Long" if order.is_buy else "Open Short",
            "closedPnl": "0.0", "hash": "0x" + "00" * 32, "oid": order.oid, "crossed": crossed,
            "fee": decimal_to_wire((px * sz * Decimal("0.00035")).quantize(Decimal("0.000001"))), "tid": self._next_tid,
            "cloid": order.cloid, "feeToken": "USDC",
        })

    def _clearinghouse_state(self) -> dict[str, Any]:
        state = json.loads(json.dumps(self._state_template))
        positions = []
        for coin, (szi, entry) in self.positions.items():
            if szi == 0:
                continue
            mid = Decimal(self.mids.get(coin, "0"))
            positions.append({"position": {
                "coin": coin, "entryPx": decimal_to_wire(entry), "leverage": {"type": "cross", "value": 20},
                "liquidationPx": None, "marginUsed": "0.0", "maxTradeSzs": ["0.0", "0.0"],
                "positionValue": decimal_to_wire(abs(szi) * mid), "returnOnEquity": "0.0", "szi": decimal_to_wire(szi),
                "unrealizedPnl": decimal_to_wire((mid - entry) * szi)}, "type": "oneWay"})
        state["assetPositions"] = positions
        return state

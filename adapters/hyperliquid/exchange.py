"""Hyperliquid order entry: our order messages as signed /exchange actions, /info answers as ours.

https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/exchange-endpoint

Runs on the event loop of the venue shell that owns it. Dependencies come through the
constructor: aiohttp session, clock (``now_ns()``), async ``sleep``.

- Symbols are Hyperliquid coin names (``"BTC"``); the asset index and size decimals come from
  ``meta``. Hyperliquid has no market orders: a MARKET order is an IOC limit at the mid moved by
  ``market_slippage`` (as the official SDK does), rounded to 5 significant figures and
  ``6 - szDecimals`` decimals.
- The cloid (16 bytes, ``0x`` + 32 hex) is derived from our client order id (``cloid_for``); the
  executor's ids (``"ar"`` + 20 hex) map back (``client_order_id_for``), so the venue's records
  (orderStatus by cloid, open orders, fills) answer in our ids after a restart too.
- A place with no readable answer (timeout, 5xx, broken connection) is not retried: it is
  UNKNOWN until ``query`` (orderStatus by cloid) settles it. A 429 is retried with backoff (the
  venue did not act). /info reads are retried.
- Rejections carry ``"<name> (<venue message>)"``.
- The nonce is the clock's ms, strictly increasing per client.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import aiohttp
import attrs
from arbor.adapters.credentials import HyperliquidCredentials
from arbor.adapters.hyperliquid.signing import L1Signer, decimal_to_wire
from arbor.adapters.venues.http_rules import Next, Reply, RetryPolicy, attempt
from arbor.messages import (
    OrderAccepted,
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
)
from loguru import logger

Sleep = Callable[[float], Awaitable[None]]

MAINNET_URL = "https://api.hyperliquid.xyz"
TESTNET_URL = "https://api.hyperliquid-testnet.xyz"
_NS_PER_MS = 1_000_000
_ZERO = Decimal("0")
_OUR_ID = re.compile(r"^ar([0-9a-f]{20})$")
_CLOID_TAG = "a7"  # first byte of a cloid that encodes one of our ids, reversibly
_CLOID_PAD = "00" * 5

REJECT_REASONS = (
    ("minimum value", "min_notional"),
    ("insufficient margin", "insufficient_margin"),
    ("reduce only", "reduce_only_rejected"),
    ("could not immediately match", "ioc_no_match"),
    ("post only", "post_only_rejected"),
    ("tick size", "price_not_on_tick"),
    ("invalid size", "invalid_size"),
    ("open interest", "open_interest_cap"),
    ("does not exist", "unknown_account_or_signer"),
    ("nonce", "invalid_nonce"),
)


def cloid_for(client_order_id: str) -> str:
    """The 16-byte cloid of a client order id: reversible for our own ids, a hash for others."""
    ours = _OUR_ID.match(client_order_id)
    if ours:
        return f"0x{_CLOID_TAG}{ours.group(1)}{_CLOID_PAD}"
    return "0x" + hashlib.blake2b(client_order_id.encode(), digest_size=16).hexdigest()


def client_order_id_for(cloid: str | None) -> str | None:
    """Our client order id for a cloid made by ``cloid_for`` from one of our ids; else ``None``."""
    if type(cloid) is not str or len(cloid) != 34:
        return None
    body = cloid[2:].lower()
    if body.startswith(_CLOID_TAG) and body.endswith(_CLOID_PAD):
        return "ar" + body[2:22]
    return None


@attrs.frozen(kw_only=True)
class HyperliquidConfig:
    is_mainnet: bool = True
    request_timeout_s: float = 10.0
    max_attempts: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 60.0
    market_slippage: Decimal = Decimal("0.05")
    venue: str = "hyperliquid"


class _Unknown(Exception):
    """No answer we can read: the action may or may not have been processed."""


@attrs.frozen
class _Asset:
    index: int
    sz_decimals: int


class HyperliquidExchange:
    """Signed order entry and account queries for one Hyperliquid account."""

    def __init__(
        self,
        base_url: str,
        credentials: HyperliquidCredentials,
        session: aiohttp.ClientSession,
        clock: Any,
        sleep: Sleep,
        config: HyperliquidConfig | None = None,
        log: Any = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._account = credentials.account_address
        self._signer = L1Signer(credentials.private_key)
        self._session = session
        self._clock = clock
        self._sleep = sleep
        self.config = config or HyperliquidConfig()
        self._retry = RetryPolicy(max_attempts=self.config.max_attempts, backoff_base_s=self.config.backoff_base_s,
                                  backoff_max_s=self.config.backoff_max_s)
        self._log = log if log is not None else logger.bind(venue=self.config.venue)
        self._assets: dict[str, _Asset] = {}
        self._last_nonce = 0
        self._foreign_ids: dict[str, str] = {}  # cloid -> client order id, for ids we cannot decode

    def __repr__(self) -> str:
        return f"HyperliquidExchange(base_url={self._base!r}, account={self._account!r}, signer={self._signer.address!r})"

    # -- the executor's requests ----------------------------------------------------------------
    async def handle(self, msg: Any) -> list[Any]:
        """The venue's answer to one executor request."""
        if isinstance(msg, PlaceOrder):
            return await self.place(msg)
        if isinstance(msg, RequestCancel):
            return await self.cancel(msg)
        if isinstance(msg, QueryOrder):
            return await self.query(msg)
        if isinstance(msg, QueryPosition):
            return [await self.position(msg)]
        raise TypeError(f"not a venue request: {type(msg).__name__}")

    async def load_meta(self) -> None:
        """Asset indexes and size decimals of the perpetuals (``info meta``)."""
        meta = await self._info({"type": "meta"})
        universe = meta.get("universe") if isinstance(meta, dict) else None
        if not isinstance(universe, list):
            raise ValueError("meta answer without a universe")
        self._assets = {a["name"]: _Asset(i, int(a["szDecimals"])) for i, a in enumerate(universe) if isinstance(a, dict)}

    async def place(self, msg: PlaceOrder) -> list[Any]:
        """Place one order (cloid from the client order id): accepted (+ a status report if it
        executed at once), rejected with the venue's reason, or UNKNOWN when the answer was lost."""
        coid = msg.client_order_id
        try:
            asset = await self._asset(msg.symbol)
            order_wire = await self._order_wire(msg, asset)
        except _Rejected as exc:
            return [self._rejected(msg.symbol, coid, str(exc))]
        except _Unknown as exc:
            return [self._rejected(msg.symbol, coid, f"no_reference_data ({exc})")]  # nothing was sent
        action = {"type": "order", "orders": [order_wire], "grouping": "na"}
        try:
            response = await self._exchange(action)
        except _Unknown as exc:
            self._log.warning("place {} {}: outcome unknown ({}); settle by query", msg.symbol, coid, exc)
            return [self._report(msg.symbol, coid, OrderStatus.UNKNOWN)]
        if response.get("status") != "ok":
            return [self._rejected(msg.symbol, coid, reject_reason(response.get("response")))]
        try:
            status = response["response"]["data"]["statuses"][0]
        except (KeyError, IndexError, TypeError):
            self._log.error("place {} {}: unreadable answer; settle by query", msg.symbol, coid)
            return [self._report(msg.symbol, coid, OrderStatus.UNKNOWN)]
        now = self._now_ns()
        if isinstance(status, dict) and isinstance(status.get("resting"), dict):
            return [OrderAccepted(symbol=msg.symbol, client_order_id=coid, venue_order_id=str(status["resting"].get("oid", "")), ts_event_ns=now)]
        if isinstance(status, dict) and isinstance(status.get("filled"), dict):
            filled = status["filled"]
            total, avg = _dec(filled.get("totalSz")), _dec(filled.get("avgPx"))
            venue_id = str(filled.get("oid", ""))
            # An IOC's remainder is canceled at once; a GTC filled in full is done.
            done = OrderStatus.FILLED if total is not None and total >= msg.qty else OrderStatus.CANCELED
            return [
                OrderAccepted(symbol=msg.symbol, client_order_id=coid, venue_order_id=venue_id, ts_event_ns=now),
                OrderStatusReported(symbol=msg.symbol, client_order_id=coid, status=done, venue_order_id=venue_id,
                                    filled_qty=total or _ZERO, avg_price=avg, ts_event_ns=now),
            ]
        if isinstance(status, dict) and "error" in status:
            return [self._rejected(msg.symbol, coid, reject_reason(status["error"]))]
        self._log.error("place {} {}: unexpected status {!r}; settle by query", msg.symbol, coid, str(status)[:80])
        return [self._report(msg.symbol, coid, OrderStatus.UNKNOWN)]

    async def cancel(self, msg: RequestCancel) -> list[Any]:
        """Cancel by cloid; the answer is the order's record afterwards (canceled, or filled first)."""
        try:
            asset = await self._asset(msg.symbol)
        except (_Rejected, _Unknown) as exc:
            self._log.warning("cancel {} {}: {}", msg.symbol, msg.client_order_id, exc)
            return []
        action = {"type": "cancelByCloid", "cancels": [{"asset": asset.index, "cloid": self._cloid(msg.client_order_id)}]}
        try:
            response = await self._exchange(action)
        except _Unknown as exc:
            self._log.warning("cancel {} {}: no answer ({}); the executor's timeout queries", msg.symbol, msg.client_order_id, exc)
            return []
        if response.get("status") != "ok":
            self._log.warning("cancel {} {} refused: {}", msg.symbol, msg.client_order_id, str(response.get("response"))[:120])
        return await self.query(QueryOrder(symbol=msg.symbol, client_order_id=msg.client_order_id, ts_event_ns=self._now_ns()))

    async def query(self, msg: QueryOrder) -> list[Any]:
        """The venue's record of one order by cloid (``info orderStatus``), priced from its fills."""
        try:
            answer = await self._info({"type": "orderStatus", "user": self._account, "oid": self._cloid(msg.client_order_id)})
            if not isinstance(answer, dict):
                raise ValueError("orderStatus answer is not an object")
            if answer.get("status") == "unknownOid":
                return [self._report(msg.symbol, msg.client_order_id, OrderStatus.NOT_FOUND)]
            entry = answer["order"]
            order, venue_status = entry["order"], entry["status"]
            orig, left = _dec(order.get("origSz")), _dec(order.get("sz"))
            if orig is None or left is None:
                raise ValueError("order record without sizes")
            filled = orig - left
            status = order_status(venue_status, filled)
            avg = await self._average_price(order["oid"], order.get("timestamp", 0)) if filled > 0 else None
            ts = entry.get("statusTimestamp")
            return [OrderStatusReported(
                symbol=msg.symbol, client_order_id=msg.client_order_id, status=status, venue_order_id=str(order["oid"]),
                filled_qty=filled, avg_price=avg,
                ts_event_ns=ts * _NS_PER_MS if type(ts) is int else self._now_ns(),
            )]
        except _Unknown as exc:
            self._log.warning("query {} {}: no answer ({}); asked again later", msg.symbol, msg.client_order_id, exc)
            return []
        except (KeyError, TypeError, ValueError) as exc:
            self._log.error("query {} {}: unreadable answer ({})", msg.symbol, msg.client_order_id, exc)
            return []

    async def open_orders(self, symbol: str) -> list[OrderStatusReported]:
        """The coin's open orders; an order without one of our cloids shows as ``"oid:<n>"``."""
        answer = await self._info({"type": "openOrders", "user": self._account})
        if not isinstance(answer, list):
            raise ValueError("openOrders answer is not a list")
        now = self._now_ns()
        out = []
        for o in answer:
            if not isinstance(o, dict) or o.get("coin") != symbol:
                continue
            coid = self._client_order_id(o.get("cloid")) or f"oid:{o.get('oid')}"
            orig, left = _dec(o.get("origSz")), _dec(o.get("sz"))
            filled = orig - left if orig is not None and left is not None else _ZERO
            out.append(OrderStatusReported(
                symbol=symbol, client_order_id=coid,
                status=OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW,
                venue_order_id=str(o.get("oid", "")), filled_qty=filled, avg_price=None, ts_event_ns=now))
        return out

    async def position(self, msg: QueryPosition) -> PositionReported:
        """The venue's position in the coin (``clearinghouseState``) and its open orders."""
        state = await self._info({"type": "clearinghouseState", "user": self._account})
        qty, avg = _ZERO, None
        for entry in state.get("assetPositions", []) if isinstance(state, dict) else []:
            position = entry.get("position") if isinstance(entry, dict) else None
            if isinstance(position, dict) and position.get("coin") == msg.symbol:
                qty = _dec(position.get("szi")) or _ZERO
                avg = _dec(position.get("entryPx")) if qty != 0 else None
        orders = await self.open_orders(msg.symbol)
        return PositionReported(symbol=msg.symbol, qty=qty, avg_price=avg,
                                open_client_order_ids=tuple(o.client_order_id for o in orders), ts_event_ns=self._now_ns())

    # -- building an order ------------------------------------------------------------------------
    async def _asset(self, symbol: str) -> _Asset:
        if not self._assets:
            await self.load_meta()
        asset = self._assets.get(symbol)
        if asset is None:
            raise _Rejected(f"invalid_symbol ({symbol!r} is not a Hyperliquid perpetual)")
        return asset

    async def _order_wire(self, msg: PlaceOrder, asset: _Asset) -> dict[str, Any]:
        step = Decimal(1).scaleb(-asset.sz_decimals)
        if msg.qty <= 0 or msg.qty != msg.qty.quantize(step):
            raise _Rejected(f"invalid_size ({msg.qty} is not a positive multiple of {step})")
        max_decimals = 6 - asset.sz_decimals
        if msg.order_type is OrderType.LIMIT:
            if msg.limit_price is None:
                raise _Rejected("limit_without_price")
            price, tif = msg.limit_price, "Gtc"
            if price <= 0 or price != round_price(price, max_decimals):
                raise _Rejected(f"price_not_on_tick ({price}: at most 5 significant figures and {max_decimals} decimals)")
        else:
            mids = await self._info({"type": "allMids"})
            mid = _dec(mids.get(msg.symbol)) if isinstance(mids, dict) else None
            if mid is None:
                raise _Unknown(f"no mid for {msg.symbol}")
            slip = self.config.market_slippage
            price, tif = round_price(mid * (1 + slip if msg.side is Side.BUY else 1 - slip), max_decimals), "Ioc"
        # Key order as the SDK's order wire: the action's msgpack hash depends on it.
        return {
            "a": asset.index,
            "b": msg.side is Side.BUY,
            "p": decimal_to_wire(price),
            "s": decimal_to_wire(msg.qty),
            "r": msg.reduce_only,
            "t": {"limit": {"tif": tif}},
            "c": self._cloid(msg.client_order_id),
        }

    def _cloid(self, coid: str) -> str:
        cloid = cloid_for(coid)
        if client_order_id_for(cloid) != coid:
            self._foreign_ids[cloid] = coid
        return cloid

    def _client_order_id(self, cloid: Any) -> str | None:
        if type(cloid) is not str:
            return None
        return client_order_id_for(cloid) or self._foreign_ids.get(cloid)

    async def _average_price(self, oid: Any, since_ms: Any) -> Decimal | None:
        """The volume-weighted price of the order's fills (``userFillsByTime`` from its creation)."""
        start = since_ms if type(since_ms) is int else 0
        fills = await self._info({"type": "userFillsByTime", "user": self._account, "startTime": start})
        qty = notional = _ZERO
        for f in fills if isinstance(fills, list) else []:
            if isinstance(f, dict) and f.get("oid") == oid:
                px, sz = _dec(f.get("px")), _dec(f.get("sz"))
                if px is not None and sz is not None:
                    qty += sz
                    notional += px * sz
        return notional / qty if qty > 0 else None

    # -- transport --------------------------------------------------------------------------
    async def _exchange(self, action: dict[str, Any]) -> dict[str, Any]:
        """Sign and send one action. Sent once, except after a 429 (not processed by the venue)."""
        nonce = max(self._clock.now_ns() // _NS_PER_MS, self._last_nonce + 1)
        self._last_nonce = nonce
        signature = self._signer.sign(action, nonce, is_mainnet=self.config.is_mainnet)
        payload = {"action": action, "nonce": nonce, "signature": signature, "vaultAddress": None, "expiresAfter": None}
        body = await self._post("/exchange", payload, retry_unknown=False)
        if not isinstance(body, dict):
            raise _Unknown("exchange answer is not an object")
        return body

    async def _info(self, request: dict[str, Any]) -> Any:
        return await self._post("/info", request, retry_unknown=True)

    async def _post(self, path: str, payload: dict[str, Any], *, retry_unknown: bool) -> Any:
        cfg = self.config

        async def send_once() -> Reply:
            async with self._session.post(
                f"{self._base}{path}", json=payload, timeout=aiohttp.ClientTimeout(total=cfg.request_timeout_s)
            ) as resp:
                return Reply(status=resp.status, text=await resp.text(), retry_after=resp.headers.get("Retry-After"))

        outcome = await attempt(send_once, self._retry, self._sleep, retry_unknown=retry_unknown,
                                on_rate_limited=lambda step: self._log.warning("{}: {}, attempt {}", path, step.reason,
                                                                               step.attempt))
        step, status, text = outcome.step, outcome.status, outcome.text
        if step.next is Next.RATE_LIMITED:
            if path == "/exchange":  # the venue certainly did not act: a rejection, not an unknown
                return {"status": "err", "response": f"rate limited: http 429 after {step.attempt} attempts"}
            raise _Unknown(f"{path}: rate limited")
        if step.next is Next.UNKNOWN:
            raise _Unknown(f"{path}: {step.reason}")
        assert status is not None  # answered
        try:
            body = json.loads(text)
        except ValueError:
            if status >= 400:
                return {"status": "err", "response": f"http {status}: {text[:120]}"}
            raise _Unknown(f"{path}: answer is not JSON") from None
        if status >= 400 and not isinstance(body, dict):
            return {"status": "err", "response": f"http {status}: {str(body)[:120]}"}
        return body

    # -- helpers ----------------------------------------------------------------------------
    def _now_ns(self) -> int:
        return self._clock.now_ns()

    def _rejected(self, symbol: str, coid: str, reason: str) -> OrderRejected:
        return OrderRejected(symbol=symbol, client_order_id=coid, reason=reason, ts_event_ns=self._now_ns())

    def _report(self, symbol: str, coid: str, status: OrderStatus) -> OrderStatusReported:
        return OrderStatusReported(symbol=symbol, client_order_id=coid, status=status, venue_order_id="",
                                   filled_qty=_ZERO, avg_price=None, ts_event_ns=self._now_ns())


class _Rejected(Exception):
    """Refused before sending: the reason is the message."""


# -- pure mappings ---------------------------------------------------------------------------------


def reject_reason(message: Any) -> str:
    """``"min_notional (Order must have minimum value of $10.)"``: our name, then the venue's words."""
    text = message if isinstance(message, str) else json.dumps(message)[:200]
    lowered = text.lower()
    name = next((n for needle, n in REJECT_REASONS if needle in lowered), "venue_error")
    if lowered.startswith("rate limited"):
        name = "rate_limited"
    return f"{name} ({text[:200]})"


def order_status(venue_status: Any, filled: Decimal) -> OrderStatus:
    """Our status for an orderStatus ``status`` string (open, filled, canceled, *Canceled, *Rejected, ...)."""
    if venue_status in ("open", "triggered"):
        return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW
    if venue_status == "filled":
        return OrderStatus.FILLED
    if isinstance(venue_status, str):
        if venue_status.endswith("ejected"):
            # An IOC remainder "rejected" after part of it traded is, for us, a cancel of the rest.
            return OrderStatus.CANCELED if filled > 0 else OrderStatus.REJECTED
        if "anceled" in venue_status or "Cancel" in venue_status:
            return OrderStatus.CANCELED
    return OrderStatus.UNKNOWN


def round_price(price: Decimal, max_decimals: int) -> Decimal:
    """A valid perp price: 5 significant figures (integers always allowed), ``max_decimals`` decimals."""
    if not price.is_finite():
        raise ValueError(f"not a price: {price}")
    if price == price.to_integral_value():
        return price.quantize(Decimal(1))
    exponent = price.adjusted() - 4  # keep 5 significant figures
    sig = price.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_EVEN)
    places = sig.as_tuple().exponent  # an int for a finite number
    if isinstance(places, int) and -places > max_decimals:
        return sig.quantize(Decimal(1).scaleb(-max_decimals), rounding=ROUND_HALF_EVEN)
    return sig


def _dec(value: Any) -> Decimal | None:
    if type(value) is not str:
        return None
    try:
        d = Decimal(value)
    except InvalidOperation:
        return None
    return d if d.is_finite() else None



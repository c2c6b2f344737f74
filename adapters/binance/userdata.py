"""Binance USD-M futures user-data stream: the account's order and position events, as our messages.

https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams

A listen key (``POST /fapi/v1/listenKey``) names the stream ``<ws base>/ws/<listenKey>``; it lives
60 minutes unless kept alive (``PUT``), which we do every ``keepalive_interval_s`` (30 minutes) on
the injected clock. A dropped connection reconnects with backoff; an expired or refused key is
replaced by a new one.

``decode_user_event`` is the pure part: one frame in, messages out.

- ``ORDER_TRADE_UPDATE``: execution type ``x`` NEW -> ``OrderAccepted``; TRADE (and CALCULATED,
  a liquidation or ADL execution) -> ``OrderFilled`` with ``fill_id`` = trade id ``t``;
  CANCELED -> ``OrderCanceled``; EXPIRED / EXPIRED_IN_MATCH -> ``OrderCanceled`` with reason
  ``expired`` (the order was live, may have partly filled, and is dead now: a cancel carries its
  filled quantity, a rejection would not); REJECTED -> ``OrderRejected``; AMENDMENT -> nothing.
- ``ACCOUNT_UPDATE``: one ``PositionReported`` per symbol in it (net of hedge-mode legs). It
  carries no open orders: ``open_client_order_ids`` is empty and means "not reported".
- ``TRADE_LITE`` (a faster copy of the TRADE update), margin calls, config and algo/strategy
  updates, ``listenKeyExpired``: no messages.
- Anything else, or a malformed frame: ``DecodeError``.

Fees: ``OrderFilled.fee`` is in quote currency; a commission charged in another asset (``N``,
e.g. BNB) cannot be converted here and is reported as 0.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import attrs
from arbor.adapters.binance.rest import BinanceFuturesRest, parse_decimal
from arbor.adapters.decoding import DecodeError
from arbor.messages import OrderAccepted, OrderCanceled, OrderFilled, OrderRejected, PositionReported, Side
from loguru import logger

Sleep = Callable[[float], Awaitable[None]]

_NS_PER_MS = 1_000_000
_NS_PER_S = 1_000_000_000
_ZERO = Decimal("0")
_QUOTE_ASSETS = ("USDT", "USDC", "BUSD", "FDUSD", "USD")
_IGNORED_EVENTS = frozenset({
    "TRADE_LITE", "MARGIN_CALL", "ACCOUNT_CONFIG_UPDATE", "ALGO_UPDATE", "CONDITIONAL_ORDER_TRIGGER_REJECT",
    "GRID_UPDATE", "STRATEGY_UPDATE", "listenKeyExpired",
})


# -- decoding (pure) -------------------------------------------------------------------------


def decode_user_event(payload: bytes | str) -> list[Any]:
    """Our messages for one user-data frame; ``[]`` for events of no interest; else ``DecodeError``."""
    try:
        event = json.loads(payload)
        if not isinstance(event, dict):
            raise DecodeError("user-data frame is not a JSON object")
        if "data" in event and "stream" in event:  # combined-stream envelope
            event = event["data"]
            if not isinstance(event, dict):
                raise DecodeError("envelope 'data' is not an object")
        kind = event.get("e")
        if kind == "ORDER_TRADE_UPDATE":
            return _order_update(event)
        if kind == "ACCOUNT_UPDATE":
            return _account_update(event)
        if kind in _IGNORED_EVENTS:
            return []
        raise DecodeError(f"unsupported user-data event {str(kind)[:40]!r}")
    except DecodeError:
        raise
    except KeyError as exc:
        raise DecodeError(f"missing field {exc.args[0]!r}") from None
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise DecodeError(f"malformed user-data frame: {type(exc).__name__}: {str(exc)[:160]}") from None


def _order_update(event: dict[str, Any]) -> list[Any]:
    o = event["o"]
    if not isinstance(o, dict):
        raise DecodeError("ORDER_TRADE_UPDATE 'o' is not an object")
    symbol, coid, execution = _str(o, "s"), _str(o, "c"), _str(o, "x")
    venue_id = str(_int(o, "i"))
    ts = _int(o, "T") * _NS_PER_MS if "T" in o else _int(event, "E") * _NS_PER_MS
    if execution == "NEW":
        return [OrderAccepted(symbol=symbol, client_order_id=coid, venue_order_id=venue_id, ts_event_ns=ts)]
    if execution in ("TRADE", "CALCULATED"):
        side = _str(o, "S")
        if side not in ("BUY", "SELL"):
            raise DecodeError(f"side must be BUY or SELL, got {side[:20]!r}")
        qty, cum = parse_decimal(o["l"], "l"), parse_decimal(o["z"], "z")
        if qty <= 0:
            return []  # a CALCULATED notice before its execution (liquidation pending): nothing traded yet
        maker = o.get("m")
        if type(maker) is not bool:
            raise DecodeError("'m' must be a boolean")
        fee_asset, fee = o.get("N"), _ZERO
        if "n" in o and (fee_asset is None or (type(fee_asset) is str and fee_asset in _QUOTE_ASSETS and symbol.endswith(fee_asset))):
            fee = parse_decimal(o["n"], "n")
        return [
            OrderFilled(
                symbol=symbol,
                client_order_id=coid,
                venue_order_id=venue_id,
                fill_id=str(_int(o, "t")),
                side=Side(side),
                qty=qty,
                price=parse_decimal(o["L"], "L"),
                fee=fee,
                is_maker=maker,
                cum_qty=cum,
                leaves_qty=max(parse_decimal(o["q"], "q") - cum, _ZERO),
                ts_event_ns=ts,
            )
        ]
    if execution in ("CANCELED", "EXPIRED", "EXPIRED_IN_MATCH"):
        reason = "canceled" if execution == "CANCELED" else "expired"
        return [OrderCanceled(symbol=symbol, client_order_id=coid, filled_qty=parse_decimal(o["z"], "z"), reason=reason, ts_event_ns=ts)]
    if execution == "REJECTED":
        return [OrderRejected(symbol=symbol, client_order_id=coid, reason="rejected", ts_event_ns=ts)]
    if execution == "AMENDMENT":
        return []
    raise DecodeError(f"unsupported execution type {execution[:30]!r}")


def _account_update(event: dict[str, Any]) -> list[Any]:
    a = event["a"]
    if not isinstance(a, dict):
        raise DecodeError("ACCOUNT_UPDATE 'a' is not an object")
    ts = _int(event, "T" if "T" in event else "E") * _NS_PER_MS
    legs = a.get("P", [])
    if not isinstance(legs, list):
        raise DecodeError("ACCOUNT_UPDATE 'P' is not a list")
    by_symbol: dict[str, list[tuple[Decimal, Decimal]]] = {}
    for leg in legs:
        if not isinstance(leg, dict):
            raise DecodeError("a position entry is not an object")
        by_symbol.setdefault(_str(leg, "s"), []).append((parse_decimal(leg["pa"], "pa"), parse_decimal(leg["ep"], "ep")))
    out = []
    for symbol, entries in by_symbol.items():
        open_legs = [(q, p) for q, p in entries if q != 0]
        qty = sum((q for q, _ in open_legs), _ZERO)
        avg = open_legs[0][1] if len(open_legs) == 1 else None
        out.append(PositionReported(symbol=symbol, qty=qty, avg_price=avg, open_client_order_ids=(), ts_event_ns=ts))
    return out


def _str(d: dict[str, Any], key: str) -> str:
    value = d[key]
    if type(value) is not str:
        raise DecodeError(f"field {key!r} must be a string")
    return value


def _int(d: dict[str, Any], key: str) -> int:
    value = d[key]
    if type(value) is not int or value < 0:
        raise DecodeError(f"field {key!r} must be a non-negative integer")
    return value


# -- keep-alive schedule (pure) --------------------------------------------------------------


class ListenKeySchedule:
    """When the listen key needs its next keep-alive, on whatever clock the caller reads."""

    def __init__(self, interval_ns: int) -> None:
        if interval_ns <= 0:
            raise ValueError("keep-alive interval must be positive")
        self.interval_ns = interval_ns
        self._last_ns: int | None = None

    def started(self, now_ns: int) -> None:
        self._last_ns = now_ns

    def due(self, now_ns: int) -> bool:
        return self._last_ns is not None and now_ns - self._last_ns >= self.interval_ns

    def kept_alive(self, now_ns: int) -> None:
        self._last_ns = now_ns


# -- the stream --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class UserDataConfig:
    keepalive_interval_s: float = 1800.0  # Binance: keys expire after 60 minutes without one
    poll_s: float = 5.0  # how often the read loop looks at the clock while no frame arrives
    reconnect_backoff_base_s: float = 1.0
    reconnect_backoff_max_s: float = 60.0


class BinanceUserDataStream:
    """Keeps a user-data websocket open and hands the decoded messages to ``on_messages``.

    Runs as one task on the venue shell's event loop (``run(stop)``); ``on_messages`` is called on
    that loop, in stream order, with each frame's messages. Frames that do not decode are logged
    and counted (``stats``), never raised.
    """

    def __init__(
        self,
        rest: BinanceFuturesRest,
        ws_base_url: str,
        session: aiohttp.ClientSession,
        clock: Any,
        sleep: Sleep,
        on_messages: Callable[[list[Any]], None],
        config: UserDataConfig | None = None,
        log: Any = None,
    ) -> None:
        self._rest = rest
        self._ws_base = ws_base_url.rstrip("/")
        self._session = session
        self._clock = clock
        self._sleep = sleep
        self._on_messages = on_messages
        self.config = config or UserDataConfig()
        self._log = log if log is not None else logger.bind(venue="binance_usdm", stream="user_data")
        self._schedule = ListenKeySchedule(int(self.config.keepalive_interval_s * _NS_PER_S))
        self.listen_key: str | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.stats = {"frames": 0, "messages": 0, "decode_failures": 0, "keepalives": 0, "reconnects": 0, "new_keys": 0}

    async def open(self) -> str:
        """Get a listen key (the venue returns the live one if there is one)."""
        self.listen_key = await self._rest.create_listen_key()
        self._schedule.started(self._clock.now_ns())
        self.stats["new_keys"] += 1
        return self.listen_key

    async def maintain(self) -> bool:
        """Keep the listen key alive if it is due; False if the venue refused (a new key is needed)."""
        now = self._clock.now_ns()
        if self.listen_key is None or not self._schedule.due(now):
            return True
        if await self._rest.keep_alive_listen_key():
            self._schedule.kept_alive(now)
            self.stats["keepalives"] += 1
            return True
        self._log.warning("listen key refused on keep-alive; getting a new one")
        self.listen_key = None
        return False

    def on_frame(self, payload: bytes | str) -> None:
        """Decode one frame and hand its messages on (a failure is logged and counted)."""
        self.stats["frames"] += 1
        try:
            messages = decode_user_event(payload)
        except DecodeError as exc:
            self.stats["decode_failures"] += 1
            self._log.error("user-data frame not decoded: {}", exc)
            return
        if messages:
            self.stats["messages"] += len(messages)
            self._on_messages(messages)

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, read, keep alive and reconnect until ``stop`` is set."""
        failures = 0
        while not stop.is_set():
            try:
                if self.listen_key is None:
                    await self.open()
                frames = await self._read_until_closed(stop)
                # A connection that delivered nothing before it closed counts as a failure: backoff.
                failures = 0 if frames else failures + 1
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                failures += 1
                self._log.warning("user-data stream failed ({}): reconnecting", type(exc).__name__)
            except Exception as exc:  # the rest client's own failures (unreadable answer, rate limit)
                failures += 1
                self._log.warning("user-data stream setup failed ({}): retrying", type(exc).__name__)
            if stop.is_set():
                break
            self.stats["reconnects"] += 1
            if failures:
                cfg = self.config
                await self._sleep(min(cfg.reconnect_backoff_base_s * 2 ** (failures - 1), cfg.reconnect_backoff_max_s))

    async def close(self) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()

    async def _read_until_closed(self, stop: asyncio.Event) -> int:
        """Read one connection until it closes, the key expires or ``stop``; the frames it delivered."""
        url = f"{self._ws_base}/ws/{self.listen_key}"
        frames = 0
        async with self._session.ws_connect(url, heartbeat=30.0) as ws:
            self._ws = ws
            while not stop.is_set():
                if not await self.maintain():
                    return frames  # new key, new connection
                try:
                    msg = await ws.receive(timeout=self.config.poll_s)
                except TimeoutError:
                    continue
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    frames += 1
                    if _event_type(msg.data) == "listenKeyExpired":
                        self._log.warning("listen key expired; getting a new one")
                        self.listen_key = None
                        return frames
                    self.on_frame(msg.data)
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
                    # Re-ask for the key: the venue answers with the live one, or a new one if it expired.
                    self._log.info("user-data stream closed by the venue")
                    self.listen_key = None
                    return frames
        return frames


def _event_type(data: bytes | str) -> Any:
    try:
        frame = json.loads(data)
    except ValueError:
        return None
    return frame.get("e") if isinstance(frame, dict) else None

"""The paper venue: a matching engine that fills orders against the symbol's market data.

It is the per-symbol ``"venue"`` actor of paper mode: the collector shows it every
``RawMarketEvent`` of the symbol, the executor sends it ``PlaceOrder``, ``RequestCancel``,
``QueryOrder`` and ``QueryPosition``, and it answers the executor (see ``actors.topology``).

Requests travel with latency: each is queued with ``due = now + latency_ms`` and handled, in the
order they arrived, on the first market event or timer tick at or after that time. A MARKET order
takes the opposite best price up to the displayed size; what is left fills on later quotes. A
LIMIT order that crosses on arrival takes liquidity the same way (taker); the rest rests and
fills at its limit price (maker) when a later quote crosses it or a print trades through it.
Displayed size that one order took is not offered again until the next quote.

The venue keeps its own records (orders by client order id, and the position built from its
fills) so that reconciliation can compare them with the runtime's.
"""

from __future__ import annotations

from collections import Counter, deque
from decimal import Decimal
from itertools import islice
from typing import Any

import attrs
from arbor.actors.base import ActorContext, ActorLogic
from arbor.adapters.sim.config import PaperConfig
from arbor.messages import (
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatusReported,
    PlaceOrder,
    PositionReported,
    QueryOrder,
    QueryPosition,
    RawMarketEvent,
    RequestCancel,
    TimerTick,
)
from arbor.messages.base import MarketEventKind, OrderStatus, OrderType, Side

_NS_PER_MS = 1_000_000
_ZERO = Decimal("0")
_BPS = Decimal("10000")
_LIVE = (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)
_STAT_KEYS = (
    "orders",  # PlaceOrders handled (after latency)
    "accepted",
    "fills",
    "rejected",  # all reasons; by reason under "rejects"
    "cancels",  # orders canceled (on request, or reduce-only with nothing left to reduce)
    "cancel_unknown",  # cancels of an unknown or already terminal order: nothing answered
    "queries",
    "position_queries",
    "dropped_acks",  # orders whose response was lost (fault injection)
    "dropped_fills",  # fills inside those lost responses
    "refused_market_data",  # quotes/prints no venue sends (price not positive and finite, crossed): never traded on
    "duplicated_fills",  # fill reports delivered twice (fault injection)
    "late_fills",  # fill reports held back and delivered late (fault injection)
    "disconnects",  # times the connection dropped (fault injection)
    "lost_requests",  # requests sent while disconnected: never arrived
    "lost_reports",  # reports made while disconnected: never delivered
)
_REQUESTS = (PlaceOrder, RequestCancel, QueryOrder, QueryPosition)


def _positive(value: Decimal) -> bool:
    """Positive and finite (a NaN compares as nothing, so it is tested first)."""
    return value.is_finite() and value > 0


def _sane_quote(msg: RawMarketEvent) -> bool:
    """Both prices positive and finite, sizes finite and not negative, ask not below bid."""
    bid, ask = msg.bid_price, msg.ask_price
    if bid is None or ask is None or not (_positive(bid) and _positive(ask)) or ask < bid:
        return False
    return all(q is None or (q.is_finite() and q >= 0) for q in (msg.bid_qty, msg.ask_qty))


@attrs.frozen(kw_only=True)
class VenueOrder:
    """The venue's record of one order, as reconciliation sees it."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    order_type: OrderType
    limit_price: Decimal | None
    reduce_only: bool
    status: OrderStatus
    filled_qty: Decimal
    avg_price: Decimal | None
    reason: str = ""  # why it was rejected or canceled


@attrs.frozen(kw_only=True)
class VenuePosition:
    """The venue's position in the symbol: signed quantity (long > 0) and average entry price."""

    symbol: str
    qty: Decimal
    avg_price: Decimal
    realized_pnl: Decimal
    fees: Decimal


@attrs.frozen(kw_only=True)
class PaperOrderState:
    """One venue order as the simulated exchange records it (for its own persistence)."""

    place: PlaceOrder
    venue_order_id: str
    status: OrderStatus
    filled: Decimal
    notional: Decimal
    fillable_at_ns: int
    resting: bool
    reason: str
    working: bool


@attrs.frozen(kw_only=True)
class PaperVenueSnapshot:
    """The simulated exchange's records: a real venue keeps these across our restarts, so the
    simulator does too (orders, its position, counters, and requests still in flight)."""

    symbol: str
    orders: tuple[PaperOrderState, ...]
    pos_qty: Decimal
    pos_avg: Decimal
    realized: Decimal
    fees: Decimal
    next_order_no: int
    next_fill_no: int
    pending: tuple[tuple[int, str], ...]  # (due_ns, hex of the codec-encoded request) in arrival order


@attrs.define
class _Order:
    place: PlaceOrder
    venue_order_id: str
    status: OrderStatus
    filled: Decimal = _ZERO
    notional: Decimal = _ZERO
    fillable_at_ns: int = 0
    resting: bool = False  # past its arrival: fills from now on are maker fills (LIMIT)
    reason: str = ""

    @property
    def avg_price(self) -> Decimal | None:
        return self.notional / self.filled if self.filled else None

    def record(self) -> VenueOrder:
        p = self.place
        return VenueOrder(
            client_order_id=p.client_order_id,
            venue_order_id=self.venue_order_id,
            symbol=p.symbol,
            side=p.side,
            qty=p.qty,
            order_type=p.order_type,
            limit_price=p.limit_price,
            reduce_only=p.reduce_only,
            status=self.status,
            filled_qty=self.filled,
            avg_price=self.avg_price,
            reason=self.reason,
        )


class PaperVenueLogic(ActorLogic):
    """Simulated fills for one symbol. Runs on whichever thread the runtime gives the venue actor."""

    ROLE = "venue"
    WANTS_TICKS = True

    def __init__(
        self, ctx: ActorContext, config: PaperConfig | None = None, qty_step: Decimal = Decimal("0.001"),
        codec: Any = None,
    ) -> None:
        """``codec`` (a ``messages.Codec``) encodes the requests in flight in ``snapshot``: pass the
        process's own; without one, one is built at the first snapshot (several ms of cattrs set-up,
        which would otherwise land on the order path of every symbol's first order)."""
        super().__init__(ctx)
        self._codec = codec
        self.config = config or PaperConfig()
        self.config.validate()
        if not isinstance(qty_step, Decimal) or not qty_step.is_finite() or qty_step <= 0:
            raise ValueError(f"qty_step must be a positive Decimal, got {qty_step!r}")
        self.qty_step = qty_step
        self._latency_ns = self.config.latency_ms * _NS_PER_MS
        self._fill_delay_ns = self.config.fill_delay_ms * _NS_PER_MS
        self._inbox: deque[tuple[int, Any]] = deque()  # (due_ns, request) in arrival order
        self._orders: dict[str, _Order] = {}  # every order kept (live, and the newest settled ones), by arrival
        # The snapshot record of each settled order (it never changes again): built once, so a
        # snapshot costs what is live, and the store writes a settled order once.
        self._settled_states: dict[str, PaperOrderState] = {}
        self._working: dict[str, _Order] = {}  # live orders in acceptance (time-priority) order
        # Top of book and what of its displayed size is still on offer.
        self._bid: Decimal | None = None
        self._ask: Decimal | None = None
        self._bid_left = _ZERO
        self._ask_left = _ZERO
        self._quoted = False
        self._pos_qty = _ZERO
        self._pos_avg = _ZERO
        self._realized = _ZERO
        self._fees = _ZERO
        self._next_order_no = 1
        self._next_fill_no = 1
        self._stats: Counter[str] = Counter()
        self._rejects: Counter[str] = Counter()
        # Wire faults (config): fill reports held back, and the end of a dropped connection. Not
        # part of the snapshot: what is on the wire is lost with the process, as a real one's is.
        self._late: deque[tuple[int, OrderFilled]] = deque()
        self._down_until: int | None = None
        c = self.config
        self._wire_faults = bool(c.duplicate_fill_rate or c.late_fill_rate or c.disconnect_rate)

    def end_fault_injection(self) -> None:
        """From now on draw no fault (rejects, transient errors, dropped answers, duplicate or late
        fills, disconnects). What a fault already holds goes on as drawn: a late fill is still
        delivered at its time, a dropped connection comes back at its end (for the explorer's
        quiescence, which checks a venue that has stopped misbehaving)."""
        self.config = attrs.evolve(self.config, reject_rate=0.0, transient_error_rate=0.0, drop_ack_rate=0.0,
                                   duplicate_fill_rate=0.0, late_fill_rate=0.0, disconnect_rate=0.0)

    # -- handlers -------------------------------------------------------------------------------

    def handle(self, msg: Any) -> list[Any] | None:
        if not self._wire_faults:
            return super().handle(msg)
        now = self.ctx.clock.now_ns()
        if self._down_until is not None and now >= self._down_until:
            self._down_until = None
        if self._down_until is not None and type(msg) in _REQUESTS:
            self._stats["lost_requests"] += 1  # it never arrived: the venue knows nothing of it
            return []
        out = super().handle(msg)
        if out is None:
            return None
        return self._wire(out, now, type(msg) is TimerTick)

    def _wire(self, out: list[Any], now: int, tick: bool) -> list[Any]:
        """What of ``out`` reaches the executor, with the configured wire faults (seeded draws)."""
        cfg, rng = self.config, self.ctx.rng
        sent: list[Any] = []
        for m in out:
            if type(m) is OrderFilled:
                if cfg.late_fill_rate and rng.random() < cfg.late_fill_rate:
                    self._stats["late_fills"] += 1
                    self._late.append((now + cfg.late_fill_ms * _NS_PER_MS, m))
                    continue
                if cfg.duplicate_fill_rate and rng.random() < cfg.duplicate_fill_rate:
                    self._stats["duplicated_fills"] += 1
                    sent.append(m)
            sent.append(m)
        while self._late and self._late[0][0] <= now:
            sent.append(self._late.popleft()[1])
        if tick and self._down_until is None and cfg.disconnect_rate and rng.random() < cfg.disconnect_rate:
            self._stats["disconnects"] += 1
            self._down_until = now + cfg.disconnect_ms * _NS_PER_MS
        if self._down_until is not None:
            self._stats["lost_reports"] += len(sent)
            return []
        return sent

    def on_place_order(self, msg: PlaceOrder) -> list[Any]:
        self._inbox.append((self.ctx.clock.now_ns() + self._latency_ns, msg))
        return self._advance(None)

    def on_request_cancel(self, msg: RequestCancel) -> list[Any]:
        self._inbox.append((self.ctx.clock.now_ns() + self._latency_ns, msg))
        return self._advance(None)

    def on_query_order(self, msg: QueryOrder) -> list[Any]:
        self._inbox.append((self.ctx.clock.now_ns() + self._latency_ns, msg))
        return self._advance(None)

    def on_query_position(self, msg: QueryPosition) -> list[Any]:
        """Queued with the other requests, so it is answered after the queries sent before it."""
        self._inbox.append((self.ctx.clock.now_ns() + self._latency_ns, msg))
        return self._advance(None)

    def on_raw_market_event(self, msg: RawMarketEvent) -> list[Any]:
        trade = None
        if msg.kind is MarketEventKind.QUOTE:
            if msg.bid_price is not None and msg.ask_price is not None:
                if not _sane_quote(msg):
                    # Defence in depth behind the decoders: a quote no venue sends is not a market.
                    # The book is forgotten (nothing fills on it, new orders see "no_market") until
                    # the next sane quote, rather than trading on the last one as if it still held.
                    self._stats["refused_market_data"] += 1
                    self._bid = self._ask = None
                    self._quoted = False
                    return self._advance(None)
                self._bid, self._ask = msg.bid_price, msg.ask_price
                self._bid_left = msg.bid_qty if msg.bid_qty is not None else _ZERO
                self._ask_left = msg.ask_qty if msg.ask_qty is not None else _ZERO
                self._quoted = True
        elif msg.kind is MarketEventKind.TRADE and msg.price is not None and msg.qty is not None:
            if not (_positive(msg.price) and _positive(msg.qty)):
                self._stats["refused_market_data"] += 1
                return self._advance(None)
            if not self._quoted:
                # No quote seen yet: the last print is the best guess of both sides.
                self._bid = self._ask = msg.price
                self._bid_left = self._ask_left = msg.qty
            trade = msg
        return self._advance(trade)

    def on_timer_tick(self, msg: TimerTick) -> list[Any]:
        return self._advance(None)

    # -- records for reconciliation ---------------------------------------------------------------

    def snapshot(self) -> PaperVenueSnapshot:
        codec = self._snapshot_codec()
        working = self._working
        settled = self._settled_states
        states = []
        for coid, o in self._orders.items():
            st = None if coid in working else settled.get(coid)
            if st is None:
                st = PaperOrderState(place=o.place, venue_order_id=o.venue_order_id, status=o.status,
                                     filled=o.filled, notional=o.notional, fillable_at_ns=o.fillable_at_ns,
                                     resting=o.resting, reason=o.reason, working=coid in working)
                if coid not in working:
                    settled[coid] = st
            states.append(st)
        return PaperVenueSnapshot(
            symbol=self.ctx.symbol,
            orders=tuple(states),
            pos_qty=self._pos_qty, pos_avg=self._pos_avg, realized=self._realized, fees=self._fees,
            next_order_no=self._next_order_no, next_fill_no=self._next_fill_no,
            pending=tuple((due, codec.encode(req).hex()) for due, req in self._inbox),
        )

    def restore(self, snap: PaperVenueSnapshot) -> None:
        """Take the exchange's records back (the book itself is rebuilt from the next quotes)."""
        codec = self._snapshot_codec()
        self._orders, self._working, self._settled_states = {}, {}, {}
        for st in snap.orders:
            o = _Order(place=st.place, venue_order_id=st.venue_order_id, status=st.status, filled=st.filled,
                       notional=st.notional, fillable_at_ns=st.fillable_at_ns, resting=st.resting, reason=st.reason)
            self._orders[st.place.client_order_id] = o
            if not st.working:
                self._settled_states[st.place.client_order_id] = st
            if st.working:
                self._working[st.place.client_order_id] = o
        self._pos_qty, self._pos_avg, self._realized, self._fees = snap.pos_qty, snap.pos_avg, snap.realized, snap.fees
        self._next_order_no, self._next_fill_no = snap.next_order_no, snap.next_fill_no
        self._inbox = deque((due, codec.decode(bytes.fromhex(raw))) for due, raw in snap.pending)

    def _forget_old_orders(self) -> None:
        """Keep at most ``order_history`` settled orders (the oldest go first), as an exchange
        keeps a bounded order history; live orders are always kept."""
        excess = len(self._orders) - len(self._working) - self.config.order_history
        if excess <= 0:
            return
        for coid in list(islice((c for c in self._orders if c not in self._working), excess)):
            del self._orders[coid]
            self._settled_states.pop(coid, None)

    def _snapshot_codec(self) -> Any:
        codec = self._codec
        if codec is None:
            from arbor.messages import Codec

            codec = self._codec = Codec()
        return codec

    def venue_position(self) -> VenuePosition:
        return VenuePosition(
            symbol=self.ctx.symbol,
            qty=self._pos_qty,
            avg_price=self._pos_avg,
            realized_pnl=self._realized,
            fees=self._fees,
        )

    def open_orders(self) -> list[VenueOrder]:
        return [o.record() for o in self._working.values()]

    def order(self, client_order_id: str) -> VenueOrder | None:
        o = self._orders.get(client_order_id)
        return o.record() if o is not None else None

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {key: self._stats[key] for key in _STAT_KEYS}
        out["rejects"] = dict(sorted(self._rejects.items()))
        out["open_orders"] = len(self._working)
        out["in_flight"] = len(self._inbox)
        return out

    # -- engine ---------------------------------------------------------------------------------

    def _advance(self, trade: RawMarketEvent | None) -> list[Any]:
        """Handle the requests that are due, then let working orders take what the market offers."""
        now = self.ctx.clock.now_ns()
        out: list[Any] = []
        inbox = self._inbox
        while inbox and inbox[0][0] <= now:
            _, req = inbox.popleft()
            if type(req) is PlaceOrder:
                out.extend(self._place(req, now))
            elif type(req) is RequestCancel:
                out.extend(self._cancel(req, now))
            elif type(req) is QueryPosition:
                out.append(self._report_position(req, now))
            else:
                out.extend(self._query(req, now))
        trade_left = trade.qty if trade is not None and trade.qty is not None else _ZERO
        for o in list(self._working.values()):
            fills, trade_left = self._match(o, now, trade, trade_left)
            out.extend(fills)
        return out

    def _reject(self, msg: PlaceOrder, reason: str, now: int) -> list[Any]:
        self._stats["rejected"] += 1
        self._rejects[reason] += 1
        return [OrderRejected(symbol=msg.symbol, client_order_id=msg.client_order_id, reason=reason, ts_event_ns=now)]

    def _place(self, msg: PlaceOrder, now: int) -> list[Any]:
        self._stats["orders"] += 1
        known = self._orders.get(msg.client_order_id)
        if known is not None and known.status is not OrderStatus.REJECTED:
            # The original record stays as it is; a rejected id may be reused (nothing was live).
            return self._reject(msg, "duplicate_client_order_id", now)
        if known is not None:
            del self._orders[msg.client_order_id]  # the reused id's new record goes last, as a new order's
            self._settled_states.pop(msg.client_order_id, None)
        self._forget_old_orders()
        reason = self._refusal(msg)
        if reason:
            self._orders[msg.client_order_id] = _Order(
                place=msg, venue_order_id="", status=OrderStatus.REJECTED, reason=reason
            )
            return self._reject(msg, reason, now)

        o = _Order(
            place=msg,
            venue_order_id=f"{msg.symbol}-{self._next_order_no}",
            status=OrderStatus.NEW,
            fillable_at_ns=now + self._fill_delay_ns,
        )
        self._next_order_no += 1
        self._orders[msg.client_order_id] = o
        self._working[msg.client_order_id] = o
        self._stats["accepted"] += 1
        out: list[Any] = [
            OrderAccepted(
                symbol=msg.symbol, client_order_id=msg.client_order_id, venue_order_id=o.venue_order_id, ts_event_ns=now
            )
        ]
        fills, _ = self._match(o, now, None, _ZERO)
        out.extend(fills)
        o.resting = True
        cfg = self.config
        if cfg.drop_ack_rate > 0 and self.ctx.rng.random() < cfg.drop_ack_rate:
            # The venue did all of it; only the answer is lost on the way back.
            self._stats["dropped_acks"] += 1
            self._stats["dropped_fills"] += sum(1 for m in out if type(m) is OrderFilled)
            return []
        return out

    def _refusal(self, msg: PlaceOrder) -> str:
        """Why a new order is refused, or ``""`` to accept it."""
        if not msg.qty.is_finite() or msg.qty <= 0 or msg.qty % self.qty_step != 0:
            return "invalid_qty"
        limit = msg.limit_price
        if msg.order_type is OrderType.LIMIT and (limit is None or not limit.is_finite() or limit <= 0):
            return "invalid_price"
        cfg = self.config
        if cfg.transient_error_rate > 0 and self.ctx.rng.random() < cfg.transient_error_rate:
            return "transient_error"
        if cfg.reject_rate > 0 and self.ctx.rng.random() < cfg.reject_rate:
            return "venue_rejected"
        if self._bid is None or self._ask is None:
            return "no_market"
        if msg.reduce_only and msg.qty > self._reducible(msg.side):
            return "reduce_only_rejected"
        return ""

    def _reducible(self, side: Side) -> Decimal:
        """How much an order of ``side`` can trade without increasing or flipping the position."""
        pos = self._pos_qty
        if (side is Side.SELL and pos > 0) or (side is Side.BUY and pos < 0):
            return abs(pos)
        return _ZERO

    def _match(
        self, o: _Order, now: int, trade: RawMarketEvent | None, trade_left: Decimal
    ) -> tuple[list[Any], Decimal]:
        """Fills of one working order against what is on offer now; also the print's size left."""
        if o.status not in _LIVE or now < o.fillable_at_ns or self._bid is None or self._ask is None:
            return [], trade_left
        p = o.place
        remaining = p.qty - o.filled
        if p.reduce_only:
            cap = self._reducible(p.side)
            if cap <= 0:
                return [self._close(o, OrderStatus.CANCELED, "reduce_only", now)], trade_left
            remaining = min(remaining, cap)
        buy = p.side is Side.BUY
        best = self._ask if buy else self._bid
        left = self._ask_left if buy else self._bid_left
        limit = p.limit_price
        out: list[Any] = []
        if p.order_type is OrderType.MARKET or (limit is not None and (best <= limit if buy else best >= limit)):
            qty = min(remaining, left)
            if qty > 0:
                maker = p.order_type is OrderType.LIMIT and o.resting
                price = limit if maker and limit is not None else best
                if buy:
                    self._ask_left -= qty
                else:
                    self._bid_left -= qty
                out.append(self._fill(o, qty, price, maker, now))
                remaining -= qty
        if (
            remaining > 0
            and trade is not None
            and trade_left > 0
            and p.order_type is OrderType.LIMIT
            and o.resting
            and trade.side is not None
            and trade.price is not None
            and limit is not None
            and trade.side is not p.side
            and (trade.price < limit if buy else trade.price > limit)
        ):
            # A print through the limit: the resting order was hit on the way.
            qty = min(remaining, trade_left)
            trade_left -= qty
            out.append(self._fill(o, qty, limit, True, now))
        return out, trade_left

    def _fill(self, o: _Order, qty: Decimal, price: Decimal, maker: bool, now: int) -> OrderFilled:
        p = o.place
        bps = self.config.maker_fee_bps if maker else self.config.taker_fee_bps
        fee = price * qty * bps / _BPS
        o.filled += qty
        o.notional += price * qty
        if o.filled >= p.qty:
            o.status = OrderStatus.FILLED
            self._working.pop(p.client_order_id, None)
        else:
            o.status = OrderStatus.PARTIALLY_FILLED
        self._apply_to_position(p.side, qty, price, fee)
        fill_id = f"{p.symbol}-F{self._next_fill_no}"
        self._next_fill_no += 1
        self._stats["fills"] += 1
        return OrderFilled(
            symbol=p.symbol,
            client_order_id=p.client_order_id,
            venue_order_id=o.venue_order_id,
            fill_id=fill_id,
            side=p.side,
            qty=qty,
            price=price,
            fee=fee,
            is_maker=maker,
            cum_qty=o.filled,
            leaves_qty=p.qty - o.filled,
            ts_event_ns=now,
        )

    def _apply_to_position(self, side: Side, qty: Decimal, price: Decimal, fee: Decimal) -> None:
        pos = self._pos_qty
        signed = qty if side is Side.BUY else -qty
        self._fees += fee
        if pos == 0 or (pos > 0) == (signed > 0):
            new = pos + signed
            self._pos_avg = (abs(pos) * self._pos_avg + qty * price) / abs(new)
            self._pos_qty = new
            return
        closing = min(qty, abs(pos))
        self._realized += (price - self._pos_avg) * closing * (1 if pos > 0 else -1)
        new = pos + signed
        if new == 0:
            self._pos_avg = _ZERO
        elif (new > 0) != (pos > 0):
            self._pos_avg = price  # flipped: the rest opened at this price
        self._pos_qty = new

    def _close(self, o: _Order, status: OrderStatus, reason: str, now: int) -> OrderCanceled:
        o.status = status
        o.reason = reason
        self._working.pop(o.place.client_order_id, None)
        self._stats["cancels"] += 1
        return OrderCanceled(
            symbol=o.place.symbol,
            client_order_id=o.place.client_order_id,
            filled_qty=o.filled,
            reason=reason,
            ts_event_ns=now,
        )

    def _cancel(self, msg: RequestCancel, now: int) -> list[Any]:
        o = self._orders.get(msg.client_order_id)
        if o is None or o.status not in _LIVE:
            # Binance answers "unknown order" (-2011); the executor learns the fate by query.
            self._stats["cancel_unknown"] += 1
            return []
        return [self._close(o, OrderStatus.CANCELED, "canceled", now)]

    def _query(self, msg: QueryOrder, now: int) -> list[Any]:
        self._stats["queries"] += 1
        o = self._orders.get(msg.client_order_id)
        if o is None:
            return [
                OrderStatusReported(
                    symbol=msg.symbol,
                    client_order_id=msg.client_order_id,
                    status=OrderStatus.NOT_FOUND,
                    venue_order_id="",
                    filled_qty=_ZERO,
                    avg_price=None,
                    ts_event_ns=now,
                )
            ]
        return [
            OrderStatusReported(
                symbol=msg.symbol,
                client_order_id=msg.client_order_id,
                status=o.status,
                venue_order_id=o.venue_order_id,
                filled_qty=o.filled,
                avg_price=o.avg_price,
                ts_event_ns=now,
            )
        ]

    def _report_position(self, msg: QueryPosition, now: int) -> PositionReported:
        self._stats["position_queries"] += 1
        return PositionReported(
            symbol=msg.symbol,
            qty=self._pos_qty,
            avg_price=self._pos_avg if self._pos_qty else None,
            open_client_order_ids=tuple(self._working),
            ts_event_ns=now,
        )


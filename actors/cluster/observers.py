"""Observers of cluster traffic: the live summary board, the trade log and the event log.

Observers run on whichever group thread emitted a message, so each guards its state with a lock
and does as little as possible per message.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
from arbor.messages import (
    ActionApproved,
    ActionDenied,
    DecodeFailure,
    Direction,
    Envelope,
    KillSwitchEngaged,
    KillSwitchReset,
    MandateKind,
    MandateSet,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    PositionChanged,
    PositionState,
    RawMarketEvent,
    RegimeChanged,
    TradingStateChanged,
)
from arbor.messages.risk import ALL_SYMBOLS
from loguru import logger


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Quiet:
    """Observer defaults: ignore what you do not care about."""

    wants_inputs = False

    def external(self, env: Envelope) -> None:
        pass

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        pass

    def processed(self, actor_id: str, env: Envelope, now_ns: int) -> None:
        pass


class SummaryBoard(_Quiet):
    """Per-symbol trading state, regime, position and PnL, for the live summary and tests."""

    def __init__(self, symbols: tuple[str, ...]) -> None:
        self._lock = threading.Lock()
        self.global_state = "ACTIVE"
        self.kill_switch: dict[str, Any] = {"engaged": False}
        self.rows: dict[str, dict[str, Any]] = {
            s: {"state": "ACTIVE", "regime": "UNKNOWN", "position": "FLAT", "direction": None, "qty": Decimal(0),
                "avg": None, "mark": None, "realized": Decimal(0), "fees": Decimal(0), "events": 0,
                "decode_failures": 0, "orders": 0, "fills": 0, "denials": 0, "entries_while_not_active": 0}
            for s in symbols
        }

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        msg = env.payload
        t = type(msg)
        if t is RawMarketEvent:
            row = self.rows.get(msg.symbol)
            if row is not None:
                row["events"] += 1  # one writer per symbol (its own group): no lock needed
            return
        with self._lock:
            if t is PositionChanged:
                row = self.rows[msg.symbol]
                row.update(position=msg.state.value, direction=msg.direction.value if msg.direction else None,
                           qty=msg.qty, avg=msg.avg_entry_price, realized=msg.realized_pnl, fees=msg.fees)
            elif t is MandateSet:
                self.rows[msg.symbol]["mark"] = msg.mark_price
            elif t is RegimeChanged:
                self.rows[msg.symbol]["regime"] = msg.new.value
            elif t is PlaceOrder:
                self.rows[msg.symbol]["orders"] += 1
            elif t is OrderFilled and env.sender.endswith("/venue"):
                self.rows[msg.symbol]["fills"] += 1
            elif t is ActionDenied:
                self.rows[msg.symbol]["denials"] += 1
            elif t is DecodeFailure:
                self.rows[msg.symbol]["decode_failures"] += 1
            elif t is TradingStateChanged:
                if msg.scope == ALL_SYMBOLS:
                    self.global_state = msg.new.value
                elif msg.scope in self.rows:
                    self.rows[msg.scope]["state"] = msg.new.value
            elif t is KillSwitchEngaged:
                self.kill_switch = {"engaged": True, "who": msg.who, "reason": msg.reason, "ts": iso(msg.ts_event_ns)}
            elif t is KillSwitchReset:
                self.kill_switch = {"engaged": False, "reset_by": msg.who, "reason": msg.reason}

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"global_state": self.global_state, "kill_switch": dict(self.kill_switch),
                    "symbols": {s: dict(r) for s, r in self.rows.items()}}

    @staticmethod
    def unrealized(row: dict[str, Any]) -> Decimal:
        if not row["qty"] or row["avg"] is None or row["mark"] is None or row["direction"] is None:
            return Decimal(0)
        sign = 1 if row["direction"] == Direction.LONG.value else -1
        return (row["mark"] - row["avg"]) * row["qty"] * sign

    def render(self) -> str:
        snap = self.snapshot()
        ks = snap["kill_switch"]
        head = f"global={snap['global_state']} kill_switch={'ENGAGED (' + ks.get('reason', '') + ')' if ks['engaged'] else 'off'}"
        lines = [head, f"{'symbol':<10} {'state':<9} {'regime':<9} {'position':<9} {'side':<5} {'qty':>10} "
                       f"{'pnl':>11} {'events':>8} {'orders':>6} {'fills':>6} {'denied':>6}"]
        total = Decimal(0)
        for sym, r in snap["symbols"].items():
            pnl = r["realized"] - r["fees"] + self.unrealized(r)
            total += pnl
            lines.append(f"{sym:<10} {r['state']:<9} {r['regime']:<9} {r['position']:<9} {(r['direction'] or '-')[:5]:<5} "
                         f"{r['qty']:>10} {pnl:>11.2f} {r['events']:>8} {r['orders']:>6} {r['fills']:>6} {r['denials']:>6}")
        lines.append(f"{'total':<10} {'':<9} {'':<9} {'':<9} {'':<5} {'':>10} {total:>11.2f}")
        return "\n".join(lines)


class TradeLog(_Quiet):
    """Append-only trade log: one JSON object per closed round trip, written as it closes."""

    def __init__(self, path: Path, mode: str) -> None:
        self.path = path
        self.mode = mode
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 -- held open for the run; close() closes it
        self._lock = threading.Lock()
        self._open: dict[str, dict[str, Any]] = {}
        self._last_action: dict[str, ActionApproved] = {}
        self._entry_action: dict[str, ActionApproved] = {}
        self._base: dict[str, tuple[Decimal, Decimal]] = {}
        self._count = 0
        self.trades_written = 0

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        msg = env.payload
        t = type(msg)
        if t is ActionApproved:
            with self._lock:
                self._last_action[msg.symbol] = msg
                if msg.action.kind is MandateKind.ENTRY:
                    self._entry_action[msg.symbol] = msg
        elif t is PositionChanged:
            with self._lock:
                self._on_position(msg)

    def _on_position(self, pc: PositionChanged) -> None:
        sym = pc.symbol
        trade = self._open.get(sym)
        if trade is None:
            if pc.state is PositionState.FLAT:
                self._base[sym] = (pc.realized_pnl, pc.fees)
                return
            if pc.qty > 0 and pc.direction is not None:
                entry = self._entry_action.get(sym)
                base_realized, base_fees = self._base.get(sym, (Decimal(0), Decimal(0)))
                self._count += 1
                self._open[sym] = {
                    "trade_id": f"{sym}-{self._count}", "symbol": sym, "side": pc.direction.value,
                    "mode": self.mode, "entry_ts_ns": pc.ts_event_ns, "entry_price": pc.avg_entry_price,
                    "size": pc.qty, "base_realized": base_realized, "base_fees": base_fees,
                    "entry_mandate": entry.action.reason if entry else "", "entry_regime":
                    entry.action.regime.value if entry else "", "strategy": entry.action.strategy if entry else "",
                }
            return
        trade["size"] = max(trade["size"], pc.qty)
        if pc.state is PositionState.OPEN or pc.state is PositionState.ENTERING:
            trade["entry_price"] = pc.avg_entry_price or trade["entry_price"]
        if pc.state is not PositionState.FLAT:
            return
        del self._open[sym]
        self._base[sym] = (pc.realized_pnl, pc.fees)
        realized = pc.realized_pnl - trade["base_realized"]
        fees = pc.fees - trade["base_fees"]
        sign = 1 if trade["side"] == Direction.LONG.value else -1
        size = trade["size"]
        exit_price = trade["entry_price"] + realized / (size * sign) if size and trade["entry_price"] else None
        last = self._last_action.get(sym)
        line = {
            "trade_id": trade["trade_id"], "symbol": sym, "side": trade["side"], "mode": trade["mode"],
            "entry_time": iso(trade["entry_ts_ns"]), "entry_price": str(trade["entry_price"]),
            "exit_time": iso(pc.ts_event_ns), "exit_price": str(exit_price) if exit_price is not None else None,
            "size": str(size), "realized_pnl": str(realized), "fees": str(fees), "net_pnl": str(realized - fees),
            "entry_mandate": trade["entry_mandate"], "entry_regime": trade["entry_regime"],
            "strategy": trade["strategy"], "exit_reason": (last.action.reason if last else "") or pc.cause,
        }
        self._fh.write(json.dumps(line) + "\n")
        self.trades_written += 1

    def close(self) -> None:
        with self._lock:
            self._fh.close()


class LinkedTradeLog(TradeLog):
    """The trade log of a Worker process: its approvals are emitted by Risk in the Coordinator's
    process and arrive over the link, so it also watches what each position handles. Every
    Worker appends whole lines to the run's one ``trades.jsonl``."""

    wants_inputs = True

    def processed(self, actor_id: str, env: Envelope, now_ns: int) -> None:
        if type(env.payload) is ActionApproved and actor_id.endswith("/position"):
            self.emitted(env, ())


_LOGGED = {
    "OrderFilled.v1", "OrderRejected.v1", "OrderCanceled.v1", "OrderTimedOut.v1", "PlaceOrder.v1",
    "ActionDenied.v1", "ActionApproved.v1", "TradingStateChanged.v1", "KillSwitchEngaged.v1",
    "KillSwitchReset.v1", "KillSwitchResetRefused.v1", "DecodeFailure.v1", "RegimeChanged.v1",
    "ActorFailed.v1", "ActorRestarted.v1", "SymbolRecovered.v1", "DeadLetter.v1",
    "DuplicateOrderSuppressed.v1", "ActionNotApplicable.v1",
}


class EventLogger(_Quiet):
    """Writes the events a trader cares about to the JSON log, one line each."""

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        tag = type(env.payload).TAG
        if tag not in _LOGGED:
            return
        msg = env.payload
        level = "WARNING" if tag in ("DecodeFailure.v1", "ActorFailed.v1", "KillSwitchEngaged.v1", "DeadLetter.v1",
                                      "OrderRejected.v1", "OrderTimedOut.v1") else "INFO"
        fields = {k: (str(v) if isinstance(v, (Decimal, bytes)) else getattr(v, "value", v))
                  for k, v in ((f.name, getattr(msg, f.name)) for f in attrs.fields(type(msg)) if f.name not in ("raw", "action"))
                  if not isinstance(v, (tuple, list))}
        if isinstance(msg, (ActionApproved, ActionDenied)):
            fields.update(action_id=msg.action.action_id, kind=msg.action.kind.value, qty=str(msg.action.qty))
        if isinstance(msg, OrderRejected):
            fields["reason"] = msg.reason
        logger.bind(event_type=tag.split(".")[0], msg_id=env.msg_id, actor=env.sender,
                    symbol=getattr(msg, "symbol", ""), data=fields).log(level, tag.split(".")[0])

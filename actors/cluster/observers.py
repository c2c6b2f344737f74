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
from typing import Any, TextIO

import attrs
from arbor.actors.cluster.counters import SymbolCounters
from arbor.actors.cluster.restart import START
from arbor.actors.runtime.dispatcher import QuietObserver
from arbor.messages import (
    ActionApproved,
    ActionDenied,
    Direction,
    Envelope,
    KillSwitchEngaged,
    KillSwitchReset,
    MandateKind,
    MandateSet,
    OrderFilled,
    OrderRejected,
    PositionChanged,
    PositionState,
    RawMarketEvent,
    Side,
    TradingStateChanged,
)
from arbor.messages.display import decimal_text, shown
from arbor.messages.risk import ALL_SYMBOLS
from arbor.supervision.files import write_atomic
from loguru import logger


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SummaryBoard(QuietObserver):
    """Per-symbol trading state, regime, position and PnL, for the live summary and tests, with
    the per-symbol counters of ``actors/cluster/counters.py`` (the one definition of both modes)."""

    def __init__(self, symbols: tuple[str, ...]) -> None:
        self._lock = threading.Lock()
        self.global_state = "ACTIVE"
        self.kill_switch: dict[str, Any] = {"engaged": False}
        self.counters = SymbolCounters(symbols)
        self.rows: dict[str, dict[str, Any]] = {
            s: {"state": "ACTIVE", "position": "FLAT", "direction": None, "qty": Decimal(0),
                "avg": None, "mark": None, "realized": Decimal(0), "fees": Decimal(0)}
            for s in symbols
        }

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        msg = env.payload
        t = type(msg)
        if t is RawMarketEvent:
            self.counters.count(env)  # one writer per symbol (its own group): no lock needed
            return
        with self._lock:
            self.counters.count(env)
            if t is PositionChanged:
                row = self.rows[msg.symbol]
                row.update(position=msg.state.value, direction=msg.direction.value if msg.direction else None,
                           qty=msg.qty, avg=msg.avg_entry_price, realized=msg.realized_pnl, fees=msg.fees)
            elif t is MandateSet:
                self.rows[msg.symbol]["mark"] = msg.mark_price
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
        counted = self.counters.rows
        with self._lock:
            return {"global_state": self.global_state, "kill_switch": dict(self.kill_switch),
                    "symbols": {s: {**counted[s], **r} for s, r in self.rows.items()}}

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
                         f"{decimal_text(r['qty']):>10} {pnl:>11.2f} {r['events']:>8} {r['orders']:>6} {r['fills']:>6} {r['denials']:>6}")
        lines.append(f"{'total':<10} {'':<9} {'':<9} {'':<9} {'':<5} {'':>10} {total:>11.2f}")
        return "\n".join(lines)


class TradeLog(QuietObserver):
    """Append-only trade log: one JSON object per closed round trip, written as it closes.

    Trades still open are kept beside it in ``<stem>.open.json`` (replaced whole, atomically, when
    one opens, fills or closes; durable against a crash of the process), so a restarted cluster
    continues them: a trade closed after a restart keeps its id, entry time, price and reason and
    counts only its own PnL and fees. Trade ids are ``SYMBOL-<run_id>-<n>``, unique across runs.
    The exit price is the volume-weighted price of the trade's closing fills.

    ``sink`` replaces the file at ``path`` (a test's or drill's writer, e.g. ``faults.FullDisk``).
    A write error propagates to the dispatcher, which keeps dispatching and fails closed.
    """

    NAME = "trade_log"

    def __init__(self, path: Path, mode: str, run_id: str = "", sink: TextIO | None = None,
                 open_path: Path | None = None) -> None:
        self.path = path
        self.mode = mode
        self.run_id = run_id
        self.open_path = open_path or path.with_name(f"{path.stem}.open.json")
        if sink is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            sink = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 -- held open for the run; close() closes it
        self._fh = sink
        self._lock = threading.Lock()
        self._open: dict[str, dict[str, Any]] = self._load_open()
        self._last_action: dict[str, ActionApproved] = {}
        self._entry_action: dict[str, ActionApproved] = {}
        self._base: dict[str, tuple[Decimal, Decimal]] = {}
        self._count = 0
        self.trades_written = 0

    def open_entry_times(self) -> dict[str, int]:
        """Entry time (ns) of each open trade by symbol, as restored at start or opened since."""
        with self._lock:
            return {sym: t["entry_ts_ns"] for sym, t in self._open.items()}

    def open_position(self, symbol: str) -> Decimal:
        """The signed quantity the trade log holds open for ``symbol``: the open trade's size less
        the closing fills it counted (0 without an open trade)."""
        with self._lock:
            trade = self._open.get(symbol)
            if trade is None:
                return ZERO
            left = trade["size"] - trade["exit_qty"]
            return -left if trade["side"] == Direction.SHORT.value else left

    def closed_trades(self) -> list[dict[str, Any]]:
        """The closed trades written to ``path`` so far, oldest first (an unreadable line is skipped)."""
        with self._lock:
            try:
                self._fh.flush()
                text = self.path.read_text(encoding="utf-8")
            except (OSError, ValueError):
                return []
        out = []
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

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
        elif t is OrderFilled and env.sender.endswith("/executor"):  # the fills Position applies
            with self._lock:
                self._on_fill(msg)

    def _on_fill(self, fill: OrderFilled) -> None:
        trade = self._open.get(fill.symbol)
        if trade is None or fill.side is not Side.closing(Direction(trade["side"])):
            return
        trade["exit_qty"] += fill.qty
        trade["exit_notional"] += fill.price * fill.qty
        self._save_open()

    def _on_position(self, pc: PositionChanged) -> None:
        sym = pc.symbol
        trade = self._open.get(sym)
        if trade is not None and pc.cause == START and (pc.direction is None or pc.direction.value != trade["side"]):
            # The position announced at start does not continue the trade: it ended unobserved.
            self._close(trade, pc, observed=False)
            trade = None
        if trade is None:
            if pc.state is PositionState.FLAT:
                self._base[sym] = (pc.realized_pnl, pc.fees)
                return
            if pc.qty > 0 and pc.direction is not None:
                self._begin(pc)
            return
        trade["size"] = max(trade["size"], pc.qty)
        if pc.state is PositionState.OPEN or pc.state is PositionState.ENTERING:
            trade["entry_price"] = pc.avg_entry_price or trade["entry_price"]
        if pc.state is PositionState.FLAT:
            self._close(trade, pc, observed=True)
        else:
            self._save_open()

    def _begin(self, pc: PositionChanged) -> None:
        sym = pc.symbol
        restored = pc.cause == START  # open at start without a record: its entry was not seen
        entry = None if restored else self._entry_action.get(sym)
        base_realized, base_fees = (pc.realized_pnl, pc.fees) if restored else self._base.get(sym, (ZERO, ZERO))
        self._count += 1
        self._open[sym] = {
            "trade_id": f"{sym}-{self.run_id}-{self._count}" if self.run_id else f"{sym}-{self._count}",
            "symbol": sym, "side": pc.direction.value if pc.direction else "", "mode": self.mode,
            "entry_ts_ns": pc.ts_event_ns, "entry_price": pc.avg_entry_price, "size": pc.qty,
            "base_realized": base_realized, "base_fees": base_fees,
            "entry_mandate": entry.action.reason if entry else ("restored without a trade record" if restored else ""),
            "entry_regime": entry.action.regime.value if entry else "", "strategy": entry.action.strategy if entry else "",
            "exit_qty": ZERO, "exit_notional": ZERO,
        }
        self._save_open()

    def _close(self, trade: dict[str, Any], pc: PositionChanged, observed: bool) -> None:
        sym = pc.symbol
        del self._open[sym]
        self._base[sym] = (pc.realized_pnl, pc.fees)
        realized = pc.realized_pnl - trade["base_realized"]
        fees = pc.fees - trade["base_fees"]
        size = trade["size"]
        if trade["exit_qty"]:
            exit_price = trade["exit_notional"] / trade["exit_qty"]
        elif observed and size and trade["entry_price"]:
            sign = 1 if trade["side"] == Direction.LONG.value else -1
            exit_price = trade["entry_price"] + realized / (size * sign)
        else:
            exit_price = None
        last = self._last_action.get(sym)
        line = {
            "trade_id": trade["trade_id"], "symbol": sym, "side": trade["side"], "mode": trade["mode"],
            "entry_time": iso(trade["entry_ts_ns"]), "entry_price": (decimal_text(trade["entry_price"]) if trade["entry_price"] is not None else None),
            "exit_time": iso(pc.ts_event_ns), "exit_price": decimal_text(exit_price) if exit_price is not None else None,
            # rounded once, for the reader (messages.display); net is the difference of what is shown
            "size": decimal_text(size),
            "realized_pnl": decimal_text(realized) if observed else None,
            "fees": decimal_text(fees) if observed else None,
            "net_pnl": decimal_text(shown(realized) - shown(fees)) if observed else None,
            "entry_mandate": trade["entry_mandate"], "entry_regime": trade["entry_regime"],
            "strategy": trade["strategy"],
            "exit_reason": ((last.action.reason if last else "") or pc.cause) if observed else "not observed: "
            f"the position was {pc.state.value} at restart",
        }
        self._fh.write(json.dumps(line) + "\n")
        self.trades_written += 1
        self._save_open()  # after the line: a crash between the two leaves a record the load drops

    # -- open trades beside the log ------------------------------------------------------------
    def _save_open(self) -> None:
        data = {sym: {k: (str(v) if isinstance(v, Decimal) else v) for k, v in t.items()} for sym, t in self._open.items()}
        # No fsync: as the store's commits, durable against a crash of the process, not of the host.
        write_atomic(self.open_path, json.dumps(data), fsync=False)

    def _load_open(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.open_path.read_text(encoding="utf-8"))
            trades = {sym: {k: (Decimal(v) if k in _DECIMAL_FIELDS and v is not None else v) for k, v in t.items()}
                      for sym, t in data.items()}
        except FileNotFoundError:
            return {}
        except (ValueError, TypeError, AttributeError, ArithmeticError) as exc:
            logger.bind(event_type="trade_log_open_unreadable").warning(
                "open trades in {} unreadable ({!r}); restored positions start new trades", self.open_path, exc)
            return {}
        closed = self.path.read_text(encoding="utf-8") if trades and self.path.exists() else ""
        return {sym: t for sym, t in trades.items() if f'"trade_id": "{t["trade_id"]}"' not in closed}

    def close(self) -> None:
        with self._lock:
            self._fh.close()


class LinkedTradeLog(TradeLog):
    """The trade log of a Worker process: its approvals are emitted by Risk in the Coordinator's
    process and arrive over the link, so it also watches what each position handles. Every
    Worker appends whole lines to the run's one ``trades.jsonl`` and keeps its own open trades
    (``open_path``, per run and worker: a Worker restarted within the run continues them)."""

    wants_inputs = True

    def processed(self, actor_id: str, env: Envelope, now_ns: int) -> None:
        if type(env.payload) is ActionApproved and actor_id.endswith("/position"):
            self.emitted(env, ())


ZERO = Decimal(0)
_DECIMAL_FIELDS = frozenset({"entry_price", "size", "base_realized", "base_fees", "exit_qty", "exit_notional"})


_LOGGED = {
    "OrderFilled.v1", "OrderRejected.v1", "OrderCanceled.v1", "OrderTimedOut.v1", "PlaceOrder.v1",
    "ActionDenied.v1", "ActionApproved.v1", "TradingStateChanged.v1", "KillSwitchEngaged.v1",
    "KillSwitchReset.v1", "KillSwitchResetRefused.v1", "DecodeFailure.v1", "RegimeChanged.v1",
    "ActorFailed.v1", "ActorRestarted.v1", "SymbolRecovered.v1", "DeadLetter.v1",
    "DuplicateOrderSuppressed.v1", "ActionNotApplicable.v1",
}


class EventLogger(QuietObserver):
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

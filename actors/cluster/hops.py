"""``HopTrace``: where a decision's tick-to-order time goes, hop by hop (``cluster.trace_hops``).

Off by default, and then nothing of it exists: no observer, no stamp on a link frame. On, each
node stamps the hops it sees of every decision, keyed by ``(symbol, data_ts_ns)`` (the newest
market data behind the decision: a MandateSet carries it, and so does the Action that Risk
approves for it), in wall-clock nanoseconds (``time.time_ns``: one clock for every process of
a host), and writes them with its latency samples; ``bench/scale.py --hops`` joins the nodes'
records and prints each hop's p50/p99.

The hops, in order (``HOPS``): a Worker's market frame is due; the Worker delivers it (its
collector starts handling it); the MandateSet is decided (emitted by the regime); the batch
that carries it leaves the Worker (stamped into the link frame by the sender's port); the
Coordinator reads that frame from its socket; decodes the envelope; the Arbitrator starts
handling it; Risk emits the ActionApproved; the batch that carries the approval leaves the
Coordinator; the Worker reads it; the Worker's position starts handling it; the position emits
the SubmitOrder; the executor hands the order to the venue (``PlaceOrder``, after its write-ahead).

Runs on the node's thread, as a dispatcher observer plus ``arrived`` for what comes off the link.
"""

from __future__ import annotations

import time
from typing import Any

from arbor.actors.runtime.dispatcher import QuietObserver
from arbor.messages import (
    ActionApproved,
    Envelope,
    FeatureSnapshot,
    MandateSet,
    PlaceOrder,
    RawMarketEvent,
    SubmitOrder,
    VenuePayload,
)

# Each hop's name: the instant it ends. Worker stamps, then Coordinator stamps, then Worker's again.
HOPS = ("due", "delivered", "decided", "w_sent", "c_read", "c_decoded", "c_handled", "c_approved",
        "c_sent", "w_read", "w_handled", "w_submitted", "placed")
KEEP = 4096  # decisions (and causation links) remembered at once: older ones are dropped


class HopTrace(QuietObserver):
    """Stamps the hops of each decision this node sees (see the module docstring)."""

    wants_inputs = True

    def __init__(self, clock_ns: Any = time.time_ns) -> None:
        self.clock_ns = clock_ns
        self.records: dict[tuple[str, int], dict[str, int]] = {}
        self.done: list[dict[str, Any]] = []  # finished records (a Worker's: placed; the Coordinator's: approved)
        self._chain: dict[int, tuple[int, int]] = {}  # msg_id -> (frame due, frame delivered)
        self._orders: dict[int, tuple[str, int]] = {}  # msg_id of an approval or SubmitOrder -> its decision

    # -- what comes off the link ------------------------------------------------------------
    def arrived(self, env: Envelope, stamps: tuple[int, int] | None) -> None:
        """An envelope decoded from a link batch that was sent at ``stamps[0]`` and read at ``stamps[1]``."""
        m = env.payload
        t = type(m)
        if t is MandateSet:  # on the Coordinator
            if stamps is not None:
                self._put((m.symbol, m.data_ts_ns), {"w_sent": stamps[0], "c_read": stamps[1],
                                                     "c_decoded": self.clock_ns()})
        elif t is ActionApproved:  # on a Worker
            rec = self.records.get((m.symbol, m.action.data_ts_ns))
            if rec is not None and stamps is not None:
                rec["c_sent"], rec["w_read"] = stamps

    # -- the dispatcher's observer ----------------------------------------------------------
    def processed(self, actor_id: str, env: Envelope, now_ns: int) -> None:
        m = env.payload
        t = type(m)
        if t is VenuePayload:
            self._link(self._chain, env.msg_id, (env.ts_recv_ns, now_ns))
        elif t is MandateSet and actor_id == "arbitrator":
            rec = self.records.get((m.symbol, m.data_ts_ns))
            if rec is not None:
                rec["c_handled"] = now_ns
        elif t is ActionApproved and actor_id.endswith("/position"):
            key = (m.symbol, m.action.data_ts_ns)
            rec = self.records.get(key)
            if rec is not None:
                rec["w_handled"] = now_ns
                self._link(self._orders, env.msg_id, key)

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        m = env.payload
        t = type(m)
        if t is RawMarketEvent or t is FeatureSnapshot:
            got = self._chain.get(env.causation_id)
            if got is not None:
                self._link(self._chain, env.msg_id, got)
        elif t is MandateSet:
            got = self._chain.get(env.causation_id)
            if got is not None:
                self._put((m.symbol, m.data_ts_ns), {"due": got[0], "delivered": got[1], "decided": self.clock_ns()})
        elif t is ActionApproved and env.sender == "risk":
            key = (m.symbol, m.action.data_ts_ns)
            rec = self.records.pop(key, None)
            if rec is not None:
                rec["c_approved"] = self.clock_ns()
                self._finish(key, rec)
        elif t is SubmitOrder:
            order = self._orders.pop(env.causation_id, None)
            if order is not None:
                self._link(self._orders, env.msg_id, order)
                rec = self.records.get(order)
                if rec is not None:
                    rec["w_submitted"] = self.clock_ns()
        elif t is PlaceOrder and env.sender.endswith("/executor"):
            order = self._orders.pop(env.causation_id, None)
            placed = self.records.pop(order, None) if order is not None else None
            if order is not None and placed is not None:
                placed["placed"] = self.clock_ns()
                self._finish(order, placed)

    # -- records ----------------------------------------------------------------------------
    def _put(self, key: tuple[str, int], rec: dict[str, int]) -> None:
        self._link(self.records, key, rec)

    def _finish(self, key: tuple[str, int], rec: dict[str, int]) -> None:
        if len(self.done) < 100_000:
            self.done.append({"symbol": key[0], "data_ts_ns": key[1], **rec})

    @staticmethod
    def _link(table: dict, key: Any, value: Any) -> None:
        """Keep the newest ``KEEP`` to ``2 * KEEP`` entries (trimmed in bulk, as ``WorkerProbe`` does)."""
        table[key] = value
        if len(table) > 2 * KEEP:
            newest = list(table.items())[-KEEP:]
            table.clear()
            table.update(newest)

    def report(self) -> list[dict[str, Any]]:
        """The newest 20,000 finished records."""
        return self.done[-20_000:]


def join(worker_records: list[dict[str, Any]], coordinator_records: list[dict[str, Any]]) -> list[dict[str, int]]:
    """One record per order with every hop's instant: a Worker's record of a decision joined with the
    Coordinator's of the same ``(symbol, data_ts_ns)`` (orders missing a hop are left out)."""
    middle = {(r["symbol"], r["data_ts_ns"]): r for r in coordinator_records}
    out = []
    for w in worker_records:
        c = middle.get((w["symbol"], w["data_ts_ns"]))
        if c is None:
            continue
        rec = {**c, **w}
        if all(h in rec for h in HOPS):
            out.append({h: rec[h] for h in HOPS})
    return out

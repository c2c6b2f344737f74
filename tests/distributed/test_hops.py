"""The hop trace (``cluster.trace_hops``): link frames carry their send time only when traced, and
each node's ``HopTrace`` stamps a decision's hops, which ``join`` puts together across nodes."""

from __future__ import annotations

from decimal import Decimal as D
from itertools import count

import msgpack
import pytest
from arbor.actors.cluster.hops import HOPS, HopTrace, join
from arbor.adapters.link.session import LinkBatch
from arbor.adapters.link.transport import decode_frame, encode_frame
from arbor.messages import (
    Action,
    ActionApproved,
    Direction,
    Envelope,
    MandateKind,
    MandateSet,
    OrderIntent,
    OrderType,
    PlaceOrder,
    Regime,
    Side,
    SubmitOrder,
    VenuePayload,
)

SYM = "BTCUSDT"
DATA_TS = 1_700_000_000_000


def env(msg_id: int, payload: object, sender: str = "x", causation: int = 0, recv: int = 0) -> Envelope:
    return Envelope(msg_id=msg_id, sender=sender, receiver="y", ts_event_ns=0, ts_recv_ns=recv,
                    causation_id=causation, payload=payload)


def mandates() -> MandateSet:
    return MandateSet(symbol=SYM, cycle=1, ts_event_ns=0, regime=Regime.UNKNOWN, strategy="s", mandates=(),
                      mark_price=D("100"), data_ts_ns=DATA_TS)


def approved() -> ActionApproved:
    a = Action(action_id="r:1", symbol=SYM, cycle=1, kind=MandateKind.ENTRY, direction=Direction.LONG, qty=D("1"),
               mark_price=D("100"), data_ts_ns=DATA_TS, ts_event_ns=0, reason="t")
    return ActionApproved(symbol=SYM, action=a, ts_event_ns=0)


def test_a_batch_carries_its_send_time_only_when_traced() -> None:
    b = LinkBatch("worker-0", 3, 7, (b"a", b"b"))
    plain, got = decode_frame(encode_frame(b)), decode_frame(encode_frame(b, sent_ns=123))
    assert isinstance(plain, LinkBatch) and isinstance(got, LinkBatch)
    assert plain.stamps is None
    assert got == b and got.stamps == (123, 0)  # the receiver's port stamps the read time
    bad = msgpack.packb([0, "worker-0", 3, 7, [b"a"], None, "soon"], use_bin_type=True)
    with pytest.raises(ValueError, match="stamp"):
        decode_frame(bad)


def test_each_node_stamps_its_hops_and_join_puts_them_together() -> None:
    ticks = count(1000, 10)
    worker, coord = HopTrace(clock_ns=lambda: next(ticks)), HopTrace(clock_ns=lambda: next(ticks))
    frame = env(1, VenuePayload(venue="sim", symbol=SYM, payload=b"{}"), recv=500)
    worker.processed(f"{SYM}/collector", frame, 600)  # due 500, delivered 600
    worker.emitted(env(2, mandates(), f"{SYM}/regime", causation=1), ())  # decided 1000

    decision = env(10, mandates(), f"{SYM}/regime")
    coord.arrived(decision, (1100, 1200))  # sent by the Worker at 1100, read at 1200; decoded 1010
    coord.processed("arbitrator", decision, 1300)
    coord.emitted(env(11, approved(), "risk"), ())  # approved 1020

    approval = env(20, approved(), "risk")
    worker.arrived(approval, (1400, 1500))
    worker.processed(f"{SYM}/position", approval, 1600)
    submit = SubmitOrder(symbol=SYM, action_id="r:1", intent=OrderIntent.ENTRY, side=Side.BUY, qty=D("1"),
                         order_type=OrderType.MARKET, limit_price=None, reduce_only=False, ts_event_ns=0)
    worker.emitted(env(21, submit, f"{SYM}/position", causation=20), ())  # submitted 1030
    place = PlaceOrder(symbol=SYM, client_order_id="c1", side=Side.BUY, qty=D("1"), order_type=OrderType.MARKET,
                       limit_price=None, reduce_only=False, ts_event_ns=0)
    worker.emitted(env(22, place, f"{SYM}/executor", causation=21), ())  # placed 1040

    (rec,) = join(worker.report(), coord.report())
    assert rec == {"due": 500, "delivered": 600, "decided": 1000, "w_sent": 1100, "c_read": 1200,
                   "c_decoded": 1010, "c_handled": 1300, "c_approved": 1020, "c_sent": 1400, "w_read": 1500,
                   "w_handled": 1600, "w_submitted": 1030, "placed": 1040}
    assert list(rec) == list(HOPS)
    assert not worker.records and not coord.records  # finished records leave the open table


def test_an_order_without_the_coordinators_record_is_left_out() -> None:
    assert join([{"symbol": SYM, "data_ts_ns": 1, **{h: 0 for h in HOPS}}], []) == []

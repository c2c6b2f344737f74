"""``NodeLoop`` in simulated time on a list-backed port: what a node's turn sends, owes and waits for."""

from __future__ import annotations

from collections import deque
from dataclasses import replace

from arbor.actors.distributed.loop import (
    ACK_DELAY_S,
    INBOX_SLICE_S,
    LATENCY_EVERY_S,
    LIVENESS_EVERY_S,
    STATUS_EVERY_S,
    TURN_S,
    NodeLoop,
)
from arbor.actors.distributed.nodes import TICK_SLACK, idle_for
from arbor.adapters.link.session import LinkAck, LinkBatch, LinkReceiver, LinkSender


class Clock:
    """Simulated seconds; only ever moves forward."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        assert s >= 0
        self.t += s


class FakePort:
    """The data plane as the loop sees it; ``wait`` lets simulated time pass; ``refuse`` drops every send."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.inbox: deque[LinkBatch] = deque()
        self.acks: list[LinkAck] = []
        self.sent: list[tuple[str, LinkBatch | LinkAck]] = []
        self.refuse = False
        self.connected = False
        self.waited: list[float] = []

    def send(self, peer: str, msg: LinkBatch | LinkAck) -> bool:
        if self.refuse:
            return False
        self.sent.append((peer, msg))
        return True

    def pump(self) -> None:
        pass

    def pending(self) -> bool:
        return bool(self.inbox or self.acks)

    def wait(self, timeout: float) -> bool:
        self.waited.append(timeout)
        self.clock.advance(timeout)
        return False

    def receive(self) -> None:
        pass

    def take_connected(self) -> bool:
        was, self.connected = self.connected, False
        return was


class LinkCore:
    """A node core that only runs the link: delivered items are kept."""

    def __init__(self) -> None:
        self.sender = LinkSender("worker-0", epoch=1, window=64, max_batch=16)
        self.receiver = LinkReceiver()
        self.delivered: list[bytes] = []

    def on_ack(self, ack: LinkAck) -> None:
        self.sender.on_ack(ack)

    def on_batch(self, batch: LinkBatch) -> LinkAck | None:
        items, ack = self.receiver.on_batch(batch)
        self.delivered += items
        return ack

    def due(self) -> list[tuple[str, LinkBatch]]:
        return [("coordinator", b) for b in self.sender.due()]

    def rewind(self, peer: str) -> None:
        self.sender.rewind()

    def resync(self, peer: str) -> LinkAck | None:
        self.rewind(peer)
        return self.receiver.resync("coordinator")


def make(**kw) -> tuple[NodeLoop, LinkCore, FakePort, Clock]:
    clock = Clock()
    core, port = LinkCore(), FakePort(clock)
    kw.setdefault("ack_items", 16)
    loop = NodeLoop(core, port, peer_of=lambda b: "coordinator", clock=clock, **kw)
    return loop, core, port, clock


def batch(first_seq: int, n: int, ack: LinkAck | None = None) -> LinkBatch:
    return LinkBatch("coordinator", 4, first_seq, tuple(bytes([i]) for i in range(n)), ack)


def test_owed_ack_rides_on_the_next_batch():
    """An ack the node owes goes out on the next batch it sends that peer, not as a frame of its own."""
    loop, core, port, _ = make()
    loop.on_batch(batch(1, 3), "coordinator")
    core.sender.submit(b"verdict")
    loop.flush()
    ((peer, sent),) = port.sent
    assert peer == "coordinator" and sent.items == (b"verdict",) and sent.ack == LinkAck("coordinator", 4, 3)
    assert loop.owed() == {}


def test_owed_ack_goes_alone_once_its_delay_has_passed():
    """With nothing to send back, the owed ack goes alone at ACK_DELAY_S, not before."""
    loop, _, port, clock = make()
    loop.housekeeping()  # as every turn does: the liveness check is next due in LIVENESS_EVERY_S
    loop.on_batch(batch(1, 3), "coordinator")
    assert loop.next_wake(1.0) == ACK_DELAY_S  # the node turns again no later than the ack's deadline
    clock.advance(ACK_DELAY_S / 2)
    loop.flush()
    assert port.sent == []
    clock.advance(ACK_DELAY_S / 2)
    loop.flush()
    assert port.sent == [("coordinator", LinkAck("coordinator", 4, 3))] and loop.owed() == {}


def test_ack_covering_a_quarter_window_goes_at_once():
    """An ack that covers ``ack_items`` items (a quarter of the window) is not delayed."""
    loop, _, port, _ = make()
    loop.on_batch(batch(1, 10), "coordinator")
    loop.on_batch(batch(11, 6), "coordinator")
    loop.flush()
    assert port.sent == [("coordinator", LinkAck("coordinator", 4, 16))]


def test_a_gap_asks_for_a_resend_at_once():
    """A batch after a gap is answered with a resend request at once, and nothing stays owed."""
    loop, _, port, _ = make()
    loop.on_batch(batch(5, 2), "coordinator")
    ((_, ask),) = port.sent
    assert isinstance(ask, LinkAck) and ask.resend and loop.owed() == {}


def test_piggybacked_ack_releases_the_sender_window():
    """Acks the port filed (also those riding on batches) are applied before the batches it holds."""
    loop, core, port, _ = make()
    core.sender.submit_many(bytes([i]) for i in range(64))
    loop.flush()
    assert core.sender.in_flight == 64
    port.acks.append(LinkAck("worker-0", 1, 40))
    port.inbox.append(replace(batch(1, 2), ack=LinkAck("worker-0", 1, 40)))
    assert loop.inbox() is False
    assert core.sender.in_flight == 24 and core.sender.stats.acked == 40
    assert core.delivered == [b"\x00", b"\x01"]


def test_refused_batch_is_rewound_and_sent_again_first():
    """A batch the port refuses is not lost: the link rewinds and the next flush sends it, in order."""
    loop, core, port, _ = make()
    port.refuse = True
    core.sender.submit(b"one")
    loop.flush()
    assert core.sender.in_flight == 1 and core.sender.stats.rewinds == 1
    port.refuse = False
    core.sender.submit(b"two")
    loop.flush()
    assert [m.items for _, m in port.sent] == [(b"one",), (b"two",)]


def test_reconnect_resends_and_asks_for_what_was_missed():
    """When the port made its connection again, the loop resends what is unacknowledged and asks for the rest."""
    loop, core, port, _ = make()
    loop.on_batch(batch(1, 3), "coordinator")
    core.sender.submit(b"verdict")
    loop.flush()
    port.sent.clear()
    port.connected = True
    loop.inbox()
    assert ("coordinator", LinkAck("coordinator", 4, 3, resend=True)) in port.sent
    assert any(isinstance(m, LinkBatch) and m.items == (b"verdict",) for _, m in port.sent)


def test_held_links_send_nothing_until_released():
    """A Worker that does not know its Coordinator's port yet holds its traffic, then sends it all."""
    loop, core, port, _ = make()
    loop.held = True
    core.sender.submit(b"early")
    loop.flush()
    assert port.sent == []
    loop.held = False
    loop.flush()
    assert [m.items for _, m in port.sent] == [(b"early",)]


def test_split_batches_are_handled_item_by_item_and_sent_after_each():
    """The Coordinator's loop delivers a batch one item at a time, flushing what each produced."""
    loop, core, port, _ = make(split_batches=True)
    flushed: list[int] = []
    original = core.due

    def due() -> list[tuple[str, LinkBatch]]:
        flushed.append(len(core.delivered))
        return original()

    core.due = due
    loop.on_batch(batch(1, 3), "coordinator")
    assert core.delivered == [b"\x00", b"\x01", b"\x02"] and flushed == [1, 2, 3]


def test_inbox_stops_after_its_slice_and_says_more_is_left():
    """Batches are handled for at most INBOX_SLICE_S; what is left is reported, not dropped."""
    loop, core, port, clock = make()
    original = core.on_batch

    def slow(b: LinkBatch) -> LinkAck | None:
        clock.advance(INBOX_SLICE_S / 2)
        return original(b)

    core.on_batch = slow
    for k in range(4):
        port.inbox.append(batch(1 + k, 1))
    assert loop.inbox() is True and len(port.inbox) == 2
    assert loop.inbox() is False and len(core.delivered) == 4


def test_status_and_latency_files_are_due_on_their_own_periods():
    """The status is due every STATUS_EVERY_S, the latency file with every LATENCY_EVERY_S-th of them."""
    calls: list[tuple[float, bool]] = []
    clock_box: list[Clock] = []
    loop, _, _, clock = make(on_status=lambda lat: calls.append((clock_box[0](), lat)))
    clock_box.append(clock)
    start = clock()
    for _ in range(int(2 * LATENCY_EVERY_S / STATUS_EVERY_S) + 1):
        loop.housekeeping()
        clock.advance(STATUS_EVERY_S)
    assert len(calls) == int(2 * LATENCY_EVERY_S / STATUS_EVERY_S) + 1
    assert [round(t - start, 6) for t, lat in calls if lat] == [0.0, LATENCY_EVERY_S, 2 * LATENCY_EVERY_S]


def test_background_work_runs_when_due_after_waiting_decisions():
    """A due timer tick runs, but only after the frames already waiting were handled."""
    order: list[str] = []
    loop, core, port, _ = make(background=((lambda now: True, lambda now: order.append("tick")),))
    original = core.on_batch
    core.on_batch = lambda b: (order.append("batch"), original(b))[1]
    port.inbox.append(batch(1, 1))
    loop.housekeeping()
    assert order == ["batch", "tick"]


def test_turn_waits_on_the_port_for_work_due_within_it():
    """Work due within TURN_S is waited for on the data sockets; later work ends the turn with its delay."""
    waits = [TURN_S / 4, TURN_S / 4, 5 * TURN_S]
    loop, _, port, _ = make(work=lambda: waits.pop(0))
    assert loop.turn() == 5 * TURN_S
    assert port.waited == [TURN_S / 4, TURN_S / 4]


def test_commit_runs_after_the_turns_batches_went_out():
    """The state commit runs after the turn's batches were sent."""
    seen: list[int] = []
    loop, core, port, _ = make(work=lambda: 1.0)
    loop.commit = (lambda now: True, lambda now: seen.append(len(port.sent)))
    core.sender.submit(b"decision")
    loop.turn()
    assert seen == [1]


def test_overdue_reports_a_stalled_loop():
    """A loop whose last turn is older than the limit says by how much."""
    loop, _, _, clock = make(work=lambda: 1.0)
    loop.turn()
    clock.advance(0.05)
    assert loop.overdue(0.1) == 0.0
    clock.advance(0.1)
    assert abs(loop.overdue(0.1) - 0.15) < 1e-9


def test_an_idle_loop_sleeps_until_its_next_due_work_not_a_poll_period():
    """Nothing to do: the turn ends with the delay until the status or liveness check is due (no
    fixed poll), and the core's own next due work (``work()``) shortens it."""
    loop, _, port, clock = make(work=lambda: 10.0, on_status=lambda lat: None)
    assert loop.turn() == min(STATUS_EVERY_S, LIVENESS_EVERY_S)
    assert all(w == 0 for w in port.waited)  # nothing due within the turn: only the peeks before background work
    clock.advance(STATUS_EVERY_S / 2)
    assert loop.next_wake(10.0) == min(STATUS_EVERY_S, LIVENESS_EVERY_S) - STATUS_EVERY_S / 2
    assert loop.next_wake(0.01) == 0.01


def test_a_core_sleeps_until_its_ticks_or_commit_are_due():
    """A node core's ``idle_for``: the next timer tick (an idle node may run it TICK_SLACK of an
    interval late), the state commit if something is queued, at most the cap."""
    inf = float("inf")
    assert idle_for(10.0, 0.1, inf, 9.0, 0.1) == 0.1
    assert abs(idle_for(10.0, 0.1, inf, 9.99, 1.0) - (0.01 + 0.1 * TICK_SLACK)) < 1e-9
    assert idle_for(10.0, 0.1, 0.004, 9.99, 1.0) == 0.004  # a commit queued
    assert idle_for(10.0, 0.0, 0.004, 9.99, 0.002) == 0.002  # no ticks: only the commit and the cap


def test_with_no_turn_the_loop_never_waits_on_the_port():
    """``turn_s=0`` (``cluster.turn_ms = 0``): work due soon ends the turn with its delay at once;
    the node waits in thespian's watch of the data sockets instead of its own poll."""
    loop, _, port, _ = make(work=lambda: TURN_S / 4, turn_s=0.0)
    assert loop.turn() == TURN_S / 4
    assert all(w == 0 for w in port.waited)

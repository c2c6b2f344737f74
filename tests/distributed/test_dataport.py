"""A node's Waker (``actors.runtime.waker``) and data plane (``transport.ZmqPort``) on real pipes and sockets on 127.0.0.1."""

from __future__ import annotations

import os
import select
import socket
import time
from dataclasses import replace
from typing import Any

import msgpack
import pytest
import zmq
import zmq.utils.monitor
from arbor.actors.distributed.loop import ACK_DELAY_S, NodeLoop
from arbor.actors.runtime.waker import Waker
from arbor.actors.testing import eventually
from arbor.adapters.link.session import LinkAck, LinkBatch, LinkReceiver, LinkSender
from arbor.adapters.link.transport import ZmqPort, decode_frame, encode_frame, needs_curve

from tests.distributed.test_node_loop import LinkCore

HOST = "127.0.0.1"


# -- Waker --------------------------------------------------------------------------------------

class RecordingWaker(Waker):
    """A Waker that notes when (``time.monotonic()``) it rings."""

    def __init__(self) -> None:
        self.rung: list[float] = []
        super().__init__(on_ring=lambda: self.rung.append(time.monotonic()))


@pytest.fixture
def waker():
    w = RecordingWaker()
    yield w
    w.close()
    w.close_pipe()


def _readable(fd: int, timeout: float = 0.0) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def test_waker_rings_at_not_before_the_requested_time(waker):
    """``at(t)`` makes the pipe readable once ``time.monotonic()`` has reached ``t``, not earlier."""
    due = time.monotonic() + 0.1
    waker.at(due)
    assert _readable(waker.fd, timeout=3.0)
    assert len(waker.rung) == 1 and waker.rung[0] >= due
    waker.drain()
    assert not _readable(waker.fd)


def test_waker_now_rings_at_once_and_drain_clears(waker):
    """``now()`` makes the pipe readable before it returns, whatever was requested; ``drain()`` empties it."""
    waker.at(time.monotonic() + 30)
    waker.now()
    waker.now()
    assert _readable(waker.fd)
    waker.drain()
    assert not _readable(waker.fd)


def test_waker_earlier_request_replaces_a_later_one(waker):
    """A request earlier than the pending one wakes the timer thread: it rings at the new time."""
    waker.at(time.monotonic() + 30)
    due = time.monotonic() + 0.05
    waker.at(due)
    assert _readable(waker.fd, timeout=3.0)
    assert waker.rung[0] >= due


def test_waker_later_request_replaces_an_earlier_one(waker):
    """A later request replaces an earlier one: one ring, at the later time."""
    first = time.monotonic() + 0.05
    waker.at(first)
    later = first + 0.15
    waker.at(later)
    assert _readable(waker.fd, timeout=3.0)
    assert len(waker.rung) == 1 and waker.rung[0] >= later


def test_waker_close_stops_its_thread(waker):
    """``close()`` ends the timer thread, even with a request pending."""
    waker.at(time.monotonic() + 30)
    assert waker.running
    waker.close()
    eventually(lambda: not waker.running, timeout=2.0)
    assert waker.rung == []


# -- the data plane: ZmqPort ----------------------------------------------------------------------

@pytest.fixture
def open_port():
    """``make(role, name, host, curve)``: a ZmqPort closed after the test."""
    ports: list[ZmqPort] = []

    def make(role: str = "coordinator", name: str = "coordinator", host: str = HOST,
             curve: bool | None = None, **keys: Any) -> ZmqPort:
        p = ZmqPort(role, name, host, curve, **keys)
        ports.append(p)
        return p

    yield make
    for p in ports:
        p.close()


@pytest.fixture
def pair(open_port):
    """A Coordinator's ROUTER and worker-0's DEALER connected to it."""

    def make(curve: bool | None = None) -> tuple[ZmqPort, ZmqPort]:
        c = open_port(curve=curve)
        w = open_port("worker", "worker-0", curve=curve)
        if c.curve:
            c.set_peer("worker-0", (w.public_key,))  # what WorkerUp carries
        w.set_peer("coordinator", c.endpoint)  # what CoordinatorUp carries
        return c, w

    return make


def serve(*ports: ZmqPort) -> None:
    """One turn of each port, as the node's thread does it: read whatever is waiting."""
    for p in ports:
        p.receive()


def until(condition, *ports: ZmqPort, timeout: float = 5.0) -> None:
    """Serve ``ports`` until ``condition()`` holds (bounded)."""

    def turn() -> bool:
        serve(*ports)
        return condition()

    eventually(turn, timeout=timeout, interval=0.001)


def batches(n: int, link: str = "worker-0", epoch: int = 3, size: int = 40) -> list[LinkBatch]:
    out, seq = [], 1
    for k in range(n):
        items = tuple(bytes([k % 256]) * (size + k % 7) for _ in range(1 + k % 5)) + (b"",)
        ack = LinkAck("coordinator", 9, k) if k % 3 == 0 else None
        out.append(LinkBatch(link, epoch, seq, items, ack))
        seq += len(items)
    return out


def test_frames_arrive_intact_and_in_order(pair):
    """Batches (with and without a piggybacked ack) and acks a Worker sends arrive equal, in order."""
    c, w = pair()
    sent = batches(500)
    alone = [LinkAck("coordinator", 9, 1000 + k) for k in range(50)]
    for k, m in enumerate(sent):
        assert w.send("coordinator", m)
        if k % 10 == 0:
            assert w.send("coordinator", alone[k // 10])
    until(lambda: len(c.inbox) == 500 and len(c.acks) == 50 + 167, c)
    # A piggybacked ack is handed over once, with the acks (applied ahead of the batches).
    assert list(c.inbox) == [replace(m, ack=None) for m in sent]
    expected_acks = []
    for k, m in enumerate(sent):
        if m.ack is not None:
            expected_acks.append(m.ack)
        if k % 10 == 0:
            expected_acks.append(alone[k // 10])
    assert c.acks == expected_acks
    assert w.stats["frames_out"] == 550 and c.stats["frames_in"] == 550 and c.stats["bad_frames"] == 0


def test_coordinator_reaches_a_worker_once_it_has_connected(pair):
    """The ROUTER routes by the Worker's link name; before the Worker is connected a send is refused."""
    c, w = pair()
    assert not c.send("worker-7", LinkAck("coordinator", 1, 1))  # nobody of that name
    assert c.stats["send_refused"] == 1
    assert w.send("coordinator", LinkAck("worker-0", 1, 1))
    until(lambda: len(c.acks) == 1, c)
    for k in range(100):
        assert c.send("worker-0", LinkBatch("coordinator>worker-0", 1, 1 + k, (b"verdict",)))
    until(lambda: len(w.inbox) == 100, w)
    assert [m.first_seq for m in w.inbox] == list(range(1, 101))


def test_megabytes_arrive_in_order(pair):
    """10 MiB of batches queued at once arrive complete and in order."""
    c, w = pair()
    big = [LinkBatch("w", 1, 1 + 4 * k, tuple(os.urandom(64 << 10) for _ in range(4))) for k in range(40)]
    for m in big:
        assert w.send("coordinator", m)
    until(lambda: len(c.inbox) == len(big), c, timeout=10.0)
    assert list(c.inbox) == big


def test_link_over_the_data_plane_delivers_once_in_order(pair):
    """A LinkSender/LinkReceiver pair talking through the data plane delivers 5,000 items once, in order."""
    c, w = pair()
    tx, rx = LinkSender("worker-0", epoch=1, window=1024, max_batch=64), LinkReceiver()
    tx.submit_many(i.to_bytes(4, "big") for i in range(5_000))
    got: list[int] = []

    def turn() -> bool:
        for m in tx.due():
            assert w.send("coordinator", m)
        serve(w, c)
        while c.inbox:
            items, ack = rx.on_batch(c.inbox.popleft())
            got.extend(int.from_bytes(x, "big") for x in items)
            c.send("worker-0", ack)
        for ack in w.acks:
            tx.on_ack(ack)
        w.acks.clear()
        return tx.idle

    eventually(turn, timeout=10.0, interval=0.001)
    assert got == list(range(5_000))


def test_worker_connect_does_not_wait_for_the_coordinator(open_port):
    """A Worker's connect returns at once with nobody listening; what it queued meanwhile arrives once the Coordinator binds."""
    probe = socket.create_server((HOST, 0))
    port = probe.getsockname()[1]
    probe.close()
    w = open_port("worker", "worker-0")
    started = time.monotonic()
    w.set_peer("coordinator", (HOST, port, ""))
    for k in range(10):
        assert w.send("coordinator", LinkAck("worker-0", 1, k))
    assert time.monotonic() - started < 0.5  # asynchronous: no connect ran on this thread
    router = zmq.Context.instance().socket(zmq.ROUTER)
    try:
        router.bind(f"tcp://{HOST}:{port}")
        assert router.poll(5000) & zmq.POLLIN
        got = [decode_frame(router.recv_multipart()[-1]) for _ in range(10)]
        assert got == [LinkAck("worker-0", 1, k) for k in range(10)]
    finally:
        router.close(0)


def test_a_restarted_worker_takes_over_its_name(pair, open_port):
    """A new Worker process of the same slot replaces the old one's connection at the Coordinator."""
    c, w = pair()
    assert w.send("coordinator", LinkAck("worker-0", 1, 1))
    until(lambda: len(c.acks) == 1, c)
    w.close()
    w2 = open_port("worker", "worker-0")
    w2.set_peer("coordinator", c.endpoint)
    assert w2.send("coordinator", LinkAck("worker-0", 2, 1))
    until(lambda: len(c.acks) == 2, c)

    def reached() -> bool:
        c.send("worker-0", LinkAck("coordinator>worker-0", 5, 1))
        w2.receive()
        return bool(w2.acks)

    eventually(reached, timeout=5.0, interval=0.01)
    assert set(w2.acks) == {LinkAck("coordinator>worker-0", 5, 1)}


def test_garbage_is_counted_and_dropped_and_the_port_keeps_serving(pair):
    """Unreadable frames, wrong shapes and unknown tags are counted and dropped; good frames still arrive in order."""
    c, w = pair()
    junk = zmq.Context.instance().socket(zmq.DEALER)
    junk.setsockopt(zmq.LINGER, 0)
    junk.connect(f"tcp://{c.endpoint[0]}:{c.endpoint[1]}")
    try:
        for raw in (b"\xc1\xc1", msgpack.packb([0]), msgpack.packb({"link": "w"}),
                    msgpack.packb([0, "w", 1, 1, ["text, not bytes"], None]), msgpack.packb([1, "w", "one", 1, False]), msgpack.packb([1, "w", 1, 7]),
                    msgpack.packb([7, "w", 1, 99])):
            junk.send(raw)
        junk.send(msgpack.packb([1, "w", 1, 7, False]))  # a well-formed ack on the same connection still counts
        for k in range(20):
            assert w.send("coordinator", LinkBatch("worker-0", 1, 1 + k, (b"decision",)))
        until(lambda: len(c.inbox) == 20 and c.stats["bad_frames"] == 7 and c.acks, c)
        assert c.acks == [LinkAck("w", 1, 7)]
        assert [m.first_seq for m in c.inbox] == list(range(1, 21))
    finally:
        junk.close(0)


def test_port_binds_only_the_configured_host(open_port):
    """The Coordinator listens on ``bind_host`` alone: not on 0.0.0.0, not on another local address."""
    c = open_port(host="127.0.0.2")  # Linux routes all of 127/8 to lo
    host, port, _ = c.endpoint
    assert host == "127.0.0.2"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, port), timeout=2.0).close()
    socket.create_connection(("127.0.0.2", port), timeout=2.0).close()


def test_curve_is_used_exactly_beyond_loopback():
    """Loopback binds are plain; any other address, or a host name, is CURVE."""
    assert [needs_curve(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost")] == [False] * 4
    assert [needs_curve(h) for h in ("10.0.0.1", "0.0.0.0", "192.168.1.5", "node-a")] == [True] * 4


def test_curve_link_carries_traffic_and_refuses_an_unannounced_worker(pair, open_port):
    """Under CURVE an announced Worker's frames arrive both ways; a Worker whose key nobody announced fails authentication."""
    c, w = pair(curve=True)
    assert c.curve and c.endpoint[2] and w.public_key
    assert w.send("coordinator", LinkAck("worker-0", 1, 1))
    until(lambda: c.acks == [LinkAck("worker-0", 1, 1)], c)
    assert c.send("worker-0", LinkAck("coordinator>worker-0", 1, 3))
    until(lambda: w.acks == [LinkAck("coordinator>worker-0", 1, 3)], w)

    stranger = zmq.Context.instance().socket(zmq.DEALER)  # knows the server's key, was never announced
    stranger.setsockopt(zmq.LINGER, 0)
    stranger.curve_publickey, stranger.curve_secretkey = zmq.curve_keypair()
    stranger.curve_serverkey = c.endpoint[2].encode()
    monitor = stranger.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_SUCCEEDED)
    try:
        stranger.connect(f"tcp://{c.endpoint[0]}:{c.endpoint[1]}")
        stranger.send(encode_frame(LinkAck("worker-1", 1, 1)))
        assert monitor.poll(5000) & zmq.POLLIN
        event = zmq.utils.monitor.recv_monitor_message(monitor)
        assert event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH
    finally:
        stranger.disable_monitor()
        monitor.close(0)
        stranger.close(0)
    serve(c)
    assert c.acks == [LinkAck("worker-0", 1, 1)]


# -- a node's acks: piggybacked on its batches, or alone after a short delay --------------------

@pytest.fixture
def node(open_port):
    """A node's ``NodeLoop`` over a link core, whose real data port talks to ``node.peer``."""
    from types import SimpleNamespace

    port, peer = open_port("worker", "worker-0"), open_port()
    port.set_peer("coordinator", peer.endpoint)
    loop = NodeLoop(LinkCore(), port, peer_of=lambda b: "coordinator", ack_items=16)
    return SimpleNamespace(loop=loop, core=loop.core, port=port, peer=peer)


def _from_coordinator(first_seq: int, n: int) -> LinkBatch:
    return LinkBatch("coordinator", 4, first_seq, tuple(bytes([i]) for i in range(n)))


def test_node_ack_rides_on_its_next_batch(node):
    """An ack the node owes goes out on the next batch it sends that peer, not as a frame of its own."""
    node.loop.on_batch(_from_coordinator(1, 3), "coordinator")
    node.core.sender.submit(b"verdict")
    node.loop.flush()
    until(lambda: len(node.peer.inbox) == 1, node.port, node.peer)
    (batch,) = node.peer.inbox
    # One frame went out, and the receiving port took the ack off it (it applies acks first).
    assert batch.items == (b"verdict",) and batch.ack is None
    assert node.peer.acks == [LinkAck("coordinator", 4, 3)]
    assert node.port.stats["frames_out"] == 1 and node.loop.owed() == {}


def test_node_ack_goes_alone_after_its_delay(node):
    """With nothing to send back, the owed ack goes alone once it has waited its delay (ACK_DELAY_S)."""
    assert node.loop.ack_delay_s == ACK_DELAY_S
    node.loop.housekeeping()  # as every turn does: the liveness check is next due later than the ack
    start = time.monotonic()
    node.loop.on_batch(_from_coordinator(1, 3), "coordinator")
    assert 0 < node.loop.next_wake(1.0) <= ACK_DELAY_S  # the node's next poll is no later than the ack's deadline

    def sent() -> bool:
        node.loop.flush()
        return node.port.stats["frames_out"] == 1

    eventually(sent, timeout=2.0, interval=0.001)
    assert time.monotonic() - start >= ACK_DELAY_S
    until(lambda: node.peer.acks == [LinkAck("coordinator", 4, 3)], node.peer)
    assert list(node.peer.inbox) == []


def test_node_ack_goes_at_once_when_a_quarter_window_is_owed(node):
    """An ack covering a quarter of the window (here 16 items) is not delayed."""
    node.loop.on_batch(_from_coordinator(1, 10), "coordinator")
    node.loop.on_batch(_from_coordinator(11, 6), "coordinator")
    node.loop.flush()
    assert node.port.stats["frames_out"] == 1 and node.loop.owed() == {}
    until(lambda: node.peer.acks == [LinkAck("coordinator", 4, 16)], node.port, node.peer)


def test_node_piggybacked_ack_releases_its_sender_window(node):
    """A batch arriving with an ack for the node's own link releases its window, like a standalone ack."""
    node.core.sender.submit_many(bytes([i]) for i in range(64))
    node.loop.flush()
    assert node.core.sender.in_flight == 64
    node.port.acks.append(LinkAck("worker-0", 1, 40))  # as DataPort.receive files a piggybacked ack
    node.port.inbox.append(replace(_from_coordinator(1, 2), ack=LinkAck("worker-0", 1, 40)))
    node.loop.inbox()
    assert node.core.sender.in_flight == 24 and node.core.sender.stats.acked == 40
    assert node.core.delivered == [b"\x00", b"\x01"]


def test_node_refused_batch_is_rewound_and_sent_again_in_order(node):
    """A batch zmq refuses (no connection) is not lost: the link rewinds and the next flush sends it, first."""
    node.port.drop_peer("coordinator")  # no socket: every send is refused
    node.core.sender.submit(b"one")
    node.loop.flush()
    assert node.core.sender.in_flight == 1 and node.core.sender.stats.rewinds == 1
    node.port.set_peer("coordinator", node.peer.endpoint)
    node.core.sender.submit(b"two")
    node.loop.flush()
    until(lambda: len(node.peer.inbox) == 2, node.peer)
    assert [b.items for b in node.peer.inbox] == [(b"one",), (b"two",)]


def test_node_resyncs_on_reconnect(node):
    """When the node's connection is made, it resends what is unacknowledged and asks the peer for what it missed."""
    node.loop.on_batch(_from_coordinator(1, 3), "coordinator")
    node.core.sender.submit(b"verdict")
    node.loop.flush()
    until(lambda: len(node.peer.inbox) == 1, node.peer)

    def resent() -> bool:
        node.loop.inbox()  # takes the handshake the port saw
        node.peer.receive()
        return len(node.peer.inbox) >= 2

    eventually(resent, timeout=5.0, interval=0.01)
    assert node.peer.inbox[-1].items == (b"verdict",)
    assert LinkAck("coordinator", 4, 3, resend=True) in node.peer.acks


def test_curve_worker_with_its_slots_key_gets_through_before_any_worker_up(open_port):
    """The supervisor hands each slot's key pair out at start (the Coordinator gets the public keys):
    a Worker that connects before its WorkerUp reached the Coordinator is not refused."""
    public, secret = (k.decode() for k in zmq.curve_keypair())
    c = open_port(curve=True, allowed=(public,))
    w = open_port("worker", "worker-0", curve=True, keypair=(public, secret))
    assert w.public_key == public
    w.set_peer("coordinator", c.endpoint)  # no c.set_peer: WorkerUp has not come yet
    assert w.send("coordinator", LinkAck("worker-0", 1, 1))
    until(lambda: c.acks == [LinkAck("worker-0", 1, 1)], c)

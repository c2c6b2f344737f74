"""A node's Waker and data port (``actors.distributed.system``) on real pipes and sockets on 127.0.0.1."""

from __future__ import annotations

import os
import select
import socket
import time
from dataclasses import replace

import msgpack
import pytest
from arbor.actors.distributed.link import LinkAck, LinkBatch, LinkReceiver, LinkSender
from arbor.actors.distributed.system import DataPort, Waker, _Out
from arbor.actors.testing import eventually

HOST = "127.0.0.1"


# -- Waker --------------------------------------------------------------------------------------

class RecordingWaker(Waker):
    """A Waker that notes when (``time.monotonic()``) it rings."""

    def __init__(self) -> None:
        self.rung: list[float] = []
        super().__init__()

    def _ring(self) -> None:
        self.rung.append(time.monotonic())
        super()._ring()


@pytest.fixture
def waker():
    w = RecordingWaker()
    yield w
    w.close()
    w._thread.join(2.0)
    os.close(w.fd)
    os.close(w._w)


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
    assert waker._thread.is_alive()
    waker.close()
    eventually(lambda: not waker._thread.is_alive(), timeout=2.0)
    assert waker.rung == []


# -- DataPort -----------------------------------------------------------------------------------

@pytest.fixture
def open_port():
    ports: list[DataPort] = []

    def make(host: str = HOST) -> DataPort:
        p = DataPort(host)
        ports.append(p)
        return p

    yield make
    for p in ports:
        p.close()


def serve(*ports: DataPort) -> None:
    """One turn of each port, as the node's thread does it: read what is ready, flush what is queued."""
    for p in ports:
        ready, _, _ = select.select(p.fds(), [], [], 0)
        p.receive(ready)
        p.pump()


def until(condition, *ports: DataPort, timeout: float = 5.0) -> None:
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


def test_frames_arrive_intact_and_in_order(open_port):
    """Batches (with and without a piggybacked ack) and acks sent to a peer arrive equal, in order."""
    a, b = open_port(), open_port()
    a.set_peer("b", b.endpoint)
    sent = batches(500)
    alone = [LinkAck("coordinator", 9, 1000 + k) for k in range(50)]
    for k, m in enumerate(sent):
        assert a.send("b", m)
        if k % 10 == 0:
            assert a.send("b", alone[k // 10])
    until(lambda: len(b.inbox) == 500 and len(b.acks) == 50 + 167, a, b)
    # A piggybacked ack is handed over once, with the acks (applied ahead of the batches).
    assert list(b.inbox) == [replace(m, ack=None) for m in sent]
    expected_acks = []
    for k, m in enumerate(sent):
        if m.ack is not None:
            expected_acks.append(m.ack)
        if k % 10 == 0:
            expected_acks.append(alone[k // 10])
    assert b.acks == expected_acks
    assert a.stats["frames_out"] == 550 and b.stats["frames_in"] == 550 and b.stats["bad_frames"] == 0
    assert a.stats["fallbacks"] == 0


def test_megabytes_beyond_the_socket_buffer_are_flushed_by_pump(open_port):
    """Frames the kernel did not take wait in the port's buffer and go out, in order, as the node pumps."""
    a, b = open_port(), open_port()
    a.set_peer("b", b.endpoint)
    big = [LinkBatch("w", 1, 1 + 4 * k, tuple(os.urandom(64 << 10) for _ in range(4))) for k in range(40)]  # 10 MiB
    for m in big:
        assert a.send("b", m)
    until(lambda: len(b.inbox) == len(big), a, b, timeout=10.0)
    assert list(b.inbox) == big


def test_link_over_the_data_port_delivers_once_in_order(open_port):
    """A LinkSender/LinkReceiver pair talking through two data ports delivers 5,000 items once, in order."""
    a, b = open_port(), open_port()
    a.set_peer("b", b.endpoint)
    b.set_peer("a", a.endpoint)
    tx, rx = LinkSender("a", epoch=1, window=1024, max_batch=64), LinkReceiver()
    tx.submit_many(i.to_bytes(4, "big") for i in range(5_000))
    got: list[int] = []

    def turn() -> bool:
        now = time.monotonic()
        for m in tx.due(now):
            assert a.send("b", m)
        serve(a, b)
        while b.inbox:
            items, ack = rx.on_batch(b.inbox.popleft())
            got.extend(int.from_bytes(x, "big") for x in items)
            b.send("a", ack)
        for ack in a.acks:
            tx.on_ack(ack, now)
        a.acks.clear()
        return tx.idle

    eventually(turn, timeout=10.0, interval=0.001)
    assert got == list(range(5_000))


def test_sender_that_disconnects_is_closed_cleanly_by_the_receiver(open_port):
    """When the sending port closes, the receiving port drops that connection and keeps listening."""
    a, b = open_port(), open_port()
    a.set_peer("b", b.endpoint)
    assert a.send("b", LinkAck("a", 1, 1))
    until(lambda: len(b.acks) == 1 and len(b.fds()) == 2, a, b)
    a.close()
    until(lambda: b.fds() == [b.listener.fileno()], b)
    c = open_port()
    c.set_peer("b", b.endpoint)
    assert c.send("b", LinkAck("c", 1, 1))
    until(lambda: len(b.acks) == 2, c, b)
    assert b.acks[-1] == LinkAck("c", 1, 1)


def test_sends_to_a_peer_that_is_gone_fail_and_a_new_endpoint_works(open_port):
    """Sends to a closed peer soon return False (the caller falls back to thespian); its successor's port works."""
    a, b = open_port(), open_port()
    a.set_peer("b", b.endpoint)
    assert a.send("b", LinkAck("a", 1, 1))
    until(lambda: len(b.acks) == 1, a, b)
    b.close()
    k = 0

    def refused() -> bool:
        nonlocal k
        k += 1
        return not a.send("b", LinkAck("a", 1, 1 + k))

    eventually(refused, timeout=5.0)  # the first sends may be taken by the kernel before the reset
    assert a.stats["fallbacks"] >= 1
    assert not a.send("b", LinkAck("a", 1, 0))  # no reconnection attempt storm: still refused
    b2 = open_port()
    a.set_peer("b", b2.endpoint)  # the restarted peer announces its new data port
    assert a.send("b", LinkAck("a", 2, 1))
    until(lambda: b2.acks == [LinkAck("a", 2, 1)], a, b2)


def test_connection_refused_is_retried_after_a_pause():
    """An _Out whose peer is not listening returns False, and connects once the peer listens again."""
    probe = socket.create_server((HOST, 0))
    port = probe.getsockname()[1]
    probe.close()
    out = _Out(HOST, port)
    frame = b"\x00\x00\x00\x01\xc0"
    try:
        assert not out.send(frame)
        assert not out.send(frame)  # within the retry pause: not even tried
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((HOST, port))
        server.listen(1)
        try:
            eventually(lambda: out.send(frame), timeout=3.0, interval=0.01)
            conn, _ = server.accept()
            conn.settimeout(2.0)
            assert conn.recv(16) == frame
            conn.close()
        finally:
            server.close()
    finally:
        out.close()


def test_same_endpoint_keeps_the_connection_and_none_drops_the_peer(open_port):
    """Re-announcing the same endpoint keeps the connection; an empty endpoint drops the peer (thespian fallback)."""
    a, b = open_port(), open_port()
    a.set_peer("b", b.endpoint)
    assert a.send("b", LinkAck("a", 1, 1))
    until(lambda: len(b.fds()) == 2 and len(b.acks) == 1, a, b)
    a.set_peer("b", list(b.endpoint))  # as it comes out of a decoded message
    assert a.send("b", LinkAck("a", 1, 2))
    until(lambda: len(b.acks) == 2, a, b)
    assert len(b.fds()) == 2  # still the one connection
    a.set_peer("b", ())
    assert not a.send("b", LinkAck("a", 1, 3))
    assert a.stats["fallbacks"] == 1
    until(lambda: len(b.fds()) == 1, b)


def test_a_peer_that_never_reads_is_disconnected_at_the_buffer_bound(open_port, monkeypatch):
    """Past ``MAX_BUFFERED`` queued bytes the connection is closed and the send refused; the next send reconnects."""
    monkeypatch.setattr(_Out, "MAX_BUFFERED", 1 << 20)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    server.bind((HOST, 0))
    server.listen(4)
    server.settimeout(2.0)
    a = open_port()
    a.set_peer("slow", server.getsockname())
    frame = LinkBatch("w", 1, 1, (bytes(60 << 10),))
    try:
        assert a.send("slow", frame)
        conn, _ = server.accept()  # accepted, never read
        sent = 1
        while a.send("slow", frame):
            sent += 1
            assert sent < 2_000, "the buffer bound never closed the connection"
        assert a.stats["fallbacks"] == 1
        assert select.select([server], [], [], 0)[0] == []  # it was the bound, on the one connection
        # The kernel holds at most a few MiB for an unread socket; the rest waited in the port's buffer.
        assert sent * len(frame.items[0]) > 1 << 20
        conn.settimeout(2.0)
        drained = 0
        while True:  # the peer sees the connection end after what the kernel had taken
            try:
                chunk = conn.recv(1 << 20)
            except ConnectionResetError:
                break
            if not chunk:
                break
            drained += len(chunk)
        assert drained < sent * (len(frame.items[0]) + 64)  # some frames were lost: the link resends them
        conn.close()
        assert a.send("slow", frame)  # a fresh connection
        conn2, _ = server.accept()
        conn2.close()
    finally:
        server.close()


def _frame_bytes(obj) -> bytes:
    body = msgpack.packb(obj, use_bin_type=True)
    return len(body).to_bytes(4, "big") + body


def test_garbage_is_counted_and_dropped_and_the_port_keeps_serving(open_port):
    """Unreadable frames are counted and dropped; an oversized length closes that connection; others are served."""
    a, b = open_port(), open_port()
    a.set_peer("b", b.endpoint)
    junk = socket.create_connection(b.endpoint, timeout=2.0)
    probe = socket.create_connection(b.endpoint, timeout=2.0)
    try:
        junk.sendall(b"\x00\x00\x00\x05\xc1\xc1\xc1\xc1\xc1")  # 0xc1: never valid msgpack
        junk.sendall(_frame_bytes([0]))  # too short for a batch
        junk.sendall(_frame_bytes({"link": "w"}))
        junk.sendall(_frame_bytes([0, "w", 1, 1, ["text, not bytes"], None]))
        junk.sendall(_frame_bytes([1, "w", "one", 1]))
        junk.sendall(_frame_bytes([1, "w", 1, 7]))  # a well-formed ack on the same connection still counts
        probe.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # a length of 1.2 GB: the connection is closed
        for k in range(20):
            assert a.send("b", LinkBatch("a", 1, 1 + k, (b"decision",)))
        until(lambda: len(b.inbox) == 20 and b.stats["bad_frames"] == 6, a, b)
        assert b.acks == [LinkAck("w", 1, 7)]
        assert [m.first_seq for m in b.inbox] == list(range(1, 21))
        assert b.stats["frames_in"] == 21
        assert probe.recv(16) == b""  # the port hung up on the HTTP probe
        until(lambda: len(b.fds()) == 3, a, b)  # the listener, a's connection and the junk one
    finally:
        junk.close()
        probe.close()


def test_a_frame_with_an_unknown_tag_is_rejected(open_port):
    """A msgpack array whose tag is neither 0 (batch) nor 1 (ack) is a bad frame, not an ack."""
    b = open_port()
    junk = socket.create_connection(b.endpoint, timeout=2.0)
    try:
        junk.sendall(_frame_bytes([7, "w", 1, 99]))
        until(lambda: b.stats["frames_in"] + b.stats["bad_frames"] == 1, b)
        assert b.stats["bad_frames"] == 1 and b.acks == []
    finally:
        junk.close()


def test_port_binds_only_the_configured_host(open_port):
    """The data port listens on ``bind_host`` alone: not on 0.0.0.0, not on another local address."""
    p = open_port(HOST)
    assert p.endpoint == (HOST, p.listener.getsockname()[1])
    assert p.listener.getsockname()[0] == HOST
    q = open_port("127.0.0.2")  # Linux routes all of 127/8 to lo
    port = q.endpoint[1]
    assert q.listener.getsockname() == ("127.0.0.2", port)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, port), timeout=2.0).close()
    socket.create_connection(("127.0.0.2", port), timeout=2.0).close()


# -- a node's acks: piggybacked on its batches, or alone after a short delay --------------------

class LinkCore:
    """The part of a node core the shim's link plumbing calls: one sender, one receiver."""

    def __init__(self) -> None:
        self.sender = LinkSender("worker-0", epoch=1, window=64, max_batch=16)
        self.receiver = LinkReceiver()
        self.delivered: list[bytes] = []

    def on_ack(self, ack: LinkAck) -> None:
        self.sender.on_ack(ack, time.monotonic())

    def on_batch(self, batch: LinkBatch) -> LinkAck | None:
        items, ack = self.receiver.on_batch(batch)
        self.delivered += items
        return ack

    def due(self) -> list[tuple[str, LinkBatch]]:
        return [("coordinator", b) for b in self.sender.due(time.monotonic())]


@pytest.fixture
def node(open_port):
    """A Worker shim (no thespian system) with a link core, whose data port talks to ``node.peer``."""
    from types import SimpleNamespace

    from arbor.actors.distributed.system import WorkerActor

    w = WorkerActor()
    w._init_node()
    w._link_params(SimpleNamespace(cluster=SimpleNamespace(link_rto_ms=100, link_window=64)))
    w.core = LinkCore()
    w._data = open_port()
    w.peer = open_port()
    w._data.set_peer("coordinator", w.peer.endpoint)
    yield w
    w._waker.close()
    w._waker._thread.join(2.0)
    os.close(w._waker.fd)
    os.close(w._waker._w)


def _from_coordinator(first_seq: int, n: int) -> LinkBatch:
    return LinkBatch("coordinator", 4, first_seq, tuple(bytes([i]) for i in range(n)))


def test_node_ack_rides_on_its_next_batch(node):
    """An ack the node owes goes out on the next batch it sends that peer, not as a frame of its own."""
    node._on_batch(_from_coordinator(1, 3), "coordinator")
    node.core.sender.submit(b"verdict")
    node._flush()
    until(lambda: len(node.peer.inbox) == 1, node._data, node.peer)
    (batch,) = node.peer.inbox
    # One frame went out, and the receiving port took the ack off it (it applies acks first).
    assert batch.items == (b"verdict",) and batch.ack is None
    assert node.peer.acks == [LinkAck("coordinator", 4, 3)]
    assert node._data.stats["frames_out"] == 1 and node._acks == {}


def test_node_ack_goes_alone_within_a_quarter_of_the_timeout(node):
    """With nothing to send back, the owed ack goes alone once it has waited its delay (at most rto/4)."""
    assert node._ack_delay_s == 0.025  # link_rto_ms = 100
    start = time.monotonic()
    node._on_batch(_from_coordinator(1, 3), "coordinator")
    assert 0 < node._next_wake(1.0) <= 0.025  # the node's next poll is no later than the ack's deadline

    def sent() -> bool:
        node._flush()
        return node._data.stats["frames_out"] == 1

    eventually(sent, timeout=2.0, interval=0.001)
    assert time.monotonic() - start >= 0.025
    until(lambda: node.peer.acks == [LinkAck("coordinator", 4, 3)], node.peer)
    assert list(node.peer.inbox) == []


def test_node_ack_goes_at_once_when_a_quarter_window_is_owed(node):
    """An ack covering a quarter of the window (here 16 items) is not delayed."""
    node._on_batch(_from_coordinator(1, 10), "coordinator")
    node._on_batch(_from_coordinator(11, 6), "coordinator")
    node._flush()
    assert node._data.stats["frames_out"] == 1 and node._acks == {}
    until(lambda: node.peer.acks == [LinkAck("coordinator", 4, 16)], node._data, node.peer)


def test_node_piggybacked_ack_releases_its_sender_window(node):
    """A batch arriving with an ack for the node's own link releases its window, like a standalone ack."""
    node.core.sender.submit_many(bytes([i]) for i in range(64))
    node._flush()
    assert node.core.sender.in_flight == 64
    node._data.acks.append(LinkAck("worker-0", 1, 40))  # as DataPort.receive files a piggybacked ack
    node._data.inbox.append(replace(_from_coordinator(1, 2), ack=LinkAck("worker-0", 1, 40)))
    node._inbox()
    assert node.core.sender.in_flight == 24 and node.core.sender.stats.acked == 40
    assert node.core.delivered == [b"\x00", b"\x01"]

"""Link traffic between nodes over ZeroMQ: a ROUTER on the Coordinator, a DEALER per Worker.

The Coordinator binds one ROUTER on ``cluster.bind_host`` (an ephemeral port) and announces
``(host, port, server_key)`` in ``Started.data``; each Worker connects one DEALER to it (its
identity is its link name, ``worker-K``), learning the endpoint from ``CoordinatorUp``. zmq
does the framing, the per-peer queues and the reconnection; its connect never blocks the node's
thread (a DEALER queues what it is given until the connection is up). Frames are msgpack arrays
(a ``LinkBatch`` or a ``LinkAck``), never pickles, and nothing here falls back to thespian: what
a broken connection loses, the link resends.

**Trust.** On a loopback bind the sockets are plain (only this host reaches them). On any other
bind the Coordinator is a CURVE server: traffic is encrypted, the Worker checks the server's
key (from ``CoordinatorUp``) and the Coordinator accepts only the Worker keys the supervisor
made for the run's slots (``StartCoordinator.worker_keys``, each Worker its slot's pair in
``StartWorker``; ZAP, on pyzmq's authenticator thread, which only reads that set). Known from
the Coordinator's start, a key is never refused because its ``WorkerUp`` came late (a refused
handshake is not retried by zmq).
The keys travel on thespian's control plane: the data plane is as trusted as that plane is.

``fd`` is zmq's edge-triggered notification descriptor: the node's thread must drain the socket
(``receive``) whenever ``pending()`` says so, not only when the descriptor is readable.
"""

from __future__ import annotations

import ipaddress
import select
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import msgpack
import zmq
from arbor.adapters.link.session import LinkAck, LinkBatch
from loguru import logger

HIGH_WATER = 100_000  # frames queued per peer before a send is refused (the link resends later)
RECONNECT_MS = 20


def needs_curve(host: str) -> bool:
    """A bind beyond loopback is encrypted and authenticated; ``localhost`` and 127/8, ::1 are not."""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a host name: whatever it resolves to, treat it as reachable from outside


class _AllowedKeys:
    """The Worker public keys the Coordinator accepts (called on the authenticator's thread)."""

    def __init__(self) -> None:
        self.keys: set[bytes] = set()

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self.keys


class ZmqPort:
    """One node's end of the data plane (see the module docstring); runs on the node's thread."""

    def __init__(self, role: str, name: str, host: str, curve: bool | None = None,
                 keypair: tuple[str, str] | tuple[()] = (), allowed: Iterable[str] = (),
                 trace: bool = False) -> None:
        """``keypair``: a Worker's CURVE (public, secret) keys, z85; ``allowed``: the Worker public
        keys a Coordinator accepts from the start (the supervisor makes one pair per slot);
        ``trace``: stamp each batch with the time it is sent (``cluster.trace_hops``)."""
        self.role, self.name, self.host = role, name, host
        self.trace = trace
        self.curve = needs_curve(host) if curve is None else curve
        self.ctx = zmq.Context(io_threads=1)
        self.inbox: deque[LinkBatch] = deque()  # received, not yet handled
        self.acks: list[LinkAck] = []  # received acks (also those riding on batches), handled first
        self.stats = {"frames_out": 0, "frames_in": 0, "send_refused": 0, "bad_frames": 0, "curve": self.curve}
        self._auth: Any = None
        self._allowed = _AllowedKeys()
        self._allowed.keys.update(k.encode() for k in allowed)
        self._public = self._secret = b""
        self._peer_endpoint: tuple = ()
        self.sock: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None  # a Worker's: handshakes with the Coordinator
        self._connects = 0  # handshakes seen and not yet taken (``take_connected``)
        if role == "coordinator":
            self._bind()
        elif keypair:
            self._public, self._secret = keypair[0].encode(), keypair[1].encode()
        else:  # a Worker always has a key: it may join a Coordinator that binds beyond loopback
            self._public, self._secret = zmq.curve_keypair()

    # -- set-up ---------------------------------------------------------------------------------
    def _bind(self) -> None:
        s = self.ctx.socket(zmq.ROUTER)
        s.setsockopt(zmq.ROUTER_MANDATORY, 1)  # an unknown peer is an error, not a silent drop
        s.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a restarted Worker takes over its identity
        self._common(s)
        if self.curve:
            from zmq.auth.thread import ThreadAuthenticator

            self._auth = ThreadAuthenticator(self.ctx)
            self._auth.start()
            self._auth.configure_curve_callback(domain="*", credentials_provider=self._allowed)
            self._public, self._secret = zmq.curve_keypair()
            s.curve_server = True
            s.curve_secretkey = self._secret
            s.curve_publickey = self._public
        port = s.bind_to_random_port(f"tcp://{self.host}")
        self.sock = s
        self.endpoint: tuple = (self.host, port, self._public.decode())

    @staticmethod
    def _common(s: zmq.Socket) -> None:
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDHWM, HIGH_WATER)
        s.setsockopt(zmq.RCVHWM, HIGH_WATER)
        s.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
        s.setsockopt(zmq.IMMEDIATE, 0)

    @property
    def public_key(self) -> str:
        """A Worker's CURVE public key, for ``Started.data``."""
        return self._public.decode()

    def fds(self) -> list[int]:
        return [int(self.sock.getsockopt(zmq.FD))] if self.sock is not None else []

    def set_peer(self, peer: str, endpoint: tuple) -> None:
        """A Worker: connect to the Coordinator at ``(host, port, server_key)`` (a new endpoint
        replaces the old connection). The Coordinator: accept ``peer``'s key ``(key,)``."""
        if self.role == "coordinator":
            if endpoint and endpoint[0]:
                self._allowed.keys.add(str(endpoint[0]).encode())
            return
        if not endpoint or tuple(endpoint) == self._peer_endpoint:
            return
        self.drop_peer(peer)
        host, port, key = endpoint[0], int(endpoint[1]), endpoint[2] if len(endpoint) > 2 else ""
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.IDENTITY, self.name.encode())
        self._common(s)
        if key:
            s.curve_serverkey = key.encode()
            s.curve_publickey = self._public
            s.curve_secretkey = self._secret
        self._monitor = s.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        s.connect(f"tcp://{host}:{port}")  # asynchronous: never blocks this thread
        self.sock, self._peer_endpoint = s, tuple(endpoint)

    def drop_peer(self, peer: str) -> None:
        if self.role == "coordinator":
            return
        if self.sock is not None:
            self._close_monitor()
            self.sock.close(0)
        self.sock, self._peer_endpoint = None, ()

    def _close_monitor(self) -> None:
        if self._monitor is not None and self.sock is not None:
            self.sock.disable_monitor()
            self._monitor.close(0)
        self._monitor = None

    def take_connected(self) -> bool:
        """Whether the connection to the Coordinator was made (again) since the last call: the
        session then resends what is unacknowledged and asks for what it missed."""
        self._drain_monitor()
        seen, self._connects = self._connects > 0, 0
        return seen

    def _drain_monitor(self) -> None:
        m = self._monitor
        while m is not None:
            try:
                m.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._connects += 1

    # -- traffic --------------------------------------------------------------------------------
    def send(self, peer: str, msg: LinkBatch | LinkAck) -> bool:
        """Queue ``msg`` for ``peer``; False if zmq cannot take it now (no peer, queue full)."""
        if self.sock is None:
            self.stats["send_refused"] += 1
            return False
        frame = encode_frame(msg, time.time_ns() if self.trace else None)
        try:
            if self.role == "coordinator":
                self.sock.send_multipart((peer.encode(), frame), zmq.NOBLOCK)
            else:
                self.sock.send(frame, zmq.NOBLOCK)
        except zmq.ZMQError:  # EHOSTUNREACH (not connected yet / gone) or EAGAIN (high-water mark)
            self.stats["send_refused"] += 1
            return False
        self.stats["frames_out"] += 1
        return True

    def pump(self) -> None:
        """Nothing to do: zmq's I/O thread writes the queues out."""

    def pending(self) -> bool:
        """Whether frames wait to be read (zmq's fd only signals edges: check before waiting)."""
        if self._monitor is not None and int(self._monitor.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            return True
        return self.sock is not None and bool(int(self.sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN)

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for frames; True if some can be read."""
        if self.sock is None:
            return False
        if self.pending() or timeout <= 0:
            return self.pending()
        # select, not zmq's poll: its timeout is whole milliseconds, and a wait for a frame due in
        # 0.3 ms became a busy loop. zmq's fd signals an edge of any event: check again after it.
        try:
            select.select([int(self.sock.getsockopt(zmq.FD))], [], [], timeout)
        except (OSError, ValueError):
            return False
        return self.pending()

    def receive(self, ready: list[int] | None = None) -> None:
        """Read every frame waiting; batches join ``inbox``, acks ``acks``."""
        s = self.sock
        while s is not None:
            try:
                parts = s.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._file(parts[-1])

    def _file(self, raw: bytes) -> None:
        try:
            m = decode_frame(raw)
        except Exception as exc:  # noqa: BLE001 - a frame we cannot read is dropped; the link resends
            self.stats["bad_frames"] += 1
            logger.bind(event_type="bad_link_frame").warning("data plane: dropped an unreadable frame ({} bytes): {!r}",
                                                             len(raw), exc)
            return
        self.stats["frames_in"] += 1
        if isinstance(m, LinkAck):
            self.acks.append(m)
            return
        if m.ack is not None:  # applied ahead of the batches, and only there
            self.acks.append(m.ack)
            m = replace(m, ack=None)
        if m.stamps is not None:  # sent at stamps[0] (by the sender's clock); read now
            m = replace(m, stamps=(m.stamps[0], time.time_ns()))
        self.inbox.append(m)

    def close(self) -> None:
        if self.sock is not None:
            self._close_monitor()
            self.sock.close(0)
            self.sock = None
        if self._auth is not None:
            self._auth.stop()
        self.ctx.term()


def encode_frame(msg: LinkBatch | LinkAck, sent_ns: int | None = None) -> bytes:
    """``sent_ns`` (hops traced): a batch carries the time it was sent as a seventh field."""
    if isinstance(msg, LinkBatch):
        a = msg.ack
        v = [0, msg.link, msg.epoch, msg.first_seq, list(msg.items),
             None if a is None else [a.link, a.epoch, a.upto, a.resend]]
        if sent_ns is not None:
            v.append(sent_ns)
        return msgpack.packb(v, use_bin_type=True)
    return msgpack.packb([1, msg.link, msg.epoch, msg.upto, msg.resend], use_bin_type=True)


def _ack_of(v: list) -> LinkAck:
    link, epoch, upto, resend = v
    if type(link) is not str or type(epoch) is not int or type(upto) is not int or type(resend) is not bool:
        raise ValueError("malformed ack")
    return LinkAck(link, epoch, upto, resend)


def decode_frame(raw: bytes) -> LinkBatch | LinkAck:
    """The batch or ack in a frame; ``ValueError`` (or a msgpack error) for anything else: exact
    tags and types, items as msgpack binaries (so no field can make this allocate or convert)."""
    v = msgpack.unpackb(raw, raw=False)
    if type(v) is not list or not v:
        raise ValueError("not a link frame")
    if v[0] == 0 and len(v) in (6, 7):
        link, epoch, first, items, ack = v[1:6]
        if type(link) is not str or type(epoch) is not int or type(first) is not int or type(items) is not list \
                or not all(type(x) is bytes for x in items):
            raise ValueError("malformed batch")
        sent = v[6] if len(v) == 7 else None
        if sent is not None and type(sent) is not int:
            raise ValueError("malformed batch stamp")
        return LinkBatch(link, epoch, first, tuple(items), None if ack is None else _ack_of(ack),
                         None if sent is None else (sent, 0))
    if v[0] == 1 and len(v) == 5:
        return _ack_of(v[1:])
    raise ValueError(f"unknown link frame tag {v[0]!r}")

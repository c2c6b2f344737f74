"""External inputs, built one way for every runtime: injection, timer ticks and market frames.

An external input is a message no actor produced: a venue frame, an operator command, a timer
tick. Each runtime (deterministic, threaded, a cluster node) turns one into an ``Envelope`` the
same way: a fresh message id, its sender, ``ts_event_ns``/``ts_recv_ns`` (the clock's time unless
given), causation 0; shows it to each observer's ``external()`` in their order (the journal
first: it records an input before anything handles it), then hands it to a dispatcher's
``deliver()``. An ``Injector`` does exactly that and nothing else. What differs between the
runtimes stays with them: *when* an input enters (simulated time, a feed or timer thread, a
node's turn) and when the dispatcher runs.

The dispatcher API it needs is narrow (``Target``): ``deliver(env)`` and ``tick_receivers``, so
a threaded runtime can bind one to its group inboxes instead of a dispatcher.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from arbor.actors.base import Clock
from arbor.actors.runtime.dispatcher import Observer
from arbor.messages import Envelope, TimerTick, VenuePayload

FEED = "feed"  # the sender of market frames
TIMER = "timer"  # the sender of timer ticks
OPERATOR = "operator"  # the default sender of other external inputs


class Target(Protocol):
    """What an ``Injector`` needs of a dispatcher."""

    @property
    def tick_receivers(self) -> tuple[str, ...]:
        """The actors that want timer ticks, in the order they get them."""

    def deliver(self, env: Envelope) -> None:
        """Queue ``env`` for its receiver."""


def market_input(venue: str, symbol: str, payload: bytes) -> tuple[str, VenuePayload]:
    """Where a raw venue frame for ``symbol`` goes, and as what: a ``VenuePayload`` to the
    symbol's collector (market data enters the system nowhere else)."""
    return f"{symbol}/collector", VenuePayload(venue=venue, symbol=symbol, payload=payload)


class Injector:
    """Builds external envelopes, shows them to the observers and delivers them to ``dispatcher``.

    ``msg_ids`` must be the source the dispatcher draws from (ids are unique within a run).
    ``settle``, if given, is called after each delivered input: the deterministic runtime runs
    its dispatcher to quiescence there, so each input's consequences come before the next input
    (and before the next one's observers see it). Runs on the caller's thread; the observers'
    ``external`` must be safe on it.
    """

    __slots__ = ("_ids", "_now", "_observers", "_settle", "dispatcher")

    def __init__(self, dispatcher: Target, msg_ids: Callable[[], int], clock: Clock,
                 observers: Iterable[Observer] = (), settle: Callable[[], object] | None = None) -> None:
        self.dispatcher = dispatcher
        self._ids = msg_ids
        self._now = clock.now_ns
        self._observers = tuple(observers)
        self._settle = settle

    def envelope(self, receiver: str, msg: Any, sender: str = OPERATOR, ts_event_ns: int | None = None,
                 ts_recv_ns: int | None = None) -> Envelope:
        """A new external envelope for ``receiver``, shown to every observer in order, not delivered
        (for a runtime that delivers elsewhere: another thread's inbox, another process).
        A time not given is the clock's now (read once)."""
        if ts_event_ns is None or ts_recv_ns is None:
            now = self._now()
            if ts_event_ns is None:
                ts_event_ns = now
            if ts_recv_ns is None:
                ts_recv_ns = now
        env = Envelope(msg_id=self._ids(), sender=sender, receiver=receiver, ts_event_ns=ts_event_ns,
                       ts_recv_ns=ts_recv_ns, causation_id=0, payload=msg)
        for obs in self._observers:
            obs.external(env)
        return env

    def external(self, receiver: str, msg: Any, sender: str = OPERATOR, ts_event_ns: int | None = None,
                 ts_recv_ns: int | None = None) -> Envelope:
        """``envelope()``, delivered to the dispatcher (then ``settle``); returns the envelope."""
        env = self.envelope(receiver, msg, sender, ts_event_ns, ts_recv_ns)
        self.dispatcher.deliver(env)
        if self._settle is not None:
            self._settle()
        return env

    def market(self, venue: str, symbol: str, payload: bytes, ts_event_ns: int | None = None,
               ts_recv_ns: int | None = None) -> Envelope:
        """A raw venue frame for ``symbol``, injected to its collector from ``feed``."""
        receiver, msg = market_input(venue, symbol, payload)
        return self.external(receiver, msg, FEED, ts_event_ns, ts_recv_ns)

    def ticks(self, ts_ns: int, receivers: Iterable[str] | None = None, ts_recv_ns: int | None = None) -> int:
        """A ``TimerTick(ts_ns)`` injected from ``timer`` to each of ``receivers`` in order (by
        default every tick receiver of the dispatcher), each in its own envelope; returns how many."""
        tick = TimerTick(ts_event_ns=ts_ns)
        n = 0
        for aid in self.dispatcher.tick_receivers if receivers is None else receivers:
            self.external(aid, tick, TIMER, ts_ns, ts_recv_ns)
            n += 1
        return n

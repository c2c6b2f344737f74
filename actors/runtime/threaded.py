"""The live runtime: logical actors on pykka threads.

Placement (measured on a 2-core machine, see README "Actor placement"): one pykka
``ThreadingActor`` per *group*, where a group is one symbol's whole subtree (collector, feature,
regime, position, executor, venue) or the singletons (risk, arbitrator). Inside a group a
``Dispatcher`` keeps one mailbox per logical actor and hands messages on with a deque (~1 us)
instead of a pykka hop (10-40 us); between groups, envelopes travel in batches, one pykka
``tell`` per batch. Market data never leaves its symbol's group; only decisions cross.

pykka itself never sees an exception: the dispatcher catches handler failures and reports them
to supervision, so pykka's habit of stopping an actor and dropping its queued tells cannot bite.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable, Iterable, Iterator

import pykka
from loguru import logger

from actors.base import ActorLogic, Clock
from actors.runtime.dispatcher import Dispatcher, FailureHook, Observer, id_source
from actors.topology import symbol_of
from messages import Envelope, TimerTick, VenuePayload

COORDINATOR = "coordinator"


def group_of(actor_id: str) -> str:
    """Symbol actors live in their symbol's group; singletons in the coordinator group."""
    return symbol_of(actor_id) or COORDINATOR


class _Tick:
    __slots__ = ("ts",)

    def __init__(self, ts: int) -> None:
        self.ts = ts


class GroupActor(pykka.ThreadingActor):
    """One thread running a group of logical actors through a Dispatcher.

    ``on_receive`` runs on this actor's own thread; it takes a list of envelopes (a batch) or
    a tick, dispatches to quiescence, then sends what is addressed elsewhere, one batch per group.
    """

    def __init__(self, name: str, actors: dict[str, ActorLogic], clock: Clock, msg_ids: Callable[[], int],
                 peers: dict[str, Any], observers: tuple[Observer, ...], on_failure: FailureHook | None,
                 done: Callable[[str], None]) -> None:
        super().__init__()
        self.name = name
        self._peers = peers
        self._out: dict[str, list[Envelope]] = {}
        self._observers = observers
        self._done = done
        self.dispatcher = Dispatcher(actors, clock, msg_ids, remote=self._queue_remote, observers=observers,
                                     on_failure=on_failure)
        self._clock = clock
        self._msg_ids = msg_ids

    def _queue_remote(self, receiver: str, env: Envelope) -> None:
        group = group_of(receiver)
        batch = self._out.get(group)
        if batch is None:
            self._out[group] = [env]
        else:
            batch.append(env)

    def on_receive(self, message: Any) -> Any:
        try:
            if isinstance(message, list):
                for env in message:
                    self.dispatcher.deliver(env)
            elif isinstance(message, _Tick):
                self._deliver_ticks(message.ts)
            elif callable(message):  # run a function on this thread (snapshots for the summary)
                return message(self.dispatcher)
            self.dispatcher.run()
            if self._out:
                out, self._out = self._out, {}
                for group, batch in out.items():
                    peer = self._peers.get(group)
                    if peer is None:
                        logger.bind(actor=self.name, event_type="dead_letter").error("no group {}", group)
                        continue
                    peer.tell(batch)
        except BaseException as exc:  # never let pykka stop this actor and drop its mailbox
            logger.bind(actor=self.name, event_type="group_failure").opt(exception=exc).critical(
                "group {} failed outside any handler: {!r}", self.name, exc)
        finally:
            if isinstance(message, list) and message and message[0].sender == "feed":
                self._done(self.name)
        return None

    def _deliver_ticks(self, ts: int) -> None:
        tick = TimerTick(ts_event_ns=ts)
        for aid in self.dispatcher.tick_receivers:
            env = Envelope(msg_id=self._msg_ids(), sender="timer", receiver=aid, ts_event_ns=ts, ts_recv_ns=ts,
                           causation_id=0, payload=tick)
            for obs in self._observers:
                obs.external(env)
            self.dispatcher.deliver(env)


class ThreadedRuntime:
    """Starts the groups on pykka threads, feeds market data, ticks, and stops it all cleanly."""

    def __init__(self, actors: dict[str, ActorLogic], clock: Clock, observers: Iterable[Observer] = (),
                 tick_interval_s: float = 0.1, switch_interval_s: float | None = 0.0005,
                 on_failure: FailureHook | None = None, max_inflight_batches: int = 16) -> None:
        self.clock = clock
        self.msg_ids = id_source()
        self.observers = tuple(observers)
        self.tick_interval_s = tick_interval_s
        self.switch_interval_s = switch_interval_s
        self._on_failure = on_failure
        self._groups: dict[str, dict[str, ActorLogic]] = {}
        for aid, logic in actors.items():
            self._groups.setdefault(group_of(aid), {})[aid] = logic
        self._refs: dict[str, Any] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._old_switch: float | None = None
        self._inflight: dict[str, int] = {g: 0 for g in self._groups}
        self._cv = threading.Condition()
        self._max_inflight = max_inflight_batches
        self.feed_done = threading.Event()
        self.frames_fed = 0

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        if self.switch_interval_s is not None:
            self._old_switch = sys.getswitchinterval()
            sys.setswitchinterval(self.switch_interval_s)
        # The coordinator starts first and stops last: it must see every symbol's last word.
        order = [COORDINATOR] + sorted(g for g in self._groups if g != COORDINATOR)
        for g in order:
            if g in self._groups:
                self._refs[g] = GroupActor.start(g, self._groups[g], self.clock, self.msg_ids, self._refs,
                                                 self.observers, self._on_failure, self._batch_done)
        if self.tick_interval_s:
            self._spawn(self._tick_loop, "arbor-timer")

    def stop(self, timeout: float = 4.0) -> None:
        """Stop feeds and timers, drain and stop every group in reverse start order."""
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        for g in reversed(list(self._refs)):
            ref = self._refs[g]
            try:
                ref.stop(block=True, timeout=max(0.1, deadline - time.monotonic()))
            except pykka.Timeout:
                logger.bind(actor=g, event_type="stop_timeout").error("group {} did not stop in time", g)
        if self._old_switch is not None:
            sys.setswitchinterval(self._old_switch)
            self._old_switch = None

    def alive_threads(self) -> list[threading.Thread]:
        return [t for t in self._threads if t.is_alive()]

    # -- inputs -----------------------------------------------------------------------------
    def send(self, receiver: str, msg: Any, sender: str = "operator") -> None:
        """Deliver an external input (an operator command, say) now."""
        env = self._external(receiver, msg, sender)
        self._refs[group_of(receiver)].tell([env])

    def ask(self, group: str, fn: Callable[[Dispatcher], Any], timeout: float = 5.0) -> Any:
        """Run ``fn(dispatcher)`` on the group's own thread and return its result."""
        return self._refs[group].ask(fn, timeout=timeout)

    def groups(self) -> list[str]:
        return list(self._groups)

    def feed(self, frames: Iterable[tuple[int, str, bytes]], venue: str, paced: bool = True,
             batch: int = 64) -> None:
        """Play (ts_ns, SYMBOL, payload) frames to the collectors on a feed thread.

        ``paced``: frames are released when the clock reaches their time; otherwise as fast as the
        groups take them, with at most ``max_inflight_batches`` unprocessed batches per group.
        """
        self._spawn(lambda: self._feed_loop(iter(frames), venue, paced, batch), "arbor-feed")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=self._guard(target, name), name=name, daemon=True)
        self._threads.append(t)
        t.start()

    def _guard(self, target: Callable[[], None], name: str) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:
                logger.bind(actor=name, event_type="thread_failure").opt(exception=exc).critical("{} died", name)
        return run

    def _external(self, receiver: str, msg: Any, sender: str) -> Envelope:
        now = self.clock.now_ns()
        env = Envelope(msg_id=self.msg_ids(), sender=sender, receiver=receiver, ts_event_ns=now, ts_recv_ns=now,
                       causation_id=0, payload=msg)
        for obs in self.observers:
            obs.external(env)
        return env

    def _batch_done(self, group: str) -> None:
        with self._cv:
            self._inflight[group] -= 1
            self._cv.notify_all()

    def _send_feed(self, group: str, batch: list[Envelope]) -> None:
        with self._cv:
            while self._inflight[group] >= self._max_inflight and not self._stop.is_set():
                self._cv.wait(0.05)
            self._inflight[group] += 1
        self._refs[group].tell(batch)

    def _feed_loop(self, frames: Iterator[tuple[int, str, bytes]], venue: str, paced: bool, batch: int) -> None:
        pending: dict[str, list[Envelope]] = {}
        count = 0
        for ts, symbol, payload in frames:
            if self._stop.is_set():
                break
            if paced:
                delay = (ts - self.clock.now_ns()) / 1e9
                if delay > 0:
                    for group, envs in pending.items():
                        self._send_feed(group, envs)
                    pending = {}
                    if self._stop.wait(delay):
                        break
            env = self._external(f"{symbol}/collector", VenuePayload(venue=venue, symbol=symbol, payload=payload), "feed")
            envs = pending.setdefault(symbol, [])
            envs.append(env)
            count += 1
            if len(envs) >= batch:
                self._send_feed(symbol, envs)
                del pending[symbol]
        for group, envs in pending.items():
            if not self._stop.is_set():
                self._send_feed(group, envs)
        self.frames_fed = count
        self.feed_done.set()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until every fed batch is processed (the feed itself finished first)."""
        deadline = time.monotonic() + timeout
        if not self.feed_done.wait(timeout):
            return False
        with self._cv:
            while any(self._inflight.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def _tick_loop(self) -> None:
        interval = self.tick_interval_s
        next_at = time.monotonic() + interval
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            next_at += interval
            ts = self.clock.now_ns()
            for ref in list(self._refs.values()):
                ref.tell(_Tick(ts))

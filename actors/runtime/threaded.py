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

import contextlib
import gc
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pykka
from arbor.actors.base import ActorLogic, Clock
from arbor.actors.runtime.dispatcher import Dispatcher, FailureHook, Observer, id_source
from arbor.actors.runtime.inputs import FEED, OPERATOR, Injector, market_input
from arbor.actors.topology import symbol_of
from arbor.messages import Envelope
from loguru import logger

COORDINATOR = "coordinator"


def group_of(actor_id: str) -> str:
    """Symbol actors live in their symbol's group; singletons in the coordinator group."""
    return symbol_of(actor_id) or COORDINATOR


class _Tick:
    __slots__ = ("ts",)

    def __init__(self, ts: int) -> None:
        self.ts = ts


_WAKE = object()


class GroupInbox:
    """A group's inbox, owned by the runtime rather than by the thread that drains it.

    Senders append here and send the group's pykka actor a wake-up. If that thread hangs or dies,
    a replacement thread takes over this same inbox, so nothing queued is lost (pykka drops the
    tells queued behind an actor that stops; these never queue in pykka).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.items: deque[Any] = deque()
        self.ref: Any = None

    def post(self, item: Any) -> None:
        self.items.append(item)
        ref = self.ref
        if ref is not None:
            try:  # noqa: SIM105 -- once per posted item: contextlib.suppress would add two calls to it
                ref.tell(_WAKE)
            except pykka.ActorDeadError:
                pass  # the watchdog replaces the dead group; the item waits in the inbox

    def __len__(self) -> int:
        return len(self.items)


class InboxRouter:
    """Delivery from outside the group threads (an ``inputs.Target``): each envelope is posted
    to its receiver's group inbox, which that group's own thread drains. Ticks are not routed
    here: each group delivers its own (see ``GroupActor``)."""

    tick_receivers: tuple[str, ...] = ()

    def __init__(self, inboxes: dict[str, GroupInbox]) -> None:
        self._inboxes = inboxes

    def deliver(self, env: Envelope) -> None:
        self._inboxes[group_of(env.receiver)].post([env])


class GroupActor(pykka.ThreadingActor):
    """One thread draining a group's inbox into its Dispatcher.

    ``on_receive`` runs on this actor's own thread: for each inbox item (a batch of envelopes or
    a tick) it dispatches to quiescence and sends what is addressed elsewhere, one batch per group.
    """

    def __init__(self, name: str, dispatcher: Dispatcher, inbox: GroupInbox, peers: dict[str, GroupInbox],
                 injector: Injector, done: Callable[[str], None]) -> None:
        """``injector`` delivers this group's timer ticks to ``dispatcher``."""
        super().__init__()
        self.name = name
        self.dispatcher = dispatcher
        self.inbox = inbox
        self._peers = peers
        self._out: dict[str, list[Envelope]] = {}
        self._ticks = injector.ticks
        self._done = done
        self.died: BaseException | None = None
        dispatcher._remote = self._queue_remote

    def _queue_remote(self, receiver: str, env: Envelope) -> None:
        group = group_of(receiver)
        batch = self._out.get(group)
        if batch is None:
            self._out[group] = [env]
        else:
            batch.append(env)

    def on_receive(self, message: Any) -> Any:
        d = self.dispatcher
        if callable(message):  # run a function on this thread (snapshots, supervision)
            result = message(d)
            self._flush()
            return result
        try:
            items = self.inbox.items
            while items and not d.retired and self.died is None:
                item = items.popleft()
                feed = False
                if isinstance(item, list):
                    feed = bool(item) and item[0].sender == FEED
                    for env in item:
                        d.deliver(env)
                elif isinstance(item, _Tick):  # stamped when the timer thread posted it
                    self._ticks(item.ts, ts_recv_ns=item.ts)
                try:
                    d.run()
                    self._flush()
                finally:
                    if feed:
                        self._done(self.name)
        except Exception as exc:  # outside any handler: a runtime bug; never let pykka drop the inbox
            # The dispatcher may be left mid-run (an actor marked queued that no loop will drain):
            # treat it as a dead thread, so the watchdog replaces the group and supervision reports
            # the failure to Risk, instead of the group going quiet for good.
            self.died = exc
            logger.bind(actor=self.name, event_type="group_failure").opt(exception=exc).critical(
                "group {} failed outside any handler: {!r}", self.name, exc)
            self.actor_ref.stop(block=False)
        except BaseException as exc:  # noqa: B036 - the thread dies (SystemExit, an injected kill)
            # pykka would stop *every* actor on a BaseException; stop only this one and let the
            # watchdog replace it. The inbox and the interrupted message stay for the successor.
            self.died = exc
            logger.bind(actor=self.name, event_type="thread_died").error("group {} thread died: {!r}", self.name, exc)
            self.actor_ref.stop(block=False)
        return None

    def _flush(self) -> None:
        if not self._out:
            return
        out, self._out = self._out, {}
        if self.dispatcher.retired:
            return  # a replaced group's late outputs are dropped: its successor re-handles its inputs
        for group, batch in out.items():
            peer = self._peers.get(group)
            if peer is None:
                logger.bind(actor=self.name, event_type="dead_letter").error("no group {}", group)
                continue
            peer.post(batch)


class ThreadedRuntime:
    """Starts the groups on pykka threads, feeds market data, ticks, watches for hangs and deaths,
    and stops it all cleanly."""

    def __init__(self, actors: dict[str, ActorLogic], clock: Clock, observers: Iterable[Observer] = (),
                 tick_interval_s: float = 0.1, switch_interval_s: float | None = 0.0005,
                 on_failure: FailureHook | None = None, max_inflight_batches: int = 16,
                 supervise: Callable[[Dispatcher], Any] | None = None, hang_timeout_s: float = 2.0,
                 on_thread_died: Callable[[str, BaseException], None] | None = None) -> None:
        """``on_thread_died(name, exc)`` is called on a background thread (feed, market stream,
        timer, ...) that ended with an exception; every such death is also kept in ``thread_failures``."""
        self.clock = clock
        self._on_thread_died = on_thread_died
        self.thread_failures: list[tuple[str, str]] = []  # (thread name, repr of the exception)
        self.msg_ids = id_source()
        self.observers = tuple(observers)
        self.tick_interval_s = tick_interval_s
        self.switch_interval_s = switch_interval_s
        self.hang_timeout_s = hang_timeout_s
        self._on_failure = on_failure
        self._supervise = supervise
        self._groups: dict[str, dict[str, ActorLogic]] = {}
        for aid, logic in actors.items():
            self._groups.setdefault(group_of(aid), {})[aid] = logic
        self._inboxes: dict[str, GroupInbox] = {g: GroupInbox(g) for g in self._groups}
        # Inputs from other threads (send, the feed) go to the groups' inboxes.
        self.injector = Injector(InboxRouter(self._inboxes), self.msg_ids, clock, self.observers)
        self._dispatchers: dict[str, Dispatcher] = {}
        self._refs: dict[str, Any] = {}
        self._retired_refs: list[Any] = []
        self._stop = threading.Event()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._old_switch: float | None = None
        self._inflight: dict[str, int] = {g: 0 for g in self._groups}
        self._cv = threading.Condition()
        self._max_inflight = max_inflight_batches
        self._replace_lock = threading.Lock()
        self.feed_done = threading.Event()
        self.frames_fed = 0
        self.replacements: list[tuple[str, str, str]] = []  # (group, kind, actor id)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        # Everything built so far (actors, configs, codecs) lives for the whole run: move it out of
        # the cyclic collector's way so its pauses do not land in the latency tail (measured: p999
        # 3.1-3.4 ms -> 2.0-2.4 ms at 5,000 events/s).
        gc.collect()
        gc.freeze()
        if self.switch_interval_s is not None:
            self._old_switch = sys.getswitchinterval()
            sys.setswitchinterval(self.switch_interval_s)
        # The coordinator starts first and stops last: it must see every symbol's last word.
        for g in self._start_order():
            d = Dispatcher(self._groups[g], self.clock, self.msg_ids, observers=self.observers,
                           on_failure=self._on_failure)
            if self._supervise is not None:
                self._supervise(d)
            self._start_group(g, d)
        if self.tick_interval_s:
            self._spawn(self._tick_loop, "arbor-timer")
        self._spawn(self._watchdog_loop, "arbor-watchdog")

    def _start_order(self) -> list[str]:
        return [g for g in [COORDINATOR] + sorted(g for g in self._groups if g != COORDINATOR) if g in self._groups]

    def _start_group(self, g: str, d: Dispatcher) -> None:
        self._dispatchers[g] = d
        ref = GroupActor.start(g, d, self._inboxes[g], self._inboxes, Injector(d, self.msg_ids, self.clock, self.observers),
                               self._batch_done)
        self._refs[g] = ref
        self._inboxes[g].ref = ref
        ref.tell(_WAKE)  # drain anything that queued before (or while replacing)

    def stop(self, timeout: float = 4.0) -> None:
        """Stop feeds, timers and the watchdog, drain and stop every group in reverse start order."""
        self._stopping = True
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        for g in reversed(self._start_order()):
            ref = self._refs.get(g)
            if ref is None:
                continue
            try:
                ref.stop(block=True, timeout=max(0.1, deadline - time.monotonic()))
            except pykka.Timeout:
                logger.bind(actor=g, event_type="stop_timeout").error("group {} did not stop in time", g)
            except pykka.ActorDeadError:
                pass
        for ref in self._retired_refs:  # replaced groups: their threads end once unblocked
            with contextlib.suppress(pykka.Timeout, pykka.ActorDeadError):
                ref.stop(block=True, timeout=max(0.1, deadline - time.monotonic()))
        if self._old_switch is not None:
            sys.setswitchinterval(self._old_switch)
            self._old_switch = None

    def alive_threads(self) -> list[threading.Thread]:
        return [t for t in self._threads if t.is_alive()]

    # -- inputs -----------------------------------------------------------------------------
    def send(self, receiver: str, msg: Any, sender: str = OPERATOR) -> None:
        """Deliver an external input (an operator command, say) now."""
        self.injector.external(receiver, msg, sender)

    def ask(self, group: str, fn: Callable[[Dispatcher], Any], timeout: float = 5.0) -> Any:
        """Run ``fn(dispatcher)`` on the group's own thread and return its result."""
        return self._refs[group].ask(fn, timeout=timeout)

    def groups(self) -> list[str]:
        return list(self._groups)

    def actor(self, actor_id: str) -> ActorLogic:
        """The logic running as ``actor_id`` (as built before ``start``; after, its group's current
        one, a restart's replacement included). Read-only use from other threads."""
        g = group_of(actor_id)
        d = self._dispatchers.get(g)
        return (d.actors if d is not None else self._groups[g])[actor_id]

    def dispatcher(self, group: str) -> Dispatcher:
        """The group's current dispatcher (read-only use from other threads: counters, depths)."""
        return self._dispatchers[group]

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
                self.thread_failures.append((name, repr(exc)))
                if self._on_thread_died is not None:
                    self._on_thread_died(name, exc)
        return run

    def _batch_done(self, group: str) -> None:
        with self._cv:
            self._inflight[group] -= 1
            self._cv.notify_all()

    def _send_feed(self, group: str, batch: list[Envelope]) -> None:
        with self._cv:
            while self._inflight[group] >= self._max_inflight and not self._stop.is_set():
                self._cv.wait(0.05)
            self._inflight[group] += 1
        self._inboxes[group].post(batch)

    def _feed_loop(self, frames: Iterator[tuple[int, str, bytes]], venue: str, paced: bool, batch: int) -> None:
        pending: dict[str, list[Envelope]] = {}
        count = 0
        envelope = self.injector.envelope
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
            env = envelope(*market_input(venue, symbol, payload), FEED)  # delivered in batches below
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
            for inbox in self._inboxes.values():
                inbox.post(_Tick(ts))

    # -- failure detection: hangs and deaths ------------------------------------------------
    def _watchdog_loop(self) -> None:
        period = max(0.005, min(0.05, self.hang_timeout_s / 4))
        while not self._stop.wait(period):
            for g in list(self._refs):
                self.check_group(g)

    def check_group(self, g: str) -> str | None:
        """Detect a dead or hung group thread and replace it; returns the failure kind found."""
        if self._stopping:
            return None
        ref = self._refs[g]
        d = self._dispatchers[g]
        cur = d.current
        if not ref.is_alive():
            kind = "died"
        elif cur is not None and time.monotonic() - cur[2] > self.hang_timeout_s:
            kind = "hang"
        else:
            return None
        self._replace(g, kind)
        return kind

    def _replace(self, g: str, kind: str) -> None:
        with self._replace_lock:
            old = self._dispatchers[g]
            if old.retired:
                return
            cur = old.died_in or old.current
            old.retire()
            failed_id, failed_env = (cur[0], cur[1]) if cur is not None else (next(iter(old.actors)), None)
            new = Dispatcher(dict(old.actors), self.clock, self.msg_ids, observers=self.observers,
                             on_failure=self._on_failure)
            for box in old.mailboxes.values():  # what had reached the group but not been handled
                for env in box:
                    new.deliver(env)
                box.clear()
            new._after_handle = old._after_handle  # persistence carries over
            hooks = old.supervision
            if hooks is not None:
                for sup in hooks.supervisors:
                    sup.d = new
                new.attach_supervision(hooks)
            self._retired_refs.append(self._refs[g])
            with contextlib.suppress(pykka.ActorDeadError):
                self._refs[g].stop(block=False)
            self.replacements.append((g, kind, failed_id))
            logger.bind(actor=failed_id, event_type=f"group_{kind}").error(
                "group {} {} in {}: starting a replacement thread", g, kind, failed_id)
            self._start_group(g, new)
            detail = (f"handler exceeded {self.hang_timeout_s:.3f}s" if kind == "hang" else "thread died")

            def report(d: Dispatcher) -> None:
                if d.supervision is not None:
                    d.supervision.on_failure(failed_id, failed_env, detail, kind)
                elif self._on_failure is not None:
                    self._on_failure(failed_id, failed_env, RuntimeError(detail))
                d.run()

            self._refs[g].tell(report)

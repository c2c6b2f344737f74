"""Mailbox dispatch for a group of logical actors that share one thread.

A ``Dispatcher`` owns one FIFO mailbox per logical actor. ``run()`` drains them until every
mailbox is empty, calling each actor's logic and routing what it returns: to a local mailbox
when the receiver lives in this group, otherwise to ``remote(receiver, envelope)``. The same
class runs the whole system in the deterministic scheduler and one symbol's subtree (or the
singletons) inside a pykka actor, so both runtimes share one dispatch path.

Failures never escape: an exception in a handler is caught here and handed to the
``on_failure`` hook (supervision), the failing message is kept for the report, and the rest
of the mailbox is not lost. A message without a handler, or with no declared route, is a
dead letter: logged, counted and shown to the observers.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from arbor.actors.base import ActorLogic, Clock, WriteAheadFailed
from arbor.actors.runtime.clock import SimClock
from arbor.actors.topology import receivers as route_receivers
from arbor.messages import DeadLetter, Envelope
from loguru import logger


class Observer(Protocol):
    """Sees traffic. Called on the dispatching thread; must be quick and thread-safe."""

    def external(self, env: Envelope) -> None:
        """An external input entered the runtime."""

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        """An actor emitted a message to ``receivers`` (possibly none); ``env.receiver`` is the first."""

    def processed(self, actor_id: str, env: Envelope, now_ns: int) -> None:
        """``actor_id`` is about to handle ``env`` at clock time ``now_ns`` (its inbox, in order).

        Only called on observers whose ``wants_inputs`` attribute is true."""


class QuietObserver:
    """An Observer that ignores everything: subclass it and override only what you care about."""

    wants_inputs = False

    def external(self, env: Envelope) -> None:
        pass

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        pass

    def processed(self, actor_id: str, env: Envelope, now_ns: int) -> None:
        pass


# (actor id, the envelope it was handling, the failure); the envelope is None when a threaded
# group's thread died or hung while it was handling nothing.
FailureHook = Callable[[str, Envelope | None, BaseException], None]
RouteFn = Callable[[str, Any], "tuple[str, ...] | None"]


class UnrecordableOutput(Exception):
    """An emitted message an observer could not record (``cause``); it was delivered to nobody."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


class Dispatcher:
    """Runs a set of logical actors to quiescence; see the module docstring."""

    def __init__(
        self,
        actors: dict[str, ActorLogic],
        clock: Clock,
        msg_ids: Callable[[], int],
        remote: Callable[[str, Envelope], None] | None = None,
        observers: Iterable[Observer] = (),
        on_failure: FailureHook | None = None,
        route: RouteFn = route_receivers,
        batch: int = 64,
        watchdog: bool = True,
    ) -> None:
        """``watchdog=False`` (the deterministic runtime, which has no watchdog) skips recording
        ``current`` and ``died_in`` around each handler; with a ``SimClock`` too (its ``begin`` only
        reads the time, its ``end`` does nothing) ``run`` then reads the handler instant only for
        observers that want inputs. The order of handling is the same either way."""
        self.actors = actors
        self.clock = clock
        self._begin: Callable[[], int] = getattr(clock, "begin", clock.now_ns)
        self._end: Callable[[], None] = getattr(clock, "end", lambda: None)
        self._next_id = msg_ids
        self._remote = remote
        self._observers = tuple(observers)
        self._watch_inputs = tuple(o for o in self._observers if getattr(o, "wants_inputs", False))
        self._on_failure = on_failure
        self._route = route
        self._route_cache: dict[tuple[str, type, Any], tuple[str, ...] | None] = {}
        self._batch = batch
        self.mailboxes: dict[str, deque[Envelope]] = {aid: deque() for aid in actors}
        self._ready: deque[str] = deque()
        self._queued: set[str] = set()
        self._held: set[str] = set()
        self.processed_count = 0
        self.dead_letters = 0
        self.failures = 0
        self.observer_failures = 0
        self.observer_faults: dict[str, str] = {}  # observer name -> its first error (health reads it)
        self.tick_receivers = tuple(aid for aid, a in actors.items() if a.WANTS_TICKS)
        self._intercept: Callable[[Envelope], bool] | None = None
        self._after_handle: Callable[[str, Any, Any, Any], None] | None = None
        self._after_run: Callable[[], None] | None = None
        self.supervision: Any = None
        # (actor id, envelope, monotonic start) of the handler running now: the watchdog's view.
        self.current: tuple[str, Envelope, float] | None = None
        self.retired = False
        self.died_in: tuple[str, Envelope, float] | None = None
        self._lean = not watchdog and type(clock) is SimClock
        # Lean, and nothing reads a queued envelope but the loop (no supervision, no input observers,
        # nothing remote): one envelope per emitted message is shared by all its local receivers.
        self._share = self._lean and remote is None and not self._watch_inputs

    def attach_persistence(self, after_handle: Callable[[str, Any, Any, Any], None]) -> None:
        """Call ``after_handle(actor_id, logic, message, outputs)`` after every handler that completed."""
        self._after_handle = after_handle

    def attach_supervision(self, hooks: Any) -> None:
        """Let supervisors handle failures, see deliveries first and act when the group is idle."""
        self.supervision = hooks
        self._share = False  # supervision reads each envelope's receiver
        self._on_failure = hooks.on_failure
        self._intercept = hooks.intercept
        self._after_run = hooks.after_run
        self._observers = (*self._observers, hooks)

    # -- input ------------------------------------------------------------------------------
    def deliver(self, env: Envelope) -> None:
        """Queue ``env`` for its receiver in this group."""
        aid = env.receiver
        if self._intercept is not None and self._intercept(env):
            return
        box = self.mailboxes.get(aid)
        if box is None:
            self._dead_letter(aid, env.payload)
            return
        box.append(env)
        if aid not in self._queued and aid not in self._held:
            self._queued.add(aid)
            self._ready.append(aid)

    def hold(self, actor_id: str) -> None:
        """Stop dispatching to ``actor_id``; its mailbox keeps filling (used while it restarts)."""
        self._held.add(actor_id)

    def release(self, actor_id: str) -> None:
        """Resume dispatching to ``actor_id``, starting with what queued while it was held."""
        self._held.discard(actor_id)
        if self.mailboxes[actor_id] and actor_id not in self._queued:
            self._queued.add(actor_id)
            self._ready.append(actor_id)

    def replace(self, actor_id: str, logic: ActorLogic) -> None:
        """Swap in a fresh logic instance (a restart); the mailbox is kept."""
        self.actors[actor_id] = logic

    def redeliver_first(self, actor_id: str, env: Envelope) -> None:
        """Put ``env`` back at the head of ``actor_id``'s mailbox: the next message it handles."""
        self.mailboxes[actor_id].appendleft(env)
        if actor_id not in self._queued and actor_id not in self._held:
            self._queued.add(actor_id)
            self._ready.append(actor_id)

    def deliver_first(self, actor_id: str, sender: str, msg: Any, causation_id: int = 0) -> None:
        """Queue ``msg`` from ``sender`` at the head of ``actor_id``'s mailbox in a new envelope: the
        next message it handles, through the dispatcher like any other (so a failure on it is the
        receiver's, supervised). For a supervisor telling a restarted actor what it must know first."""
        now = self.clock.now_ns()
        self.redeliver_first(actor_id, Envelope(msg_id=self._next_id(), sender=sender, receiver=actor_id,
                                                ts_event_ns=getattr(msg, "ts_event_ns", now), ts_recv_ns=now,
                                                causation_id=causation_id, payload=msg))

    def mailbox(self, actor_id: str) -> tuple[Envelope, ...]:
        """What waits for ``actor_id``, oldest first (a copy: supervision reads, never edits)."""
        return tuple(self.mailboxes.get(actor_id, ()))

    def drain(self, actor_id: str, keep: Callable[[Envelope], bool] = lambda env: False) -> list[Envelope]:
        """Remove and return the envelopes of ``actor_id``'s mailbox that ``keep`` rejects, oldest
        first; the kept ones stay queued in their order."""
        box = self.mailboxes.get(actor_id)
        if not box:
            return []
        kept: list[Envelope] = []
        taken: list[Envelope] = []
        for env in box:
            (kept if keep(env) else taken).append(env)
        box.clear()
        box.extend(kept)
        return taken

    # -- dispatch ---------------------------------------------------------------------------
    def retire(self) -> None:
        """Stop dispatching for good (a replacement took over this group's actors and mailboxes)."""
        self.retired = True
        self._held.update(self.mailboxes)
        self._ready.clear()

    def run(self) -> int:
        """Drain every mailbox; return how many messages were handled."""
        if self.retired:
            return 0
        if self._lean:
            return self._run_lean()
        handled = 0
        ready = self._ready
        mailboxes = self.mailboxes
        held = self._held
        queued = self._queued
        batch = self._batch
        actors = self.actors
        begin = self._begin
        end = self._end
        monotonic = time.monotonic
        emit = self.emit
        after = self._after_handle
        while True:
            while ready:
                aid = ready.popleft()
                box = mailboxes[aid]
                popleft = box.popleft
                watch = self._watch_inputs
                n = 0
                # One handled message, kept inline: this is the hot path (see _run_lean for the variant
                # without the watchdog bookkeeping the deterministic runtime does not need).
                while box and n < batch and aid not in held:
                    env = popleft()
                    n += 1
                    now = begin()
                    self.current = (aid, env, monotonic())
                    try:
                        for obs in watch:
                            try:
                                obs.processed(aid, env, now)
                            except Exception as exc:  # an observer's fault must not stop dispatch
                                self._observer_failed(obs, env, exc)
                        logic = actors[aid]
                        try:
                            out = logic.handle(env.payload)
                        except Exception as exc:  # a bug in a handler: supervision decides, nothing escapes
                            self._failed(aid, env, exc)
                            continue
                        try:
                            if after is not None and out is not None:
                                after(aid, logic, env.payload, out)  # persistence, before anything is routed
                            if out:
                                emit(aid, out, env.msg_id)
                            elif out is None:
                                self._dead_letter(aid, env.payload)
                        except WriteAheadFailed as exc:  # an order not durable (store) is not sent: the handler failed
                            self._failed(aid, env, exc)
                            continue
                        except UnrecordableOutput as exc:  # not journaled, not delivered: a failure
                            self._failed(aid, env, exc.cause)
                            continue
                    except BaseException:
                        # The thread is dying (SystemExit, an injected kill): remember what it was doing.
                        self.died_in = (aid, env, monotonic())
                        raise
                    finally:
                        self.current = None
                        end()
                handled += n
                if box and aid not in held:
                    ready.append(aid)
                else:
                    queued.discard(aid)
            if self._after_run is None:
                break
            self._after_run()
            if not ready:
                break
        self.processed_count += handled
        return handled

    def _run_lean(self) -> int:
        """``run`` without the watchdog's bookkeeping or the clock calls (see ``__init__``)."""
        handled = 0
        ready = self._ready
        mailboxes = self.mailboxes
        held = self._held
        queued = self._queued
        batch = self._batch
        actors = self.actors
        emit = self.emit
        now_ns = self.clock.now_ns
        after = self._after_handle
        while True:
            while ready:
                aid = ready.popleft()
                box = mailboxes[aid]
                popleft = box.popleft
                watch = self._watch_inputs
                n = 0
                while box and n < batch and aid not in held:
                    env = popleft()
                    n += 1
                    if watch:
                        now = now_ns()
                        for obs in watch:
                            try:
                                obs.processed(aid, env, now)
                            except Exception as exc:  # an observer's fault must not stop dispatch
                                self._observer_failed(obs, env, exc)
                    logic = actors[aid]
                    try:
                        out = logic.handle(env.payload)
                    except Exception as exc:  # a bug in a handler: supervision decides, nothing escapes
                        self._failed(aid, env, exc)
                        continue
                    try:
                        if after is not None and out is not None:
                            after(aid, logic, env.payload, out)  # persistence, before anything is routed
                        if out:
                            emit(aid, out, env.msg_id)
                        elif out is None:
                            self._dead_letter(aid, env.payload)
                    except WriteAheadFailed as exc:  # an order not durable (store) is not sent: the handler failed
                        self._failed(aid, env, exc)
                        continue
                    except UnrecordableOutput as exc:  # not journaled, not delivered: a failure
                        self._failed(aid, env, exc.cause)
                        continue
                handled += n
                if box and aid not in held:
                    ready.append(aid)
                else:
                    queued.discard(aid)
            if self._after_run is None:
                break
            self._after_run()
            if not ready:
                break
        self.processed_count += handled
        return handled

    def _failed(self, aid: str, env: Envelope, exc: Exception) -> None:
        self.failures += 1
        logger.bind(actor=aid, event_type="actor_failed", msg_id=env.msg_id).opt(exception=exc).error(
            "actor {} failed on {}: {!r}", aid, type(env.payload).__name__, exc
        )
        if self._on_failure is not None:
            self._on_failure(aid, env, exc)

    def _observer_failed(self, obs: Any, env: Envelope, exc: Exception) -> None:
        """An observer (trade log, journal, metrics) could not write (an ``OSError`` such as a full
        disk, from ``emit``) or raised while watching inputs or dead letters. Dispatch goes on (no
        group ever wedges on it); the first fault of each observer is logged as critical and handed
        to supervision, which fails closed (see ``SupervisionHooks``). An emitted message an
        observer refuses for any other reason is unrecordable: delivered to nobody (``emit``)."""
        name = getattr(obs, "NAME", type(obs).__name__)
        self.observer_failures += 1
        if name in self.observer_faults:
            return
        self.observer_faults[name] = f"{type(exc).__name__}: {exc}"
        logger.bind(actor=name, event_type="observer_failed", msg_id=env.msg_id).opt(exception=exc).critical(
            "observer {} failed on {}: {!r}", name, type(env.payload).__name__, exc)
        report = getattr(self.supervision, "observer_failed", None)
        if report is not None:
            report(self, name, env, exc)

    def emit(self, sender: str, messages: Iterable[Any], causation_id: int) -> None:
        """Route messages emitted by ``sender`` (also used by supervision to emit on an actor's behalf)."""
        now = self.clock.now_ns()
        cache = self._route_cache
        mailboxes = self.mailboxes
        observers = self._observers
        next_id = self._next_id
        refused: Exception | None = None
        for msg in messages:
            key = (sender, type(msg), getattr(msg, "symbol", None))
            try:
                rcv = cache[key]
            except KeyError:
                rcv = cache[key] = self._route(sender, msg)
            if rcv is None:
                logger.bind(actor=sender, event_type="undeclared_route").error(
                    "no route declared for {} from {}", type(msg).__name__, sender
                )
                self._dead_letter("?", msg)
                continue
            msg_id = next_id()
            ts_event = getattr(msg, "ts_event_ns", now)
            # Observers (the journal first of all) see a message before anyone receives it: one
            # they cannot record (an int msgpack refuses, say) is delivered to nobody, and the
            # sender's handler fails (UnrecordableOutput) so supervision and Risk see it.
            shown = Envelope(msg_id=msg_id, sender=sender, receiver=rcv[0] if rcv else "", ts_event_ns=ts_event,
                             ts_recv_ns=now, causation_id=causation_id, payload=msg)
            if observers:
                try:
                    for obs in observers:
                        try:
                            obs.emitted(shown, rcv)
                        except OSError as exc:
                            # The writer's disk, not the message (a trade log on a full disk): the
                            # message is delivered, dispatch goes on and supervision fails closed.
                            self._observer_failed(obs, shown, exc)
                except Exception as exc:
                    refused = refused or exc
                    continue
            if self._share:
                for r in rcv:
                    box = mailboxes.get(r)
                    if box is None:
                        self._dead_letter(r, msg)
                        continue
                    box.append(shown)
                    if r not in self._queued and r not in self._held:
                        self._queued.add(r)
                        self._ready.append(r)
                continue
            for i, r in enumerate(rcv):
                env = shown if i == 0 else Envelope(msg_id=msg_id, sender=sender, receiver=r, ts_event_ns=ts_event,
                                                    ts_recv_ns=now, causation_id=causation_id, payload=msg)
                box = mailboxes.get(r)
                if box is not None:
                    # deliver(env), inlined
                    intercept = self._intercept
                    if intercept is not None and intercept(env):
                        continue
                    box.append(env)
                    if r not in self._queued and r not in self._held:
                        self._queued.add(r)
                        self._ready.append(r)
                elif self._remote is not None:
                    self._remote(r, env)
                else:
                    self._dead_letter(r, msg)
        if refused is not None:
            raise UnrecordableOutput(refused)

    def dead_letter(self, receiver: str, msg: Any) -> None:
        self._dead_letter(receiver, msg)

    def _dead_letter(self, receiver: str, msg: Any) -> None:
        self.dead_letters += 1
        tag = getattr(type(msg), "TAG", type(msg).__name__)
        logger.bind(actor=receiver, event_type="dead_letter").warning("dead letter: {} for {}", tag, receiver)
        if self._observers:
            now = self.clock.now_ns()
            env = Envelope(msg_id=self._next_id(), sender="runtime", receiver="", ts_event_ns=now, ts_recv_ns=now,
                           causation_id=0, payload=DeadLetter(receiver=receiver, message_tag=tag, ts_event_ns=now))
            for obs in self._observers:
                try:
                    obs.emitted(env, ())
                except Exception as exc:
                    self._observer_failed(obs, env, exc)

    def pending(self) -> int:
        return sum(len(b) for b in self.mailboxes.values())


def id_source(start: int = 1) -> Callable[[], int]:
    """A message-id source; ``next`` on an itertools counter is atomic under the GIL."""
    counter = itertools.count(start)
    return counter.__next__

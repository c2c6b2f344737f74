"""The contract every actor's logic follows.

A logic class is plain Python: it receives one message at a time through ``handle`` and returns
the messages it emits (a list, possibly empty). It never reads the wall clock, randomness or the
environment: those come from its ``ActorContext``. It never sends anything itself: the runtime
routes what it returns (see ``actors.topology``). The same class therefore runs unchanged in the
deterministic scheduler, under pykka threads, and in replay.

Handlers are methods named ``on_<snake_case of the message class>``: ``on_order_filled`` for
``OrderFilled``. A message without a handler is a dead letter: ``handle`` returns ``None`` and the
runtime logs and counts it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import attrs
from arbor.messages.registry import ALL_MESSAGE_TYPES


class Clock(Protocol):
    def now_ns(self) -> int:
        """Current time in integer nanoseconds since the epoch."""


@attrs.define(kw_only=True)
class ActorContext:
    """What a logic object may use of the outside world.

    ``symbol`` is ``""`` for singletons. ``rng`` is seeded by the runtime so runs are repeatable.
    ``log`` is a loguru logger bound with ``actor`` and ``symbol``.
    """

    actor_id: str
    symbol: str
    clock: Clock
    log: Any
    rng: random.Random
    run_id: str = "run"


class WriteAheadFailed(Exception):
    """An order could not be made durable (store or journal) before its send: it must not be sent.

    Raised on the executor's thread by the persistence hook or a journal observer; the dispatcher
    treats it as a failure of the handler that emitted the order, so nothing of that handler's
    output is routed and supervision takes the symbol out of ACTIVE."""


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


HANDLER_NAMES: dict[type, str] = {t: "on_" + _snake(t.__name__) for t in ALL_MESSAGE_TYPES}


class ActorLogic:
    """Base class of every actor's logic.

    Subclasses set ``ROLE`` (``"collector"``, ``"risk"``, ...), define ``on_<message>`` handlers,
    and may set ``WANTS_TICKS = True`` to receive ``TimerTick``. ``stats()`` returns counters for
    the summary and metrics.
    """

    ROLE: ClassVar[str] = ""
    WANTS_TICKS: ClassVar[bool] = False
    _handlers: ClassVar[dict[type, Callable[[Any, Any], list[Any]]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[type, Callable[[Any, Any], list[Any]]] = {}
        for msg_type, method_name in HANDLER_NAMES.items():
            fn = getattr(cls, method_name, None)
            if fn is not None:
                handlers[msg_type] = fn
        cls._handlers = handlers

    def __init__(self, ctx: ActorContext) -> None:
        self.ctx = ctx

    def handle(self, msg: Any) -> list[Any] | None:
        """Handle one message; ``None`` means this actor has no handler for it (dead letter)."""
        fn = self._handlers.get(type(msg))
        if fn is None:
            return None
        return fn(self, msg)

    def handles(self, msg_type: type) -> bool:
        return msg_type in self._handlers

    def stats(self) -> dict[str, Any]:
        return {}

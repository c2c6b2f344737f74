"""Helpers for driving logic classes in tests: a manual clock and a context factory."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

from arbor.actors.base import ActorContext, ActorLogic
from loguru import logger


class ManualClock:
    """A clock that moves only when told to, and never backwards."""

    def __init__(self, start_ns: int = 1_700_000_000_000_000_000) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def set(self, ns: int) -> None:
        if ns < self._now:
            raise ValueError(f"clock cannot go backwards: {ns} < {self._now}")
        self._now = ns

    def advance(self, ns: int) -> int:
        if ns < 0:
            raise ValueError("clock cannot go backwards")
        self._now += ns
        return self._now


def make_ctx(actor_id: str = "TEST/actor", symbol: str = "TEST", clock: ManualClock | None = None, seed: int = 7) -> ActorContext:
    return ActorContext(
        actor_id=actor_id,
        symbol=symbol,
        clock=clock or ManualClock(),
        log=logger.bind(actor=actor_id, symbol=symbol),
        rng=random.Random(seed),
    )


def eventually(condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.002) -> None:
    """Wait until ``condition()`` holds, failing after ``timeout`` seconds (a bounded poll, not a blind sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


async def until(condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.005) -> None:
    """``eventually`` for asyncio tests: yield to the loop until ``condition()`` holds, failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def handled(logic: ActorLogic, msg: Any) -> list[Any]:
    """What ``logic`` emits for ``msg``; an AssertionError if it has no handler for that type."""
    out = logic.handle(msg)
    assert out is not None, f"{type(logic).__name__} has no handler for {type(msg).__name__}"
    return out

"""Supervisor and child specifications, in the manner of Erlang/OTP ``supervisor``.

Children are listed upstream to downstream; they start in that order and stop in reverse.
Strategies: ``ONE_FOR_ONE`` restarts the failed child only; ``ONE_FOR_ALL`` restarts every child;
``REST_FOR_ONE`` restarts the failed child and every child listed after it. Restart types:
``PERMANENT`` children are always restarted, ``TRANSIENT`` ones only after an abnormal exit (every
failure an actor can have here is abnormal: an exception, a hang or a death), ``TEMPORARY`` ones
never (they are removed). More than ``intensity`` restarts within ``period_s`` seconds escalates
to the parent.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from arbor.actors.backoff import exponential_backoff
from attrs import field, frozen


class Strategy(str, Enum):
    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class Restart(str, Enum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


@frozen(kw_only=True)
class ChildSpec:
    """``start(previous)`` builds a fresh logic object; ``previous`` is the failed instance or None."""

    id: str
    start: Callable[[Any], Any]
    restart: Restart = Restart.PERMANENT
    shutdown_s: float = 5.0


@frozen(kw_only=True)
class SupervisorSpec:
    strategy: Strategy
    children: tuple[ChildSpec, ...]
    intensity: int = 3
    period_s: float = 10.0
    backoff_base_s: float = 0.0  # 0: restart at once; else base * 2**(n-1), capped, with jitter
    backoff_max_s: float = 1.0
    backoff_jitter: float = 0.2  # fraction of the delay drawn at random (+/-)
    ids: tuple[str, ...] = field(init=False)

    def __attrs_post_init__(self) -> None:
        ids = tuple(c.id for c in self.children)
        if len(set(ids)) != len(ids):
            raise ValueError(f"child ids must be unique: {ids}")
        if self.intensity < 0 or self.period_s <= 0:
            raise ValueError("intensity must be >= 0 and period_s > 0")
        object.__setattr__(self, "ids", ids)

    def child(self, child_id: str) -> ChildSpec:
        for c in self.children:
            if c.id == child_id:
                return c
        raise KeyError(child_id)

    def to_restart(self, failed: str) -> tuple[str, ...]:
        """Children to restart, in start order, when ``failed`` fails (before restart types apply)."""
        chosen: tuple[str, ...]
        if self.strategy is Strategy.ONE_FOR_ONE:
            chosen = (failed,)
        elif self.strategy is Strategy.ONE_FOR_ALL:
            chosen = self.ids
        else:
            chosen = self.ids[self.ids.index(failed):]
        return tuple(c for c in chosen if c == failed or self.child(c).restart is not Restart.TEMPORARY)

    def backoff_s(self, restarts_in_period: int, jitter_draw: float) -> float:
        """Delay before the n-th restart in the period; ``jitter_draw`` is uniform in [0, 1)."""
        if self.backoff_base_s <= 0 or restarts_in_period <= 0:
            return 0.0
        return exponential_backoff(restarts_in_period - 1, self.backoff_base_s, self.backoff_max_s,
                                   self.backoff_jitter, jitter_draw)

"""The health of declared market assumptions (see docs/assumptions.md)."""

from __future__ import annotations

from enum import Enum

from arbor.messages.base import message


class AssumptionStatus(str, Enum):
    UNKNOWN = "UNKNOWN"  # too few samples in the window: no verdict, no action
    OK = "OK"
    DRIFTING = "DRIFTING"  # within the drift margin of its bound
    BROKEN = "BROKEN"  # past its bound

    @property
    def level(self) -> int:
        """-1 UNKNOWN, 0 OK, 1 DRIFTING, 2 BROKEN (the metrics gauge)."""
        return _LEVEL[self]


_LEVEL = {AssumptionStatus.UNKNOWN: -1, AssumptionStatus.OK: 0, AssumptionStatus.DRIFTING: 1,
          AssumptionStatus.BROKEN: 2}


def status_level(name: str) -> int:
    """The gauge level of a status named in a status row (-1, as UNKNOWN, for a name it does not know)."""
    try:
        return AssumptionStatus(name).level
    except ValueError:
        return -1


@message("AssumptionHealthChanged")
class AssumptionHealthChanged:
    """Regime(S) -> Risk: an assumption of ``symbol`` changed health at ``ts_event_ns`` (its
    "since"). ``value`` is the measured statistic (0.0 while UNKNOWN), ``bound`` what it must
    respect, ``samples`` how many the window held; ``on_broken``/``on_recover`` are what Risk does."""

    symbol: str
    name: str
    observation: str
    old: AssumptionStatus
    new: AssumptionStatus
    value: float
    bound: str
    samples: int
    on_broken: str
    on_recover: str
    ts_event_ns: int

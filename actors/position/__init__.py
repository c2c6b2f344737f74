"""Position(S): the strict per-symbol position state machine."""

from arbor.actors.position.logic import PositionLogic
from arbor.actors.position.snapshot import (
    LEGAL_TRANSITIONS,
    IllegalTransition,
    InvariantViolation,
    PositionError,
    PositionSnapshot,
    UnexpectedFill,
    check_transition,
)

__all__ = [
    "LEGAL_TRANSITIONS",
    "IllegalTransition",
    "InvariantViolation",
    "PositionError",
    "PositionLogic",
    "PositionSnapshot",
    "UnexpectedFill",
    "check_transition",
]

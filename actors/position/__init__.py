"""Position(S): the strict per-symbol position state machine."""

from actors.position.logic import PositionLogic
from actors.position.snapshot import (
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

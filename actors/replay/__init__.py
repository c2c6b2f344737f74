"""Journaling a run, and replaying it: audit (prove each actor reproduces its outputs) and what-if."""

from arbor.actors.replay.audit import AuditReport, ChainLink, Divergence, ReplayClock, audit_journal
from arbor.actors.replay.journal_io import UnreadableJournal, open_for_replay
from arbor.actors.replay.recorder import (
    JOURNAL_SUBDIR,
    JournalObserver,
    build_held,
    open_journal_observer,
    parse_durability,
)
from arbor.actors.replay.whatif import DecisionDigest, WhatIfResult, apply_overrides, run_whatif

__all__ = [
    "AuditReport",
    "ChainLink",
    "DecisionDigest",
    "Divergence",
    "JOURNAL_SUBDIR",
    "JournalObserver",
    "ReplayClock",
    "UnreadableJournal",
    "WhatIfResult",
    "apply_overrides",
    "build_held",
    "audit_journal",
    "open_for_replay",
    "open_journal_observer",
    "parse_durability",
    "run_whatif",
]

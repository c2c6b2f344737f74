"""What can go wrong with a journal, as exceptions a caller can tell apart."""

from __future__ import annotations


class JournalError(Exception):
    """Base of every journal error."""


class CorruptJournal(JournalError):
    """Damaged bytes met while reading; ``repair()`` cuts and quarantines them."""


class UnsupportedJournal(JournalError):
    """A well-formed segment from a newer format or schema: never modified, never appended to."""


class JournalLocked(JournalError):
    """Another writer (or repair) holds the journal directory."""


class JournalClosed(JournalError):
    """An append to a writer that has been closed."""

"""Recorded market data read back as venue payloads, for replay, backtests and tests."""

from arbor.adapters.recorded.cf3 import read_cf3
from arbor.adapters.recorded.hbt import (
    Recorded,
    RecordingFormatError,
    merge_recordings,
    read_hbt,
    symbol_from_file_name,
)

__all__ = ["RecordingFormatError", "Recorded", "merge_recordings", "read_hbt", "symbol_from_file_name", "read_cf3"]

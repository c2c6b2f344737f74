"""The recorded market source: recordings of any supported kind read back as one time-ordered stream,
and a configuration completed (or refused) from what the recordings say they are."""

from __future__ import annotations

import copy
import heapq
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from arbor.adapters.recorded.cf3 import read_cf3
from arbor.adapters.recorded.detect import MARKET_NAMES, UnsupportedRecording, detect_recording, detect_recordings
from arbor.adapters.recorded.hbt import Recorded, merge_recordings, read_hbt
from arbor.config.errors import ConfigError


def read_recordings(paths: Sequence[str | os.PathLike[str]]) -> Iterator[Recorded]:
    """``(receive ns, SYMBOL, payload)`` of every file, merged by receive time (ties: earlier file first)."""
    infos = [detect_recording(p) for p in paths]
    if all(i.format == "hbt" for i in infos):
        return merge_recordings(list(paths))
    readers = [read_cf3(i.path) if i.format == "cf3" else read_hbt(i.path) for i in infos]
    return heapq.merge(*readers, key=itemgetter(0))


def recordings_of(paths: Sequence[str | os.PathLike[str]], symbols: Iterable[str]) -> list[str | os.PathLike[str]]:
    """The ``paths`` that may hold frames of ``symbols``: a file whose head names only other
    symbols is left out (one that names none is kept). A multi-process Worker reads only its own
    symbols' files this way, so one unreadable file stops only the Worker that plays it."""
    wanted = set(symbols)
    out = []
    for p in paths:
        carried = detect_recording(p).symbols
        if not carried or wanted.intersection(carried):
            out.append(p)
    return out


def resolve_recorded(raw: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``raw`` with its symbols' venue taken from its recordings; ``ConfigError`` when they disagree.

    When every configured symbol is on the simulated venue (the defaults), the symbols become the
    recordings' own. A symbol configured for another venue than the recordings' is an error
    naming ``symbols[i].venue``; a recording that is not supported is an error naming ``key``.
    """
    out = copy.deepcopy(dict(raw))
    files = list((out.get("market") or {}).get("recorded_files") or [])
    if not files:
        return out  # the settings say what is missing
    try:
        venue, infos = detect_recordings(files)
    except UnsupportedRecording as exc:
        raise ConfigError(key, str(exc)) from None
    symbols = out.get("symbols") or []
    if all(isinstance(s, dict) and s.get("venue", "sim") == "sim" for s in symbols):
        names = list(dict.fromkeys(sym for i in infos for sym in i.symbols))
        out["symbols"] = [{**_kept(symbols, n), "symbol": n, "venue": venue} for n in names]
        return out
    for i, s in enumerate(symbols):
        configured = s.get("venue", "sim") if isinstance(s, dict) else None
        if configured == "sim":
            s["venue"] = venue
        elif configured != venue:
            files_named = ", ".join(Path(f).name for f in files)
            raise ConfigError(f"symbols[{i}].venue", f"the recording ({files_named}) is {MARKET_NAMES[venue]} "
                                                     f"({venue!r}); {s.get('symbol')} is configured for {configured!r}")
    return out


def _kept(symbols: list[Any], name: str) -> dict[str, Any]:
    """A configured entry of the same symbol keeps its other keys (strategy, sizes)."""
    for s in symbols:
        if isinstance(s, dict) and s.get("symbol") == name:
            return {k: v for k, v in s.items() if k not in ("symbol", "venue")}
    return {}

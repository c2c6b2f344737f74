"""The journal's record set (schema 2): the collector's events are recomputed by the audit, not journaled.

The audit must still say IDENTICAL on a faithful replay, and must still see a replay whose
market-data hop differs: an event it does not produce, one it produces that the journal never
handed on, and one that differs (seen in what its receivers emit).
"""

from __future__ import annotations

import functools
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgpack
import pytest
from arbor.actors.cluster.simulate import SimulatedCluster
from arbor.actors.collector.logic import CollectorLogic
from arbor.actors.replay import audit_journal, open_journal_observer
from arbor.actors.replay.audit import ReplayClock, build_from_metadata
from arbor.actors.replay.recorder import JournalObserver
from arbor.config.settings import build_settings
from arbor.messages import MarketEventKind
from arbor.messages.codec import Codec
from arbor.messages.journal import Durability, JournalReader, JournalWriter, RunMetadata

from tests.replay.test_audit import fast_config

SECONDS = 20.0


def kinds_and_tags(journal: Path) -> tuple[Counter[Any], Counter[str], dict[str, Any]]:
    """Records by kind (and ``"bytes"``: payload bytes), OUTPUT/EXTERNAL records by tag, the run metadata."""
    kinds: Counter[Any] = Counter()
    tags: Counter[str] = Counter()
    meta: dict[str, Any] = {}
    for _, payload in JournalReader(journal).records():
        obj = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        kinds[obj[0]] += 1
        kinds["bytes"] += len(payload)
        if obj[0] in (1, 2):
            tags[obj[1][6]] += 1
        elif obj[0] == 3:
            meta = obj[1]
    return kinds, tags, meta


def record(var_dir: Path, observer_factory: Any = None) -> Path:
    """A deterministic simulated run of SECONDS with a journal (``observer_factory`` builds its observer)."""
    raw = fast_config(var_dir)
    start_ns = 1_723_161_600_000_000_000
    if observer_factory is None:
        observer = open_journal_observer(var_dir, "derived", raw, "rotation", built_ns=start_ns,
                                         clock_ns=lambda: start_ns)
    else:
        observer = observer_factory(var_dir, raw, start_ns)
    try:
        SimulatedCluster(build_settings(raw), start_ns=start_ns, run_id="derived", observers=(observer,)).run_for(SECONDS)
    finally:
        observer.close()
    return observer.directory


def every_message(var_dir: Path, raw: dict[str, Any], start_ns: int) -> JournalObserver:
    """The schema-1 record set: every message journaled (no derived types)."""
    writer = JournalWriter(var_dir / "journal" / "derived", run_id="derived", durability=Durability(mode="rotation"),
                           clock_ns=lambda: start_ns)
    observer = JournalObserver(writer, Codec(), clock_ns=lambda: start_ns, derived=())
    observer.start_run(RunMetadata(run_id="derived", config=raw, started_ns=start_ns, built_ns=start_ns))
    return observer


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record(tmp_path_factory.mktemp("derived"))


@pytest.fixture(scope="module")
def full_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record(tmp_path_factory.mktemp("full"), every_message)


def counted(decode: Any, fn: Any) -> Any:
    """``decode`` whose fields go through ``fn(n, fields list)``, n counting the frames from 1."""
    seen = [0]

    def changed(payload: bytes) -> list[dict[str, Any]]:
        seen[0] += 1
        return fn(seen[0], decode(payload))

    return changed


def replay_decoding(change: Any) -> Any:
    """An audit build whose collectors decode each frame through ``change(n, fields list)`` (n counts frames);
    ``change`` may instead be a map of symbol to such a function, for those symbols' collectors only."""

    def build(meta: RunMetadata, clock: ReplayClock) -> dict[str, Any]:
        actors = build_from_metadata(meta, clock)
        for aid, logic in actors.items():
            fn = change.get(aid.split("/")[0]) if isinstance(change, dict) else change
            if isinstance(logic, CollectorLogic) and fn is not None:
                logic.wrap_decoder(functools.partial(counted, fn=fn))
        return actors

    return build


def test_events_are_not_journaled_and_their_inputs_name_their_frame(journal: Path, full_journal: Path) -> None:
    """Against the same run with every message journaled: no RawMarketEvent OUTPUT record (one record
    fewer per event), its receivers' INPUTs are DERIVED_INPUTs, the rest is the same; under 2/3 of the bytes."""
    kinds, tags, meta = kinds_and_tags(journal)
    full_kinds, full_tags, full_meta = kinds_and_tags(full_journal)
    events = full_tags["RawMarketEvent.v2"]
    assert meta["derived"] == ["RawMarketEvent.v2"] and "derived" not in full_meta
    assert tags["RawMarketEvent.v2"] == 0 and events > 1000
    assert {t: n for t, n in tags.items() if n} == {t: n for t, n in full_tags.items() if t != "RawMarketEvent.v2"}
    assert kinds[1] == full_kinds[1] - events and kinds[2] == full_kinds[2]
    assert kinds[0] + kinds[5] == full_kinds[0] and kinds[5] == 2 * events  # the feature and the venue get each one
    records = sum(n for k, n in kinds.items() if k != "bytes")
    assert records == sum(n for k, n in full_kinds.items() if k != "bytes") - events
    assert kinds["bytes"] < 2 / 3 * full_kinds["bytes"]


def test_a_faithful_replay_is_identical(journal: Path) -> None:
    """The audit recomputes the events and hands them on: IDENTICAL, every actor verified."""
    report = audit_journal(journal)
    assert report.identical, report.divergence
    assert report.incomplete == () and report.unverified == ()


def test_a_replay_that_misses_an_event_diverges_at_the_collector(journal: Path) -> None:
    """A frame the replay's collector decodes to nothing: the journal's input of its event is the divergence."""
    report = audit_journal(journal, build=replay_decoding(lambda n, parts: [] if n == 300 else parts))
    d = report.divergence
    assert d is not None and d.actor_id.endswith("/collector")
    assert "which the replay did not produce" in d.reason


def test_a_replay_that_makes_an_extra_event_diverges(journal: Path) -> None:
    """A frame decoded to one event more than the run had: a divergence (the later events' sequence numbers
    move, so the first snapshot that carries one differs; at the latest, the clean end finds it never handed on)."""
    report = audit_journal(journal, build=replay_decoding(lambda n, parts: parts + parts[-1:] if n == 300 else parts))
    assert report.divergence is not None


def test_an_extra_event_of_the_last_frame_is_found_at_the_clean_end(journal: Path) -> None:
    """The last frame of each collector decoded to one event more: nothing after it can differ, the run's clean
    end is where the audit sees that the journal never handed it on."""
    frames = Counter[str]()
    codec = Codec()
    for _, payload in JournalReader(journal).records():
        obj = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        if obj[0] == 2 and obj[1][6] == "VenuePayload.v1":
            msg = codec.from_primitive(obj[1][6], obj[1][7])
            frames[msg.symbol] += 1
    symbol, last = min(frames.items(), key=lambda kv: kv[1])
    change = {symbol: lambda n, parts: parts + parts[-1:] if n == last else parts}
    d = audit_journal(journal, build=replay_decoding(change)).divergence
    assert d is not None and d.actor_id.endswith("/collector")
    assert "the journal does not hand on" in d.reason


def test_a_changed_event_shows_in_what_its_receivers_emit(journal: Path) -> None:
    """Trade prices one unit higher in the replay: a receiver's output (features or fills) diverges."""

    def dearer(_n: int, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**f, "price": f["price"] + Decimal(1)} if f.get("kind") is MarketEventKind.TRADE else f for f in parts]

    d = audit_journal(journal, build=replay_decoding(dearer)).divergence
    assert d is not None and d.reason == "output differs"
    assert d.actor_id.split("/")[-1] in ("feature", "venue", "regime")
    assert any(link.kind == "DERIVED" for link in d.chain) or d.input.payload is not None


def test_a_journal_with_every_event_journaled_still_audits(full_journal: Path) -> None:
    """A schema-1 record set (every RawMarketEvent an OUTPUT record, no derived tags) audits IDENTICAL as before."""
    kinds, _tags, _meta = kinds_and_tags(full_journal)
    assert kinds[5] == 0
    report = audit_journal(full_journal)
    assert report.identical, report.divergence
    assert report.incomplete == () and report.unverified == ()

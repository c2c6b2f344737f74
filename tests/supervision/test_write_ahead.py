"""Write-ahead means write-ahead: an order is in the store and the journal before it is sent, or it is not sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arbor.actors.cluster.build import build_actors, market_frames, market_venue, supervisor_for
from arbor.actors.cluster.simulate import Recorder
from arbor.actors.replay import JournalObserver, open_journal_observer
from arbor.actors.runtime import DeterministicRuntime, SimClock
from arbor.config.loader import deep_merge, load_raw
from arbor.config.settings import build_settings
from arbor.messages import ActorFailed, Envelope, PlaceOrder, TradingState, TradingStateChanged
from arbor.messages.codec import Codec
from arbor.messages.journal import Durability, JournalReader, JournalWriter, Output, RecordKind, decode_entry
from arbor.supervision.persist import StatePersister
from arbor.supervision.store import StateStore

START_NS = 1_723_161_600_000_000_000
SYM = "BTCUSDT"


def fast_raw(var_dir: Path) -> dict:
    """Defaults tuned so a few simulated seconds reach decisions, orders and fills (one symbol)."""
    raw = deep_merge(load_raw(environ={}), {
        "run": {"tick_interval_ms": 20, "var_dir": str(var_dir)},
        "feature": {"bucket_ms": 50, "short_window": 5, "long_window": 20, "min_samples": 5},
        "regime": {"decision_interval_ms": 100, "confirm_cycles": 1},
        "paper": {"latency_ms": 5},
    })
    raw["symbols"] = [dict(raw["symbols"][0], events_per_s=300.0, base_vol=0.002)]
    return raw


class ExecutorSaveFails(StateStore):
    """A store whose disk refuses the executor's rows (the write-ahead of every order)."""

    def save_executor(self, symbol: str, snapshot: Any) -> None:
        raise OSError(28, "No space left on device")


class Inbox:
    """Every (actor, message type) handled, in order."""

    wants_inputs = True

    def __init__(self) -> None:
        self.handled: list[tuple[str, type]] = []

    def external(self, env: Envelope) -> None:
        pass

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        pass

    def processed(self, actor_id: str, env: Envelope, now_ns: int) -> None:
        self.handled.append((actor_id, type(env.payload)))


def run_with(raw: dict, store: StateStore, seconds: float, observers: tuple = ()) -> tuple[DeterministicRuntime, Any]:
    settings = build_settings(raw)
    clock = SimClock(START_NS)
    persister = StatePersister(store, threaded=False)
    runtime = DeterministicRuntime(build_actors(settings, clock, "wa"), clock, observers=observers,
                                   tick_interval_ns=settings.run.tick_interval_ms * 1_000_000,
                                   supervise=supervisor_for(settings, clock, "wa", None, persister))
    runtime.add_market(market_frames(settings, START_NS), market_venue(settings))
    runtime.run(until_ns=START_NS + int(seconds * 1e9))
    return runtime, persister


def test_an_order_whose_store_write_ahead_fails_is_never_sent(tmp_path):
    """When the executor's write-ahead commit fails, the venue never receives the order."""
    inbox = Inbox()
    with ExecutorSaveFails(tmp_path / "state.sqlite", lambda: START_NS) as store:
        runtime, _ = run_with(fast_raw(tmp_path), store, 6.0, (inbox,))
    assert any(a == f"{SYM}/executor" for a, _ in inbox.handled)
    assert (f"{SYM}/venue", PlaceOrder) not in inbox.handled
    assert runtime.actors[f"{SYM}/venue"].snapshot().orders == ()


def held_down(rec: Recorder) -> bool:
    """Whether the executor failed and Risk then moved the symbol out of ACTIVE."""
    failed = [e.msg_id for e in rec.envelopes_of(ActorFailed) if e.payload.actor_id == f"{SYM}/executor"]
    return bool(failed) and any(e.payload.scope == SYM and e.payload.new is not TradingState.ACTIVE
                                and e.msg_id > failed[0] for e in rec.envelopes_of(TradingStateChanged))


def test_an_order_whose_store_write_ahead_fails_takes_the_symbol_out_of_active(tmp_path):
    """A failed write-ahead fails closed: the executor fails and Risk takes the symbol out of ACTIVE."""
    rec = Recorder()
    with ExecutorSaveFails(tmp_path / "state.sqlite", lambda: START_NS) as store:
        run_with(fast_raw(tmp_path), store, 6.0, (rec,))
    assert held_down(rec)


class OrderRecordOnDisk:
    """When the venue is about to handle an order (send it), whether its journal record is already on disk."""

    wants_inputs = True

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.on_disk: list[bool] = []

    def external(self, env: Envelope) -> None:
        pass

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        pass

    def processed(self, actor_id: str, env: Envelope, now_ns: int) -> None:
        if actor_id == f"{SYM}/venue" and type(env.payload) is PlaceOrder:
            self.on_disk.append(self._written(env.payload.client_order_id))

    def _written(self, coid: str) -> bool:
        """What a SIGKILL now would leave: the bytes in the segment files, not the writer's buffer."""
        codec = Codec()
        for _, payload in JournalReader(self.directory).records():
            kind, entry = decode_entry(codec, payload)
            if (kind is RecordKind.OUTPUT and isinstance(entry, Output) and type(entry.envelope.payload) is PlaceOrder
                    and entry.envelope.payload.client_order_id == coid):
                return True
        return False


def test_an_order_is_on_disk_in_the_journal_before_the_venue_sends_it(tmp_path):
    """The journal hands an order's record to the OS before the venue handles it: a SIGKILL cannot lose it."""
    raw = fast_raw(tmp_path)
    journal = open_journal_observer(tmp_path, "wa", raw, "rotation", built_ns=START_NS, clock_ns=lambda: START_NS)
    check = OrderRecordOnDisk(journal.directory)
    try:
        with StateStore(tmp_path / "state.sqlite", lambda: START_NS) as store:
            run_with(raw, store, 6.0, (journal, check))
    finally:
        journal.close()
    assert check.on_disk and all(check.on_disk)


class DiskFillsAtFirstOrder:
    """The journal's fsync, which reports a full disk from the moment the executor emits its first order.

    Listed before the journal among the observers, it sees that order first: the journal's very
    record of it is the first write that fails."""

    wants_inputs = False

    def __init__(self) -> None:
        self.full = False

    def fsync(self, fd: int) -> None:
        if self.full:
            raise OSError(28, "No space left on device")

    def external(self, env: Envelope) -> None:
        pass

    def processed(self, actor_id: str, env: Envelope, now_ns: int) -> None:
        pass

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        if type(env.payload) is PlaceOrder:
            self.full = True


def test_an_order_the_journal_cannot_record_is_never_sent(tmp_path):
    """When the journal's write of an order fails (disk full), the order does not reach the venue."""
    raw = fast_raw(tmp_path)
    disk = DiskFillsAtFirstOrder()
    writer = JournalWriter(tmp_path / "journal", run_id="wa", durability=Durability(mode="every_record"),
                           clock_ns=lambda: START_NS, fsync=disk.fsync)
    journal = JournalObserver(writer, Codec(), lambda: START_NS)
    inbox, rec = Inbox(), Recorder()
    with StateStore(tmp_path / "state.sqlite", lambda: START_NS) as store:
        runtime, _ = run_with(raw, store, 6.0, (disk, journal, inbox, rec))
    assert disk.full and not journal.healthy
    assert (f"{SYM}/venue", PlaceOrder) not in inbox.handled
    assert runtime.actors[f"{SYM}/venue"].snapshot().orders == ()
    assert held_down(rec)

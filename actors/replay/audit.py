"""Audit replay: re-run every actor on its journaled inbox and prove its outputs identical.

Each actor is rebuilt from the run's recorded configuration and handed, in the order it
processed them, the messages its INPUT records name, with a replay clock set to the journaled
handler instant before each one. What it returns (after the same route check the dispatcher
applies) must equal, byte for byte in the codec's encoding and in order, the OUTPUT records
whose sender is that actor and whose causation id is that input. Actors replay independently,
so a multi-threaded run audits exactly although its interleaving across threads was not
deterministic. The journal is read once, front to back; memory holds only the messages some
actor has yet to handle.

Derived messages (the run metadata's ``derived`` tags: the collector's events) have no OUTPUT
record to compare with: the replay's own are handed on where the DERIVED_INPUT records say (the
``position``-th derived output of the handler of message ``cause``). A replay that does not
produce one the journal names diverges there; one the journal never names diverges at the clean
end of the run; one that differs shows in what its receivers emit (features, decisions, fills).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import msgpack
from arbor.actors.base import ActorLogic
from arbor.actors.replay.journal_io import UnreadableJournal, open_for_replay
from arbor.actors.topology import receivers as route_receivers
from arbor.messages import Envelope
from arbor.messages.codec import Codec, CodecError
from arbor.messages.journal import SCHEMA_VERSION, CorruptJournal, JournalReader, RepairReport, RunMetadata

_RESTARTED_TAG = "ActorRestarted.v1"


class ReplayClock:
    """The clock actors see in an audit: set to each input's journaled handler instant."""

    def __init__(self) -> None:
        self._now = 0

    def now_ns(self) -> int:
        return self._now

    def set(self, ns: int) -> None:
        self._now = ns


@attrs.frozen(kw_only=True)
class ChainLink:
    """One message on the causal path to a divergence, as journaled."""

    index: int
    kind: str  # "EXTERNAL" | "OUTPUT" | "DERIVED" (recomputed by the replay, not journaled)
    envelope: Envelope
    receivers: tuple[str, ...]


@attrs.frozen(kw_only=True)
class Divergence:
    """The first place where a replayed actor did not do what the journal says it did.

    ``record_index`` is the journal record where it showed: the OUTPUT that differs or was not
    produced, or the INPUT (or end of run) before which an output was missing from the journal.
    ``position`` is the output's place among the outputs of ``input``.
    """

    actor_id: str
    reason: str
    record_index: int
    input_index: int
    input: Envelope
    now_ns: int
    position: int
    expected: Any  # the journaled payload at ``position`` (None if the journal has none there)
    actual: Any  # the replayed payload at ``position`` (None if the replay produced none)
    actual_outputs: tuple[Any, ...]
    chain: tuple[ChainLink, ...] = ()


@attrs.frozen(kw_only=True)
class AuditReport:
    runs: tuple[str, ...]
    records: int
    inputs: int
    outputs: int
    actors: int
    divergence: Divergence | None
    incomplete: tuple[str, ...] = ()  # actors whose last input's outputs run past a journal not cleanly closed
    unverified: tuple[tuple[str, str], ...] = ()  # (actor, why) audited only up to a restart
    repaired: RepairReport | None = None
    notes: tuple[str, ...] = ()  # what was not read (a torn tail read past without repair)

    @property
    def identical(self) -> bool:
        return self.divergence is None


BuildActors = Callable[[RunMetadata, ReplayClock], dict[str, ActorLogic]]


def build_from_metadata(meta: RunMetadata, clock: ReplayClock) -> dict[str, ActorLogic]:
    """Every actor of the run, built exactly as the cluster built them from its configuration."""
    from arbor.actors.cluster.build import build_actors
    from arbor.config.errors import ConfigError
    from arbor.config.settings import build_settings

    try:
        settings = build_settings(meta.config)
    except ConfigError as exc:
        raise UnreadableJournal(f"run {meta.run_id}: recorded configuration no longer valid: {exc}") from None
    actors = build_actors(settings, clock, meta.run_id)
    restore_recorded(actors, meta)
    return actors


def restore_recorded(actors: dict[str, ActorLogic], meta: RunMetadata) -> None:
    """Give each actor the run restored from the state store at start the state it was restored to."""
    from arbor.supervision.snapshots import SnapshotCodec, SnapshotError

    codec = SnapshotCodec()
    for aid, plain in meta.restored.items():
        actor = actors.get(aid)
        if actor is None:
            raise UnreadableJournal(f"run {meta.run_id}: restored state of {aid!r}, which the configuration does not build")
        inner: Any = getattr(actor, "inner", actor)  # persisted roles have snapshot() and restore()
        try:
            inner.restore(codec.from_plain(plain, type(inner.snapshot())))
        except (SnapshotError, ValueError) as exc:
            raise UnreadableJournal(f"run {meta.run_id}: restored state of {aid} does not decode: {exc}") from None


class _Pending:
    """The latest input of one actor and what the replay produced for it."""

    __slots__ = ("index", "msg_id", "now_ns", "actual", "matched", "raised", "msg")

    def __init__(self, index: int, msg_id: int, now_ns: int, actual: list[Any], raised: BaseException | None,
                 msg: Any = None) -> None:
        self.index = index
        self.msg_id = msg_id
        self.msg = msg  # the input itself (kept for a derived input, whose message has no record)
        self.now_ns = now_ns
        self.actual = actual
        self.matched = 0
        self.raised = raised


class _Found(Exception):
    def __init__(self, actor_id: str, reason: str, record_index: int, pending: _Pending | None,
                 expected_prim: Any = None, position: int = 0) -> None:
        super().__init__(reason)
        self.actor_id, self.reason, self.record_index = actor_id, reason, record_index
        self.pending, self.expected_prim, self.position = pending, expected_prim, position


def audit_journal(directory: Path | str, *, codec: Codec | None = None, build: BuildActors = build_from_metadata,
                  allow_repair: bool = True, progress: Callable[[int], None] | None = None) -> AuditReport:
    """Audit every run in the journal at ``directory``; stop at the first divergence.

    Raises UnreadableJournal when the journal cannot be replayed (see ``open_for_replay``, a
    record that does not decode, a run without metadata, an input naming a message the journal
    does not hold).
    """
    codec = codec or Codec()
    notes: list[str] = []
    reader, repaired = open_for_replay(directory, allow_repair=allow_repair, notes=notes)
    auditor = _Auditor(codec, build, progress)
    auditor.notes = notes
    try:
        auditor.run(reader)
    except _Found as found:
        div = auditor.divergence(found, reader)
        return auditor.report(div, repaired)
    except CorruptJournal as exc:
        raise UnreadableJournal(str(exc)) from None
    except CodecError as exc:
        raise UnreadableJournal(f"record {auditor.index}: {exc}") from None
    return auditor.report(None, repaired)


class _Auditor:
    def __init__(self, codec: Codec, build: BuildActors, progress: Callable[[int], None] | None) -> None:
        self.codec = codec
        self._to_wire = codec.to_wire
        self._pack = codec.pack
        self.build = build
        self.progress = progress
        self.clock = ReplayClock()
        self.actors: dict[str, ActorLogic] = {}
        self.pending: dict[str, _Pending] = {}
        self.table: dict[int, list[Any]] = {}  # msg_id -> [envelope primitive, payload or None, receivers left]
        self.stopped: dict[str, str] = {}
        self.unverified: list[tuple[str, str]] = []
        self.notes: list[str] = []
        self.incomplete: list[str] = []
        self.runs: list[str] = []
        self.run_start = 0
        self.index = -1
        self.records = self.inputs = self.outputs = self.actor_count = 0
        # (actor id, message type, symbol) -> receivers (None: not routed), cached as the dispatcher caches it
        self._routed: dict[tuple[str, type, Any], tuple[str, ...] | None] = {}
        self.derived: frozenset[type] = frozenset()  # the run's message types without OUTPUT records
        # cause msg_id -> (sender, [[derived output, receivers yet to handle it], ...])
        self.derived_out: dict[int, tuple[str, list[list[Any]]]] = {}

    def report(self, div: Divergence | None, repaired: RepairReport | None) -> AuditReport:
        return AuditReport(runs=tuple(self.runs), records=self.records, inputs=self.inputs, outputs=self.outputs,
                           actors=self.actor_count, divergence=div, incomplete=tuple(self.incomplete),
                           unverified=tuple(self.unverified), repaired=repaired, notes=tuple(self.notes))

    # -- the pass -----------------------------------------------------------------------------
    def run(self, reader: JournalReader) -> None:
        unpackb = msgpack.unpackb
        table = self.table
        progress = self.progress
        started = False
        for index, payload in reader.records():
            self.index = index
            try:
                obj = unpackb(payload, raw=False, strict_map_key=False)
                kind = obj[0]
            except Exception as exc:
                raise CodecError(f"not a journal record: {exc}") from None
            if kind == 0:
                if not started:
                    raise UnreadableJournal(f"record {index}: an input before any run metadata")
                self._input(index, obj[1], obj[2], obj[3])
            elif kind == 1:
                if not started:
                    raise UnreadableJournal(f"record {index}: an output before any run metadata")
                prim = obj[1]
                sender = prim[1]
                verified = None
                if sender in self.actors and prim[5] != 0:
                    verified = self._output(index, sender, prim, obj, payload)
                # (causation 0: emitted on the actor's behalf by its process, not by a handler,
                # e.g. a multi-process Worker announcing its restored positions to a new Coordinator)
                elif sender == "supervisor" and prim[6] == _RESTARTED_TAG:
                    self._restarted(prim[7].get("actor_id", ""))
                receivers = obj[2] if len(obj) == 3 else ()
                if receivers:
                    # a verified output is byte-identical to the replay's object: hand that on, no decode
                    table[prim[0]] = [prim, verified, len(receivers)]
            elif kind == 2:
                if not started:
                    raise UnreadableJournal(f"record {index}: an external input before any run metadata")
                prim = obj[1]
                entry = table.get(prim[0])
                if entry is not None and entry[0][6:] == prim[6:]:
                    entry[2] += 1  # one message for several actors of this node, sent from another node
                else:
                    table[prim[0]] = [prim, None, 1]
            elif kind == 5:
                if not started:
                    raise UnreadableJournal(f"record {index}: an input before any run metadata")
                self._input(index, obj[1], obj[2], obj[3], self._derived_input(index, obj[1], obj[4], obj[5]))
            elif kind == 3:
                self._end_run(clean=False, index=index)
                self._start_run(index, RunMetadata.from_primitive(obj[1]))
                started = True
            elif kind == 4:
                self._end_run(clean=True, index=index)
                started = False
            else:
                raise CodecError(f"unknown record kind {kind!r}")
            self.records += 1
            if progress is not None and not self.records % 50_000:
                progress(self.records)
        if self.records == 0:
            raise UnreadableJournal("the journal holds no records")
        self._end_run(clean=False, index=self.index + 1)

    def _start_run(self, index: int, meta: RunMetadata) -> None:
        if meta.schema_version > SCHEMA_VERSION:
            raise UnreadableJournal(f"run {meta.run_id}: schema version {meta.schema_version} is newer than "
                                    f"this program's {SCHEMA_VERSION}")
        # constructors may read the clock: hold it where the live build held it
        self.clock.set(meta.built_ns or meta.started_ns)
        self.actors = self.build(meta, self.clock)
        self.actor_count += len(self.actors)
        try:
            self.derived = frozenset(self.codec.type_of(tag) for tag in meta.derived)
        except CodecError as exc:
            raise UnreadableJournal(f"run {meta.run_id}: derived messages: {exc}") from None
        self.derived_out.clear()
        self.table.clear()
        self.stopped.clear()
        self.runs.append(meta.run_id)
        self.run_start = index

    def _end_run(self, *, clean: bool, index: int) -> None:
        if clean:
            for cause, (sender, outs) in self.derived_out.items():
                if any(r not in self.stopped for _msg, left in outs for r in left):
                    p = self.pending.get(sender)
                    raise _Found(sender, f"replay produced a derived output of message {cause} the journal does "
                                         f"not hand on", index, p if p is not None and p.msg_id == cause else None)
        self.derived_out.clear()
        for aid, p in self.pending.items():
            if p.matched < len(p.actual):
                if clean:
                    raise _Found(aid, "replay produced an output the journal does not have", index, p,
                                 position=p.matched)
                self.incomplete.append(aid)
        self.pending.clear()
        self.actors = {}

    def _restarted(self, actor_id: str) -> None:
        if actor_id in self.actors and actor_id not in self.stopped:
            self.stopped[actor_id] = "restarted by supervision"
            self.unverified.append((actor_id, "restarted by supervision; audited up to the restart"))
            self.pending.pop(actor_id, None)

    def _resolve(self, msg_id: int) -> Any:
        entry = self.table.get(msg_id)
        if entry is None:
            return None
        payload = entry[1]
        if payload is None:
            prim = entry[0]
            payload = entry[1] = self.codec.from_primitive(prim[6], prim[7])
        entry[2] -= 1
        if entry[2] <= 0:
            del self.table[msg_id]
        return payload

    def _derived_input(self, index: int, actor_id: str, cause: int, position: int) -> Any:
        """The replay's ``position``-th derived output of the handler of ``cause``, taken for ``actor_id``."""
        entry = self.derived_out.get(cause)
        if entry is None or position >= len(entry[1]) or actor_id not in entry[1][position][1]:
            if actor_id in self.stopped:
                return None
            # the actor that handled ``cause`` (the replay's handler that should have emitted it)
            sender = entry[0] if entry is not None else next(
                (aid for aid, q in self.pending.items() if q.msg_id == cause), actor_id)
            p = self.pending.get(sender)
            raise _Found(sender, f"the journal has {actor_id} handling derived output {position} of message {cause}, "
                                 f"which the replay did not produce", index,
                         p if p is not None and p.msg_id == cause else None, position=position)
        out = entry[1][position]
        out[1].remove(actor_id)
        if not any(left for _msg, left in entry[1]):
            del self.derived_out[cause]
        return out[0]

    def _input(self, index: int, actor_id: str, now_ns: int, msg_id: int, derived: Any = None) -> None:
        """Replay ``actor_id`` on message ``msg_id`` (or on ``derived``, a recomputed message)."""
        if actor_id in self.stopped:
            if derived is None:
                self._resolve(msg_id)
            return
        actor = self.actors.get(actor_id)
        if actor is None:
            raise UnreadableJournal(f"record {index}: input for {actor_id!r}, which the recorded configuration "
                                    f"does not build")
        prev = self.pending.get(actor_id)
        if prev is not None and prev.matched < len(prev.actual):
            raise _Found(actor_id, "replay produced an output the journal does not have", index, prev,
                         position=prev.matched)
        msg = derived if derived is not None else self._resolve(msg_id)
        if msg is None:
            raise UnreadableJournal(f"record {index}: input of {actor_id} names message {msg_id}, which is not "
                                    f"in the journal (a quarantined gap?)")
        self.clock.set(now_ns)
        raised = None
        try:
            out = actor.handle(msg)
        except Exception as exc:  # the live handler may have failed too: compare what was emitted
            out, raised = [], exc
        actual = []
        if out:
            routed = self._routed
            derived_types = self.derived
            outs: list[list[Any]] | None = None
            for m in out:
                t = type(m)
                key = (actor_id, t, getattr(m, "symbol", None))
                try:
                    rcv = routed[key]
                except KeyError:
                    rcv = routed[key] = route_receivers(actor_id, m)
                if rcv is None:
                    continue
                if t in derived_types:
                    if outs is None:
                        outs = []
                        self.derived_out[msg_id] = (actor_id, outs)
                    outs.append([m, list(rcv)])
                else:
                    actual.append(m)
        self.pending[actor_id] = _Pending(index, msg_id, now_ns, actual, raised, derived)
        self.inputs += 1

    def _output(self, index: int, sender: str, prim: list[Any], record: list[Any] | None = None,
                stored: bytes | None = None) -> Any:
        """Check one journaled output against the replay; return the replayed message it equals.

        ``record``/``stored`` are the OUTPUT record, unpacked and as stored: the replayed message is
        put in the journaled envelope in place of the journaled one and the record packed again;
        the same bytes as stored prove it byte-identical without packing the journaled message
        once more. Other bytes are then decided by comparing the two messages' encodings.
        """
        if sender in self.stopped:
            return None
        p = self.pending.get(sender)
        if p is None or p.msg_id != prim[5]:
            raise _Found(sender, f"the journal has an output caused by message {prim[5]}, which the replay of "
                                 f"{sender} was not handling", index, p, expected_prim=prim,
                         position=p.matched if p is not None else 0)
        pos = p.matched
        if pos >= len(p.actual):
            why = f"replay raised {p.raised!r}" if p.raised is not None else "replay produced no such output"
            raise _Found(sender, f"the journal has an output the replay did not produce ({why})", index, p,
                         expected_prim=prim, position=pos)
        actual = self._to_wire(p.actual[pos])
        same = False
        if stored is not None and record is not None:
            same = self._pack([record[0], [*prim[:6], actual[0], actual[1]], *record[2:]]) == stored
        if not same and self._pack(actual) != self._pack([prim[6], prim[7]]):
            raise _Found(sender, "output differs", index, p, expected_prim=prim, position=pos)
        p.matched = pos + 1
        self.outputs += 1
        return p.actual[pos]

    # -- reporting ----------------------------------------------------------------------------
    def divergence(self, found: _Found, reader: JournalReader) -> Divergence:
        p = found.pending
        input_env, chain = self._input_and_chain(reader, found, p)
        expected = None
        if found.expected_prim is not None:
            try:
                expected = self.codec.from_primitive(found.expected_prim[6], found.expected_prim[7])
            except CodecError as exc:
                expected = f"<undecodable: {exc}>"
        actual = p.actual[found.position] if p is not None and found.position < len(p.actual) else None
        return Divergence(
            actor_id=found.actor_id, reason=found.reason, record_index=found.record_index,
            input_index=p.index if p is not None else -1, input=input_env, now_ns=p.now_ns if p else 0,
            position=found.position, expected=expected, actual=actual,
            actual_outputs=tuple(p.actual) if p is not None else (), chain=chain)

    def _input_and_chain(self, reader: JournalReader, found: _Found,
                         p: _Pending | None) -> tuple[Envelope, tuple[ChainLink, ...]]:
        """The diverging input and the messages that caused it, back to the external input."""
        placeholder = Envelope(msg_id=0, sender="", receiver=found.actor_id, ts_event_ns=0, ts_recv_ns=0,
                               causation_id=0, payload=None)
        if p is None:
            return placeholder, ()
        # pass 1: msg_id -> (index, causation) for the messages of this run before the divergence
        where: dict[int, tuple[int, int]] = {}
        for index, payload in reader.records(self.run_start):
            if index > found.record_index:
                break
            obj = msgpack.unpackb(payload, raw=False, strict_map_key=False)
            if obj[0] in (1, 2):
                prim = obj[1]
                where[prim[0]] = (index, prim[5])
            elif obj[0] == 5 and obj[3] not in where:  # a derived message: its first receiver's record
                where[obj[3]] = (index, obj[4])
        wanted: list[int] = []
        msg_id = p.msg_id
        while msg_id and msg_id in where and len(wanted) < 64:
            index, cause = where[msg_id]
            wanted.append(index)
            msg_id = cause
        del where
        if not wanted:
            return placeholder, ()
        # pass 2: decode those records
        targets = set(wanted)
        links: dict[int, ChainLink] = {}
        for index, payload in reader.records(min(targets)):
            if index > max(targets):
                break
            if index in targets:
                obj = msgpack.unpackb(payload, raw=False, strict_map_key=False)
                if obj[0] == 5:
                    _, receiver, now_ns, msg_id, cause, _position = obj
                    recomputed = p.msg if msg_id == p.msg_id else None
                    env = Envelope(msg_id=msg_id, sender="", receiver=receiver,
                                   ts_event_ns=getattr(recomputed, "ts_event_ns", now_ns), ts_recv_ns=now_ns,
                                   causation_id=cause, payload=recomputed)
                    links[index] = ChainLink(index=index, kind="DERIVED", envelope=env, receivers=(receiver,))
                    continue
                env = self.codec.envelope_from_primitive(obj[1])
                links[index] = ChainLink(index=index, kind="EXTERNAL" if obj[0] == 2 else "OUTPUT", envelope=env,
                                         receivers=tuple(obj[2]) if len(obj) == 3 else (env.receiver,))
        chain = tuple(links[i] for i in reversed(wanted) if i in links)
        # a derived link's sender is the receiver of the link before it (the handler that emitted it)
        chain = tuple(attrs.evolve(link, envelope=attrs.evolve(link.envelope, sender=chain[i - 1].receivers[0]))
                      if link.kind == "DERIVED" and i > 0 else link for i, link in enumerate(chain))
        first = links.get(wanted[0])
        input_env = attrs.evolve(first.envelope, receiver=found.actor_id) if first else placeholder
        return input_env, chain

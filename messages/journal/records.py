"""What a journal record holds for the runtime: a record kind and what that kind carries.

Every record payload is a msgpack array whose first element is the ``RecordKind``:

    EXTERNAL     [2, envelope]                   an external input entering the runtime
    OUTPUT       [1, envelope, [receiver, ...]]  a message an actor emitted, with its receivers
    INPUT        [0, actor_id, now_ns, msg_id]   ``actor_id`` handled message ``msg_id`` at handler
                                                 instant ``now_ns`` (processing order per actor)
    RUN_STARTED  [3, {run metadata}]             see ``messages.journal.run``
    RUN_STOPPED  [4, stopped_ns]                 the writer was closed cleanly
    DERIVED_INPUT [5, actor_id, now_ns, msg_id, cause_id, position]
                                                 ``actor_id`` handled message ``msg_id`` at ``now_ns``:
                                                 the ``position``-th output (0-based, of the types the
                                                 run metadata lists as ``derived``) of the handler that
                                                 processed message ``cause_id``

Derived messages (schema 2; ``RunMetadata.derived``, the collector's ``RawMarketEvent``) have no
OUTPUT record: a replay recomputes them, byte for byte, from the EXTERNAL frame and the INPUT
record of the actor that emitted them, and hands them on where DERIVED_INPUT records say.

An INPUT refers to the EXTERNAL or OUTPUT record of the same run with that ``msg_id``; the
runtime shows every message to its observers before delivering it, so that record is always
earlier in the journal. Referring instead of copying keeps the journal (and its write cost)
to one encoding per message however many actors receive it. ``envelope`` is the codec's
envelope primitive (``Codec.envelope_to_primitive``; written from ``Codec.envelope_to_wire``
with ``Codec.pack``, the same bytes). The older two-element OUTPUT form
``[1, envelope]`` (no receivers) is still read.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum
from typing import Any

import attrs
import msgpack
import msgspec
from arbor.messages.codec import Codec, CodecError
from arbor.messages.envelope import Envelope
from arbor.messages.journal.run import RunMetadata


class RecordKind(IntEnum):
    INPUT = 0  # a message as an actor processed it, in processing order
    OUTPUT = 1  # a message as an actor emitted it
    EXTERNAL = 2  # an external input entering the runtime (market data, venue replies, operator, timers)
    RUN_STARTED = 3  # run metadata: run id, configuration, schema version, start time
    RUN_STOPPED = 4  # the run's journal was closed cleanly
    DERIVED_INPUT = 5  # a recomputed (not journaled) message as an actor processed it


@attrs.frozen(kw_only=True, slots=True)
class InputRef:
    """``actor_id`` handled message ``msg_id`` with the clock held at ``now_ns``.

    For a DERIVED_INPUT, ``derived_from`` is the message whose handler emitted it and
    ``position`` its place among that handler's derived outputs; ``None`` for a plain INPUT."""

    actor_id: str
    now_ns: int
    msg_id: int
    derived_from: int | None = None
    position: int = 0


@attrs.frozen(kw_only=True, slots=True)
class Output:
    """An emitted message and the actors it was routed to (empty for event-only messages)."""

    envelope: Envelope
    receivers: tuple[str, ...]


@attrs.frozen(kw_only=True, slots=True)
class RunStopped:
    stopped_ns: int


Entry = InputRef | Output | Envelope | RunMetadata | RunStopped

# INPUT records (a third of a journal) are written with msgspec's msgpack encoder: the same
# bytes as msgpack.packb for these plain values, faster. Immutable once built.
_pack_input = msgspec.msgpack.Encoder().encode


def _packb(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def encode_record(codec: Codec, kind: RecordKind, envelope: Envelope) -> bytes:
    """A record of any kind that carries one envelope: msgpack ``[kind, envelope]``.

    The runtime journal writes EXTERNAL records this way; OUTPUT and INPUT records have the
    richer forms of ``encode_output`` and ``encode_input``.
    """
    return codec.pack([int(kind), codec.envelope_to_wire(envelope)])


def encode_external(codec: Codec, envelope: Envelope) -> bytes:
    return codec.pack([2, codec.envelope_to_wire(envelope)])


def encode_output(codec: Codec, envelope: Envelope, receivers: Iterable[str]) -> bytes:
    return codec.pack([1, codec.envelope_to_wire(envelope), list(receivers)])


def encode_input(actor_id: str, now_ns: int, msg_id: int) -> bytes:
    return _pack_input([0, actor_id, now_ns, msg_id])


def encode_derived_input(actor_id: str, now_ns: int, msg_id: int, cause_id: int, position: int) -> bytes:
    return _pack_input([5, actor_id, now_ns, msg_id, cause_id, position])


def encode_run_started(meta: RunMetadata) -> bytes:
    return _packb([3, meta.to_primitive()])


def encode_run_stopped(stopped_ns: int) -> bytes:
    return _packb([4, stopped_ns])


def unpack_record(payload: bytes) -> list[Any]:
    """The msgpack array of a record with its kind checked; payloads are left as primitives."""
    try:
        obj: Any = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception as exc:
        raise CodecError(f"record is not msgpack: {exc}") from exc
    if not isinstance(obj, list) or len(obj) < 2:
        raise CodecError("a record is an array [kind, ...]")
    raw_kind = obj[0]
    if type(raw_kind) is not int:
        raise CodecError(f"record kind must be an integer, got {type(raw_kind).__name__}")
    if not 0 <= raw_kind <= 5:
        raise CodecError(f"unknown record kind {raw_kind!r}")
    return obj


def entry_from_primitive(codec: Codec, obj: list[Any]) -> Entry:
    """The typed entry of an unpacked record (see ``unpack_record``)."""
    kind = obj[0]
    n = len(obj)
    if kind == 2 and n == 2:
        return codec.envelope_from_primitive(obj[1])
    if kind == 1 and n in (2, 3):
        receivers = tuple(obj[2]) if n == 3 else ()
        return Output(envelope=codec.envelope_from_primitive(obj[1]), receivers=receivers)
    if kind == 0 and n == 2:
        raise CodecError("an INPUT record without its handler instant (encode_record's form) cannot be replayed")
    if kind == 0 and n == 4:
        _, actor_id, now_ns, msg_id = obj
        if not (isinstance(actor_id, str) and type(now_ns) is int and type(msg_id) is int):
            raise CodecError("an INPUT record is [0, actor_id, now_ns, msg_id]")
        return InputRef(actor_id=actor_id, now_ns=now_ns, msg_id=msg_id)
    if kind == 5 and n == 6:
        _, actor_id, now_ns, msg_id, cause, position = obj
        if not (isinstance(actor_id, str) and type(now_ns) is int and type(msg_id) is int and type(cause) is int
                and type(position) is int):
            raise CodecError("a DERIVED_INPUT record is [5, actor_id, now_ns, msg_id, cause_id, position]")
        return InputRef(actor_id=actor_id, now_ns=now_ns, msg_id=msg_id, derived_from=cause, position=position)
    if kind == 3 and n == 2:
        return RunMetadata.from_primitive(obj[1])
    if kind == 4 and n == 2 and type(obj[1]) is int:
        return RunStopped(stopped_ns=obj[1])
    raise CodecError(f"malformed {RecordKind(kind).name} record ({n} elements)")


def decode_entry(codec: Codec, payload: bytes) -> tuple[RecordKind, Entry]:
    """Any record as ``(kind, entry)``; raises CodecError (UnknownMessageType for unknown tags)."""
    obj = unpack_record(payload)
    return RecordKind(obj[0]), entry_from_primitive(codec, obj)


def decode_record(codec: Codec, payload: bytes) -> tuple[RecordKind, Envelope]:
    """Inverse of ``encode_record``: a ``[kind, envelope]`` record (an OUTPUT with receivers too).

    Raises CodecError for records that carry no envelope (INPUT references, run metadata).
    """
    obj = unpack_record(payload)
    kind = RecordKind(obj[0])
    if not (len(obj) == 2 or (kind is RecordKind.OUTPUT and len(obj) == 3)) or not isinstance(obj[1], list):
        raise CodecError(f"this {kind.name} record carries no envelope; use decode_entry")
    return kind, codec.envelope_from_primitive(obj[1])

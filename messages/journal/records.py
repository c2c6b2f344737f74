"""What a journal record holds for the runtime: a record kind and an envelope."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import msgpack

from messages.codec import Codec, CodecError
from messages.envelope import Envelope


class RecordKind(IntEnum):
    INPUT = 0  # a message as an actor processed it, in processing order
    OUTPUT = 1  # a message as an actor emitted it
    EXTERNAL = 2  # an external input entering the runtime (market data, venue replies, operator, timers)


def encode_record(codec: Codec, kind: RecordKind, envelope: Envelope) -> bytes:
    """The payload of one record: msgpack ``[kind, envelope primitive]``."""
    return msgpack.packb([int(kind), codec.envelope_to_primitive(envelope)], use_bin_type=True)


def decode_record(codec: Codec, payload: bytes) -> tuple[RecordKind, Envelope]:
    """Inverse of ``encode_record``; raises CodecError (UnknownMessageType for unknown tags)."""
    try:
        obj: Any = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception as exc:
        raise CodecError(f"record is not msgpack: {exc}") from exc
    if not isinstance(obj, list) or len(obj) != 2:
        raise CodecError("a record is a [kind, envelope] pair")
    raw_kind, env = obj
    if type(raw_kind) is not int:
        raise CodecError(f"record kind must be an integer, got {type(raw_kind).__name__}")
    try:
        kind = RecordKind(raw_kind)
    except ValueError:
        raise CodecError(f"unknown record kind {raw_kind!r}") from None
    return kind, codec.envelope_from_primitive(env)

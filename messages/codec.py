"""One msgpack codec for every message and for envelopes: cattrs for the attrs messages, msgspec
for the hot-path market data (``MarketStruct``), behind the same calls and the same registry.

Wire form of a message: a msgpack array ``[tag, body]`` where ``body`` is the map of its fields
(cattrs' unstructured map, or ``msgspec.to_builtins`` of a Struct: the same shape, field names as
keys in declaration order). Envelope: ``[msg_id, sender, receiver, ts_event_ns, ts_recv_ns,
causation_id, tag, body]``. Decimals travel as strings so no precision is lost; bytes as msgpack
bin; enums as their values.

Bytes are written by msgspec's msgpack encoder (``Codec.pack``), which takes a Struct as it is:
the wire form ``to_wire`` leaves a ``MarketStruct`` body as the object, so the hot path never
builds its map in Python. Its output is byte for byte what ``msgpack.packb(..., use_bin_type=True)``
writes for the same values (tests/property/test_codec.py checks every message type), so
journals written with either read and audit alike. Bytes are read with msgpack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import msgpack
import msgspec
from arbor.messages.base import MarketStruct
from arbor.messages.envelope import Envelope
from arbor.messages.market import upgrade_raw_market_event_v1
from arbor.messages.registry import ALL_MESSAGE_TYPES
from cattrs.preconf.msgpack import make_converter

Upgrader = Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]

# Old tags that still load: each upgrades its body to the current shape (journals outlive schemas).
UPGRADERS: dict[str, Upgrader] = {
    "RawMarketEvent.v1": upgrade_raw_market_event_v1,
}


_BUILTIN = (bytes,)  # bytes stay bytes (msgpack bin), as cattrs' msgpack converter leaves them


def _unstructure_struct(msg: MarketStruct) -> Any:
    return msgspec.to_builtins(msg, builtin_types=_BUILTIN)


def _itself(msg: MarketStruct) -> MarketStruct:
    return msg


def _structure_struct(body: Any, cls: type[MarketStruct]) -> Any:
    # msgspec.convert ignores unknown keys and fills defaults, as cattrs' structuring does; it
    # reads Decimals from their strings and enums from their values.
    return msgspec.convert(body, cls)


class CodecError(ValueError):
    """Bytes that are not a message this codec knows."""


class UnknownMessageType(CodecError):
    """A tag (name or version) that is not registered."""


class Codec:
    """Encodes and decodes registered messages.

    ``upgraders`` maps an old tag to a function that turns its body into ``(new_tag, new_body)``,
    so a journal written with an older schema still loads (``UPGRADERS`` are always known).
    """

    def __init__(
        self,
        types: Iterable[type] = ALL_MESSAGE_TYPES,
        upgraders: dict[str, Upgrader] | None = None,
    ) -> None:
        conv = make_converter()
        conv.register_unstructure_hook(Decimal, str)
        conv.register_structure_hook(Decimal, lambda v, _t: Decimal(v))
        self._conv = conv
        self._by_tag: dict[str, type] = {}
        for t in types:
            tag = t.TAG  # type: ignore[attr-defined]  # set by @message
            if tag in self._by_tag:
                raise ValueError(f"message tag {tag!r} registered twice")
            self._by_tag[tag] = t
        self._upgraders = {**UPGRADERS, **(upgraders or {})}
        self._unstructure_cache: dict[type, Callable[[Any], Any]] = {}
        self._wire_cache: dict[type, Callable[[Any], Any]] = {}
        self.pack: Callable[[Any], bytes] = msgspec.msgpack.Encoder().encode
        """msgpack bytes of a wire form (``to_wire``, ``envelope_to_wire``) or of plain values."""
        self._structure_cache: dict[type, Callable[[Any, type], Any]] = {}

    @property
    def tags(self) -> frozenset[str]:
        return frozenset(self._by_tag)

    def type_of(self, tag: str) -> type:
        """The registered message class of ``tag``; UnknownMessageType when there is none."""
        cls = self._by_tag.get(tag)
        if cls is None:
            raise UnknownMessageType(f"unknown message tag {tag!r}")
        return cls

    # -- primitives -------------------------------------------------------------------------
    def to_primitive(self, msg: Any) -> list[Any]:
        """``[tag, body]`` of plain msgpack-able values."""
        cls = type(msg)
        tag = getattr(cls, "TAG", None)
        if tag is None or self._by_tag.get(tag) is not cls:
            raise UnknownMessageType(f"{cls.__name__} is not a registered message type")
        fn = self._unstructure_cache.get(cls)
        if fn is None:
            fn = _unstructure_struct if issubclass(cls, MarketStruct) else self._conv.get_unstructure_hook(cls)
            self._unstructure_cache[cls] = fn
        return [tag, fn(msg)]

    def to_wire(self, msg: Any) -> list[Any]:
        """``[tag, body]`` for ``pack``: ``to_primitive``, except that a ``MarketStruct`` body is the
        message itself (msgspec encodes it to the same bytes as its primitive map)."""
        cls = type(msg)
        fn = self._wire_cache.get(cls)
        if fn is None:
            tag = getattr(cls, "TAG", None)
            if tag is None or self._by_tag.get(tag) is not cls:
                raise UnknownMessageType(f"{cls.__name__} is not a registered message type")
            fn = _itself if issubclass(cls, MarketStruct) else self._conv.get_unstructure_hook(cls)
            self._wire_cache[cls] = fn
        return [cls.TAG, fn(msg)]

    def from_primitive(self, tag: Any, body: Any) -> Any:
        if not isinstance(tag, str):
            raise CodecError(f"message tag must be a string, got {type(tag).__name__}")
        seen = set()
        while tag not in self._by_tag and tag in self._upgraders and tag not in seen:
            seen.add(tag)
            tag, body = self._upgraders[tag](body)
        cls = self._by_tag.get(tag)
        if cls is None:
            name = tag.rsplit(".v", 1)[0]
            known = sorted(t for t in self._by_tag if t.rsplit(".v", 1)[0] == name)
            hint = f"; known versions: {', '.join(known)}" if known else ""
            raise UnknownMessageType(f"unknown message tag {tag!r}{hint}")
        fn = self._structure_cache.get(cls)
        if fn is None:
            fn = _structure_struct if issubclass(cls, MarketStruct) else self._conv.get_structure_hook(cls)
            self._structure_cache[cls] = fn
        try:
            return fn(body, cls)
        except Exception as exc:  # cattrs raises ClassValidationError and friends, msgspec ValidationError
            raise CodecError(f"cannot decode {tag}: {exc}") from exc

    # -- bytes ------------------------------------------------------------------------------
    def encode(self, msg: Any) -> bytes:
        return self.pack(self.to_wire(msg))

    def decode(self, data: bytes) -> Any:
        try:
            obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
        except Exception as exc:
            raise CodecError(f"not msgpack: {exc}") from exc
        if not isinstance(obj, list) or len(obj) != 2:
            raise CodecError("a message is a [tag, body] pair")
        return self.from_primitive(obj[0], obj[1])

    def envelope_to_primitive(self, env: Envelope) -> list[Any]:
        tag, body = self.to_primitive(env.payload)
        return [env.msg_id, env.sender, env.receiver, env.ts_event_ns, env.ts_recv_ns, env.causation_id, tag, body]

    def envelope_to_wire(self, env: Envelope) -> list[Any]:
        """``envelope_to_primitive`` for ``pack`` (see ``to_wire``)."""
        tag, body = self.to_wire(env.payload)
        return [env.msg_id, env.sender, env.receiver, env.ts_event_ns, env.ts_recv_ns, env.causation_id, tag, body]

    def envelope_from_primitive(self, obj: Any) -> Envelope:
        if not isinstance(obj, list) or len(obj) != 8:
            raise CodecError("an envelope is an 8-element array")
        msg_id, sender, receiver, ts_event, ts_recv, causation, tag, body = obj
        return Envelope(
            msg_id=msg_id,
            sender=sender,
            receiver=receiver,
            ts_event_ns=ts_event,
            ts_recv_ns=ts_recv,
            causation_id=causation,
            payload=self.from_primitive(tag, body),
        )

    def encode_envelope(self, env: Envelope) -> bytes:
        return self.pack(self.envelope_to_wire(env))

    def decode_envelope(self, data: bytes) -> Envelope:
        try:
            obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
        except Exception as exc:
            raise CodecError(f"not msgpack: {exc}") from exc
        return self.envelope_from_primitive(obj)

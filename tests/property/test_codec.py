"""Codec round trips for every registered message type, and clear errors for unknown tags.

Instances are built from each class's own field types, so a new message type or field is
covered without touching this file (and a field type nobody taught ``strategy_for`` fails loudly).
"""

from __future__ import annotations

import types
import typing
from decimal import Decimal
from enum import Enum
from functools import cache

import msgpack
import pytest
from arbor.messages import Codec, Envelope, OrderFilled, Side, UnknownMessageType, is_message_type, message_field_names
from arbor.messages.registry import ALL_MESSAGE_TYPES
from hypothesis import given
from hypothesis import strategies as st

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
DECIMALS = st.decimals(
    allow_nan=False, allow_infinity=False, places=8, min_value=Decimal("-1e12"), max_value=Decimal("1e12")
)


def strategy_for(tp: typing.Any) -> st.SearchStrategy[typing.Any]:
    """A strategy producing values of the field type ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(strategy_for(a) for a in typing.get_args(tp)))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(strategy_for(args[0]), max_size=5).map(tuple)
        return st.tuples(*(strategy_for(a) for a in args))
    if tp is type(None):
        return st.none()
    if isinstance(tp, type):
        if issubclass(tp, Enum):
            return st.sampled_from(tp)
        if tp is bool:
            return st.booleans()
        if tp is int:
            return INT64
        if tp is float:
            return st.floats(allow_nan=False)
        if tp is Decimal:
            return DECIMALS
        if tp is str:
            return st.text(max_size=20)
        if tp is bytes:
            return st.binary(max_size=64)
        if is_message_type(tp):
            return message_strategy(tp)
    raise TypeError(f"no strategy for field type {tp!r}: teach strategy_for about it")


@cache
def message_strategy(cls: type) -> st.SearchStrategy[typing.Any]:
    """Instances of the message class ``cls`` (attrs or Struct) with every field drawn from its declared type."""
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{name: strategy_for(hints[name]) for name in message_field_names(cls)})


def any_message() -> st.SearchStrategy[typing.Any]:
    return st.one_of(*(message_strategy(t) for t in ALL_MESSAGE_TYPES))


def envelope_strategy(payload: st.SearchStrategy[typing.Any]) -> st.SearchStrategy[Envelope]:
    return st.builds(
        Envelope,
        msg_id=INT64,
        sender=st.text(max_size=20),
        receiver=st.text(max_size=20),
        ts_event_ns=INT64,
        ts_recv_ns=INT64,
        causation_id=INT64,
        payload=payload,
    )


CODEC = Codec()


@pytest.mark.parametrize("cls", ALL_MESSAGE_TYPES, ids=lambda c: c.TAG)
@given(data=st.data())
def test_message_round_trips(cls, data):
    """decode(encode(m)) == m for every registered message type."""
    msg = data.draw(message_strategy(cls))
    assert CODEC.decode(CODEC.encode(msg)) == msg


@pytest.mark.parametrize("cls", ALL_MESSAGE_TYPES, ids=lambda c: c.TAG)
@given(data=st.data())
def test_envelope_round_trips(cls, data):
    """decode_envelope(encode_envelope(e)) == e for envelopes around every message type."""
    env = data.draw(envelope_strategy(message_strategy(cls)))
    assert CODEC.decode_envelope(CODEC.encode_envelope(env)) == env


@pytest.mark.parametrize("cls", ALL_MESSAGE_TYPES, ids=lambda c: c.TAG)
@given(data=st.data())
def test_msgspec_packing_is_byte_identical_to_msgpack(cls, data):
    """Codec.pack of the wire form writes exactly msgpack.packb's bytes of the primitive form (old journals audit)."""
    env = data.draw(envelope_strategy(message_strategy(cls)))
    assert CODEC.encode_envelope(env) == msgpack.packb(CODEC.envelope_to_primitive(env), use_bin_type=True)
    assert CODEC.encode(env.payload) == msgpack.packb(CODEC.to_primitive(env.payload), use_bin_type=True)


def test_unknown_tag_is_a_clear_error():
    """A tag nobody registered raises UnknownMessageType naming the tag."""
    with pytest.raises(UnknownMessageType, match=r"unknown message tag 'NoSuchMessage\.v1'"):
        CODEC.decode(msgpack.packb(["NoSuchMessage.v1", {}]))


def test_unknown_version_is_a_clear_error_listing_known_versions():
    """An unregistered version of a known message raises UnknownMessageType listing the known ones."""
    with pytest.raises(UnknownMessageType, match=r"'OrderFilled\.v9'.*known versions: OrderFilled\.v1"):
        CODEC.decode(msgpack.packb(["OrderFilled.v9", {}]))


def test_unknown_tag_inside_an_envelope_is_a_clear_error():
    """An envelope around an unknown tag raises UnknownMessageType, not a generic error."""
    with pytest.raises(UnknownMessageType, match="NoSuchMessage.v1"):
        CODEC.decode_envelope(msgpack.packb([1, "a", "b", 0, 0, 0, "NoSuchMessage.v1", {}]))


def test_encoding_an_unregistered_class_is_a_clear_error():
    """A codec built without a type refuses to encode it with UnknownMessageType."""
    codec = Codec(types=[t for t in ALL_MESSAGE_TYPES if t is not OrderFilled])
    fill = OrderFilled(
        symbol="BTCUSDT", client_order_id="c", venue_order_id="v", fill_id="f", side=Side.BUY,
        qty=Decimal("1"), price=Decimal("1"), fee=Decimal("0"), is_maker=False,
        cum_qty=Decimal("1"), leaves_qty=Decimal("0"), ts_event_ns=0,
    )
    with pytest.raises(UnknownMessageType, match="OrderFilled is not a registered message type"):
        codec.encode(fill)


def test_every_registered_type_has_a_strategy():
    """strategy_for knows every field type of every registered message."""
    for cls in ALL_MESSAGE_TYPES:
        message_strategy(cls)  # raises TypeError for an unknown field type

"""Snapshots as JSON text: exact Decimals (as strings), enums by value, tuples as lists.

Every logic class that supervision restores has ``snapshot()`` returning a frozen attrs value
and ``restore(snapshot)``; this codec turns those values into JSON and back, so that a value
read from the store equals the value written, field for field.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, TypeVar

import cattrs

T = TypeVar("T")


class SnapshotError(ValueError):
    """Stored text that does not decode into the expected snapshot type."""


def _structure_decimal(value: Any, _: type) -> Decimal:
    # Only strings (and ints) are exact; a float in stored state means someone wrote it wrong.
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise SnapshotError(f"a Decimal is stored as a string, got {value!r}")
    return Decimal(value)


class SnapshotCodec:
    """Encodes snapshot values (attrs classes, enums, Decimals, tuples, dicts) as compact JSON."""

    def __init__(self) -> None:
        conv = cattrs.Converter()
        conv.register_unstructure_hook(Decimal, str)
        conv.register_structure_hook(Decimal, _structure_decimal)
        # Times (Risk's order-rate window: thousands of them) as one list, not element by element.
        conv.register_unstructure_hook_func(lambda t: t == tuple[int, ...], list)
        self._conv = conv
        self._dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

    def to_plain(self, value: Any) -> Any:
        """The JSON-ready form of ``value`` (Decimals as strings)."""
        return self._conv.unstructure(value)

    def from_plain(self, plain: Any, cls: type[T]) -> T:
        try:
            return self._conv.structure(plain, cls)
        except (cattrs.BaseValidationError, SnapshotError, ValueError, TypeError, KeyError, ArithmeticError) as exc:
            raise SnapshotError(f"cannot decode a {getattr(cls, '__name__', cls)}: {exc}") from exc

    def encode(self, value: Any) -> str:
        return self._dumps(self.to_plain(value))

    def decode(self, text: str, cls: type[T]) -> T:
        try:
            plain = json.loads(text)
        except ValueError as exc:
            raise SnapshotError(f"stored text is not JSON: {exc}") from exc
        return self.from_plain(plain, cls)

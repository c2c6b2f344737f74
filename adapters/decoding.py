"""The decoder contract: one venue frame in, the normalized fields of its market events out.

A decoder is a pure function ``(payload: bytes) -> list[dict]``. Each dict holds keyword
arguments for ``messages.market.RawMarketEvent`` (``kind``, ``ts_event_ns`` and the kind's
fields); the collector adds symbol, venue, sequence, receive time and the raw bytes. An empty
list means a control frame with no market data (a subscription reply). Anything else a decoder
cannot read raises ``DecodeError``, never another exception.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Decoder = Callable[[bytes], list[dict[str, Any]]]


class DecodeError(ValueError):
    """A frame that is malformed, lacks a required field or carries an unsupported event."""


def decoder_for(venue: str, symbol: str | None = None) -> Decoder:
    """The decoder of ``venue``'s market-data wire format; ``ValueError`` naming an unknown venue.

    Hyperliquid frames name their coin, so its decoder is bound to ``symbol`` (the coin name).
    """
    # Imported here, not at module level: the venue modules import DecodeError from this one.
    from arbor.adapters.binance.spot import decode_spot
    from arbor.adapters.binance.usdm import decode_usdm

    if venue == "hyperliquid":
        from arbor.adapters.hyperliquid.decode import make_hyperliquid_decoder

        if not symbol:
            raise ValueError("the hyperliquid decoder is per coin: pass the symbol")
        return make_hyperliquid_decoder(symbol)
    decoders: dict[str, Decoder] = {
        "binance_usdm": decode_usdm,
        "binance_spot": decode_spot,
        "sim": decode_usdm,  # the simulated venue speaks the Binance USD-M wire format
    }
    try:
        return decoders[venue]
    except KeyError:
        raise ValueError(f"no market-data decoder for venue {venue!r}; known: {', '.join(sorted(decoders))}") from None

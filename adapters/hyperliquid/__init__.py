"""Hyperliquid wire formats: market-data decoding, and signed order entry (needs eth-account).

Only the decoder is imported here: order entry (``adapters.hyperliquid.exchange``) and signing
(``adapters.hyperliquid.signing``) import eth-account lazily, when a signer is made.
"""

from arbor.adapters.hyperliquid.decode import decode_hyperliquid, make_hyperliquid_decoder

__all__ = ["decode_hyperliquid", "make_hyperliquid_decoder"]

"""Test doubles at the venue boundary: fake servers speaking the venues' real wire formats."""

from arbor.adapters.testing.binance_server import FakeBinanceServer

__all__ = ["FakeBinanceServer"]

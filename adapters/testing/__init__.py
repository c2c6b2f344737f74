"""Test doubles at the venue boundary: fake servers speaking the venues' real wire formats."""

from adapters.testing.binance_server import FakeBinanceServer

__all__ = ["FakeBinanceServer"]

"""Binance wire formats."""

from adapters.binance.usdm import decode_usdm

__all__ = ["decode_usdm"]

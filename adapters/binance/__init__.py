"""Binance wire formats: decoders, the local order book, and the market-data stream."""

from adapters.binance.book import BookSync, OrderBook
from adapters.binance.spot import decode_spot
from adapters.binance.stream import BinanceMarketStream, StreamConfig
from adapters.binance.usdm import decode_usdm

__all__ = ["BinanceMarketStream", "BookSync", "OrderBook", "StreamConfig", "decode_spot", "decode_usdm"]

"""Binance wire formats: decoders, the local order book, and the market-data stream."""

from arbor.adapters.binance.book import BookSync, OrderBook
from arbor.adapters.binance.spot import decode_spot
from arbor.adapters.binance.stream import BinanceMarketStream, StreamConfig
from arbor.adapters.binance.usdm import decode_usdm

__all__ = ["BinanceMarketStream", "BookSync", "OrderBook", "StreamConfig", "decode_spot", "decode_usdm"]

"""A local fake of Hyperliquid's market-data websocket (``/ws``), speaking the documented protocol, for tests.

``FakeHyperliquidWsServer`` (aiohttp, 127.0.0.1, port 0 = ephemeral) answers
``{"method": "subscribe", "subscription": {...}}`` (and ``unsubscribe``) with
``{"channel": "subscriptionResponse", "data": {...}}``, ``{"method": "ping"}`` with
``{"channel": "pong"}``, anything else with an ``error`` frame, and replays the given frames,
each text exactly as given, to every connection subscribed to its (channel, coin), at ``pace_s``
seconds per frame. The feed is one shared sequence; unlike the venue, a frame waits until some
connection is subscribed to it, so a test can check that a reconnecting client loses nothing.
Like the venue, a new ``trades`` subscription is first sent the coin's latest trades frame
again (Hyperliquid sends recent trades on subscribe), and a connection the server has sent
nothing to for ``idle_timeout_s`` is closed (Hyperliquid: 60 s; a busy subscription keeps it
open, a quiet one needs the client's pings, whose pongs count as sent).

Misbehaviour on request, through methods (now) or ``at_frame(index, fn)`` (just before frame
``index`` is published): ``disconnect``, ``stall``/``resume``, ``send_garbage``.

``recorded_frames(data_dir)`` builds the replay from the real recorded Hyperliquid messages of
``shared/data/hyperliquid``: ``allMids`` verbatim (the recorded websocket frame); the recorded
DYDX ``l2Book`` info answer in the websocket envelope, and its top levels as a ``bbo`` frame;
``activeAssetCtx`` frames from the recorded ``allDexsAssetCtxs`` contexts, named by the recorded
``meta`` universe; ``trades`` frames from the recorded fills that carry a trade id (one trade per
frame: coin, side, px, sz, time, hash, tid as recorded). Runs on the event loop that started it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from arbor.adapters.testing.ws_replay import ReplayWsServer

Key = tuple[str, "str | None"]  # (channel, coin or None for allMids)
_COIN_TYPES = frozenset({"trades", "l2Book", "bbo", "activeAssetCtx"})


def frame_key(frame: bytes) -> Key:
    """The subscription a recorded frame belongs to."""
    obj = json.loads(frame)
    channel, data = obj["channel"], obj["data"]
    if channel == "allMids":
        return channel, None
    return channel, (data[0] if channel == "trades" else data)["coin"]


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def recorded_frames(data_dir: Path) -> list[bytes]:
    """Websocket frames made of the real recorded Hyperliquid messages under ``data_dir`` (see module doc)."""
    from arbor.adapters.testing.hyperliquid_server import cassette_answers

    nautilus = data_dir / "nautilus"
    answers = cassette_answers(data_dir / "sdk_cassettes")
    names = [u["name"] for u in answers["meta"]["universe"]]
    ctxs = json.loads((nautilus / "ws_all_dexs_asset_ctxs.json").read_bytes())["data"]["ctxs"][0][1]
    book = answers["l2Book"]
    fills = [json.loads((nautilus / "ws_user_fill_liquidation.json").read_bytes())["data"]["fills"],
             json.loads((nautilus / "http_user_fills_dust_conversion.json").read_bytes())]
    trades = [{k: f[k] for k in ("coin", "side", "px", "sz", "time", "hash", "tid")}
              for group in fills for f in group if type(f.get("tid")) is int]
    out = [(nautilus / "ws_allmids.json").read_bytes()]
    out.append(_compact({"channel": "l2Book", "data": book}))
    out.append(_compact({"channel": "bbo", "data": {"coin": book["coin"], "time": book["time"],
                                                    "bbo": [book["levels"][0][0], book["levels"][1][0]]}}))
    out += [_compact({"channel": "activeAssetCtx", "data": {"coin": name, "ctx": ctx}})
            for name, ctx in zip(names, ctxs, strict=False)]  # two recordings: 28 names, 230 contexts
    out += [_compact({"channel": "trades", "data": [t]}) for t in trades]
    return out


class FakeHyperliquidWsServer(ReplayWsServer[set[Key]]):
    """Hyperliquid's market-data websocket on 127.0.0.1; every fault is switched on explicitly by the test."""

    name = "fake-hyperliquid"

    def __init__(self, frames: Sequence[bytes], *, pace_s: float = 0.0, idle_timeout_s: float = 60.0) -> None:
        super().__init__(frames, pace_s=pace_s)
        self._keys = [frame_key(f) for f in self._frames]
        self._idle_timeout_s = idle_timeout_s
        self._last_sent: dict[web.WebSocketResponse, float] = {}  # connection -> loop time of the last frame sent to it
        self._last_trades: dict[str, str] = {}
        self.sent: list[int] = []  # indexes of the frames published (each once)
        self.stats.update(subscribes=0, pings=0, idle_closes=0, trade_snapshots=0, bad_requests=0)

    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/ws", self._ws)

    # -- websocket ---------------------------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._conns[ws] = set()
        loop = asyncio.get_running_loop()
        self._last_sent[ws] = loop.time()
        self.stats["connections"] += 1
        try:
            while True:
                left = self._last_sent[ws] + self._idle_timeout_s - loop.time()
                if left <= 0:
                    self.stats["idle_closes"] += 1
                    await ws.close(code=1000, message=b"idle")
                    break
                try:
                    msg = await ws.receive(timeout=left)
                except TimeoutError:
                    continue  # idle only if nothing was sent meanwhile: checked above
                if msg.type is WSMsgType.TEXT:
                    await self._on_client_text(ws, msg.data)
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
        finally:
            self._conns.pop(ws, None)
            self._last_sent.pop(ws, None)
        return ws

    async def _on_client_text(self, ws: web.WebSocketResponse, text: str) -> None:
        try:
            req = json.loads(text)
            method = req["method"]
            if method == "ping":
                self.stats["pings"] += 1
                await self._send(ws, '{"channel":"pong"}')
                return
            sub = req["subscription"]
            kind = sub["type"]
            if method not in ("subscribe", "unsubscribe") or (kind not in _COIN_TYPES and kind != "allMids"):
                raise ValueError(kind)
            key: Key = (kind, sub["coin"] if kind in _COIN_TYPES else None)
        except (ValueError, KeyError, TypeError):
            self.stats["bad_requests"] += 1
            await self._send(ws, json.dumps({"channel": "error", "data": f"Invalid request: {text[:200]}"}))
            return
        subs = self._conns.get(ws)
        if subs is None:
            return
        if method == "subscribe":
            subs.add(key)
            self.stats["subscribes"] += 1
        else:
            subs.discard(key)
        await self._send(ws, json.dumps({"channel": "subscriptionResponse", "data": {"method": method, "subscription": sub}}))
        if method == "subscribe" and kind == "trades" and key[1] in self._last_trades:
            self.stats["trade_snapshots"] += 1  # recent trades on subscribe, as the venue does
            await self._send(ws, self._last_trades[key[1]])
        self._wake.set()

    def _receivers(self, index: int) -> list[web.WebSocketResponse] | None:
        key = self._keys[index]
        return [ws for ws, subs in self._conns.items() if key in subs] or None

    def _after_send(self, index: int, text: str) -> None:
        channel, coin = self._keys[index]
        if channel == "trades" and coin is not None:
            self._last_trades[coin] = text
        self.sent.append(index)

    def _note_sent(self, ws: web.WebSocketResponse) -> None:
        self._last_sent[ws] = asyncio.get_running_loop().time()


__all__ = ["FakeHyperliquidWsServer", "recorded_frames", "frame_key"]

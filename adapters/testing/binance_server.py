"""A local fake of Binance's market-data endpoints, speaking the real wire format, for tests.

``FakeBinanceServer`` (aiohttp, 127.0.0.1, port 0 = ephemeral) serves:

- ``/stream?streams=a/b/c`` (combined streams) and ``/ws/<stream>``: replays the given frames,
  each ``{"stream": ..., "data": ...}`` text exactly as given, to every connection subscribed to
  its stream, at ``pace_s`` seconds per frame. Like a venue, the feed is one shared sequence;
  unlike one, it waits while nobody is connected (``pause_when_idle``), so a test can check that
  a reconnecting client loses nothing.
- ``/fapi/v1/depth`` and ``/api/v3/depth``: a snapshot of the server's own book (the initial
  snapshot plus every depth diff published so far), with ``lastUpdateId`` = the last diff's ``u``.
- ``/fapi/v1/time`` and ``/api/v3/time``.

It misbehaves on request, through methods (now) or ``at_frame(index, fn)`` (deterministically,
just before frame ``index`` is published): ``disconnect``, ``stall``/``resume``, ``inject_gap``
(the next depth diff is applied to the server's book but sent to nobody), ``send_garbage``,
``fail_rest`` (429 with ``Retry-After``, 418, 5xx). Runs on the event loop that started it.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Sequence

from aiohttp import WSMsgType, web
from arbor.adapters.binance.book import OrderBook
from arbor.adapters.testing.ws_replay import ReplayWsServer


class FakeBinanceServer(ReplayWsServer[frozenset[str]]):
    """Binance market data on 127.0.0.1; every fault is switched on explicitly by the test."""

    name = "fake-binance"

    def __init__(self, frames: Sequence[bytes], snapshots: dict[str, dict] | None = None, *,
                 pace_s: float = 0.0, pause_when_idle: bool = True, clock_ms: Callable[[], int] | None = None) -> None:
        super().__init__(frames, pace_s=pace_s)
        self._meta = [_frame_meta(f) for f in self._frames]
        self._pause_when_idle = pause_when_idle
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._books: dict[str, OrderBook] = {}
        self._last_u: dict[str, int] = {}
        for symbol, snap in (snapshots or {}).items():
            book = OrderBook()
            book.load(snap["bids"], snap["asks"])
            self._books[symbol.upper()] = book
            self._last_u[symbol.upper()] = snap["lastUpdateId"]
        self._rest_failures: deque[tuple[int, float | None]] = deque()
        self._gaps_pending = 0
        self.stats.update(frames_skipped=0, rest_requests=0, rest_failures=0)
        self.skipped: list[int] = []  # frame indexes injected as gaps

    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/stream", self._ws)
        app.router.add_get("/ws/{stream:.*}", self._ws)
        app.router.add_get("/fapi/v1/depth", self._depth)
        app.router.add_get("/api/v3/depth", self._depth)
        app.router.add_get("/fapi/v1/time", self._time)
        app.router.add_get("/api/v3/time", self._time)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- control API (beyond the shared one) -------------------------------------------------------

    def inject_gap(self, count: int = 1) -> None:
        """Skip the next ``count`` depth diffs: the server's book applies them, nobody receives them."""
        self._gaps_pending += count

    def fail_rest(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        """Answer the next ``times`` REST requests with ``status`` (and a ``Retry-After`` header)."""
        for _ in range(times):
            self._rest_failures.append((status, retry_after))

    # -- websocket ---------------------------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        if "stream" in request.match_info:
            streams = frozenset([request.match_info["stream"]])
        else:
            streams = frozenset(s for s in request.query.get("streams", "").split("/") if s)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._conns[ws] = streams
        self.stats["connections"] += 1
        self._wake.set()
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_client_text(ws, msg.data)
        finally:
            self._conns.pop(ws, None)
        return ws

    async def _on_client_text(self, ws: web.WebSocketResponse, text: str) -> None:
        try:
            req = json.loads(text)
            method, params, req_id = req["method"], req.get("params", []), req["id"]
        except (ValueError, KeyError, TypeError):
            await ws.send_str(json.dumps({"error": {"code": 2, "msg": "Invalid request"}}))
            return
        streams = set(self._conns.get(ws, frozenset()))
        if method == "SUBSCRIBE":
            streams.update(params)
        elif method == "UNSUBSCRIBE":
            streams.difference_update(params)
        elif method == "LIST_SUBSCRIPTIONS":
            await ws.send_str(json.dumps({"result": sorted(streams), "id": req_id}))
            return
        self._conns[ws] = frozenset(streams)
        await ws.send_str(json.dumps({"result": None, "id": req_id}))

    def _receivers(self, index: int) -> list[web.WebSocketResponse] | None:
        if self._pause_when_idle and not self._conns:
            return None
        stream = self._meta[index][0]
        return [ws for ws, streams in self._conns.items() if stream in streams]

    def _before_send(self, index: int) -> bool:
        _, symbol, depth = self._meta[index]
        if depth is None:
            return True
        self._apply_depth(symbol, depth)
        if self._gaps_pending:
            self._gaps_pending -= 1
            self.skipped.append(index)
            self.stats["frames_skipped"] += 1
            return False
        return True

    def _apply_depth(self, symbol: str, depth: dict) -> None:
        book = self._books.get(symbol)
        if book is None or depth["u"] <= self._last_u[symbol]:
            return
        book.apply(depth["b"], depth["a"])
        self._last_u[symbol] = depth["u"]

    # -- REST --------------------------------------------------------------------------------------

    def _rest_fault(self) -> web.Response | None:
        self.stats["rest_requests"] += 1
        if not self._rest_failures:
            return None
        status, retry_after = self._rest_failures.popleft()
        self.stats["rest_failures"] += 1
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        body = {"code": -1003, "msg": "Too many requests."} if status in (418, 429) else {"code": -1000, "msg": "Internal error."}
        return web.json_response(body, status=status, headers=headers)

    async def _depth(self, request: web.Request) -> web.Response:
        fault = self._rest_fault()
        if fault is not None:
            return fault
        symbol = request.query.get("symbol", "").upper()
        book = self._books.get(symbol)
        if book is None:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        limit = int(request.query.get("limit", "1000"))
        bids, asks = book.top(limit)
        body: dict = {"lastUpdateId": self._last_u[symbol]}
        if request.path.startswith("/fapi"):
            now = self._clock_ms()
            body.update(E=now, T=now)
        body["bids"] = [[str(p), str(q)] for p, q in bids]
        body["asks"] = [[str(p), str(q)] for p, q in asks]
        return web.Response(text=json.dumps(body, separators=(",", ":")), content_type="application/json")

    async def _time(self, request: web.Request) -> web.Response:
        fault = self._rest_fault()
        return fault or web.json_response({"serverTime": self._clock_ms()})


def _frame_meta(frame: bytes) -> tuple[str, str, dict | None]:
    """(stream name, SYMBOL, depth diff data or None) of one enveloped frame."""
    obj = json.loads(frame)
    stream = obj["stream"]
    data = obj["data"]
    depth = data if data.get("e") == "depthUpdate" else None
    return stream, stream.partition("@")[0].upper(), depth

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

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from aiohttp import WSMsgType, web
from arbor.adapters.binance.book import OrderBook


class FakeBinanceServer:
    """Binance market data on 127.0.0.1; every fault is switched on explicitly by the test."""

    def __init__(self, frames: Sequence[bytes], snapshots: dict[str, dict] | None = None, *,
                 pace_s: float = 0.0, pause_when_idle: bool = True, clock_ms: Callable[[], int] | None = None) -> None:
        self._frames = list(frames)
        self._meta = [_frame_meta(f) for f in self._frames]
        self._pace_s = pace_s
        self._pause_when_idle = pause_when_idle
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._books: dict[str, OrderBook] = {}
        self._last_u: dict[str, int] = {}
        for symbol, snap in (snapshots or {}).items():
            book = OrderBook()
            book.load(snap["bids"], snap["asks"])
            self._books[symbol.upper()] = book
            self._last_u[symbol.upper()] = snap["lastUpdateId"]
        self._conns: dict[web.WebSocketResponse, frozenset[str]] = {}
        self._faults: dict[int, list[Callable[[], None]]] = {}
        self._rest_failures: deque[tuple[int, float | None]] = deque()
        self._gaps_pending = 0
        self._garbage: deque[bytes] = deque()
        self._stalled = False
        self._wake = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._publisher: asyncio.Task | None = None
        self.finished = asyncio.Event()
        self.port = 0
        self.position = 0  # index of the next frame to publish
        self.stats = {"connections": 0, "frames_sent": 0, "frames_skipped": 0, "disconnects": 0,
                      "rest_requests": 0, "rest_failures": 0, "garbage_sent": 0}
        self.skipped: list[int] = []  # frame indexes injected as gaps

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> FakeBinanceServer:
        app = web.Application()
        app.router.add_get("/stream", self._ws)
        app.router.add_get("/ws/{stream:.*}", self._ws)
        app.router.add_get("/fapi/v1/depth", self._depth)
        app.router.add_get("/api/v3/depth", self._depth)
        app.router.add_get("/fapi/v1/time", self._time)
        app.router.add_get("/api/v3/time", self._time)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # aiohttp has no public bound port; set once started
        self._publisher = asyncio.create_task(self._publish(), name="fake-binance-publisher")
        return self

    async def close(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            await asyncio.gather(self._publisher, return_exceptions=True)
        for ws in list(self._conns):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeBinanceServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def connection_count(self) -> int:
        return len(self._conns)

    # -- control API -------------------------------------------------------------------------------

    def at_frame(self, index: int, fault: Callable[[], None]) -> None:
        """Run ``fault`` (one of the control methods) just before frame ``index`` is published."""
        self._faults.setdefault(index, []).append(fault)

    def disconnect(self) -> None:
        """Close every websocket now (code 1001, as Binance does); frames already sent are delivered."""
        for ws in list(self._conns):
            self._conns.pop(ws, None)
            self.stats["disconnects"] += 1
            asyncio.ensure_future(ws.close(code=1001, message=b"going away"))

    def stall(self) -> None:
        """Stop sending frames but keep every socket open (and answering pings)."""
        self._stalled = True

    def resume(self) -> None:
        self._stalled = False
        self._wake.set()

    def inject_gap(self, count: int = 1) -> None:
        """Skip the next ``count`` depth diffs: the server's book applies them, nobody receives them."""
        self._gaps_pending += count

    def send_garbage(self, payloads: Iterable[bytes]) -> None:
        """Send these frames (as text) to every connection before the next recorded frame."""
        self._garbage.extend(payloads)
        self._wake.set()

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

    async def _publish(self) -> None:
        while True:
            while self._garbage and self._conns:
                payload = self._garbage.popleft().decode(errors="replace")
                for ws in list(self._conns):
                    await self._send(ws, payload)
                self.stats["garbage_sent"] += 1
            if self.position >= len(self._frames):
                self.finished.set()
                await self._wait_for_work()
                continue
            for fault in self._faults.pop(self.position, ()):
                fault()
            if self._stalled or (self._pause_when_idle and not self._conns):
                await self._wait_for_work()
                continue
            index = self.position
            self.position += 1
            stream, symbol, depth = self._meta[index]
            if depth is not None:
                self._apply_depth(symbol, depth)
                if self._gaps_pending:
                    self._gaps_pending -= 1
                    self.skipped.append(index)
                    self.stats["frames_skipped"] += 1
                    continue
            text = self._frames[index].decode()
            for ws, streams in list(self._conns.items()):
                if stream in streams:
                    await self._send(ws, text)
            self.stats["frames_sent"] += 1
            await asyncio.sleep(self._pace_s)

    async def _wait_for_work(self) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=0.05)

    async def _send(self, ws: web.WebSocketResponse, text: str) -> None:
        try:
            await ws.send_str(text)
        except (ConnectionError, RuntimeError):
            self._conns.pop(ws, None)

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

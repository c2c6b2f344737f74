"""What the fake venue websocket servers share: an aiohttp server on 127.0.0.1 that replays recorded
frames, one shared sequence, to the connections subscribed to each frame, with explicit faults.

``ReplayWsServer`` owns the lifecycle (``start``/``close``, ``async with``, the ephemeral port), the
control API every fake offers (``at_frame``, ``disconnect``, ``stall``/``resume``,
``send_garbage``) and the publish loop. A venue's fake adds its routes (``_routes``), its
subscription protocol (its websocket handler fills ``self._conns[ws]``) and says, per frame, who
receives it (``_receivers``: ``None`` holds the frame back until something changes) and whether it
is sent at all (``_before_send``: ``False`` swallows it). Runs on the event loop that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, Self, TypeVar

from aiohttp import web

Subs = TypeVar("Subs")  # what a connection is subscribed to, in the venue's own terms


class ReplayWsServer(Generic[Subs]):
    """Replays ``frames`` at ``pace_s`` seconds per frame; every fault is switched on by the test."""

    name = "fake-venue"

    def __init__(self, frames: Sequence[bytes], *, pace_s: float = 0.0) -> None:
        self._frames = list(frames)
        self._pace_s = pace_s
        self._conns: dict[web.WebSocketResponse, Subs] = {}
        self._faults: dict[int, list[Callable[[], None]]] = {}
        self._garbage: deque[bytes] = deque()
        self._stalled = False
        self._wake = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._publisher: asyncio.Task[None] | None = None
        self.finished = asyncio.Event()
        self.port = 0
        self.position = 0  # index of the next frame to publish
        self.stats = {"connections": 0, "frames_sent": 0, "disconnects": 0, "garbage_sent": 0}

    # -- what a venue's fake provides ------------------------------------------------------------

    def _routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def _receivers(self, index: int) -> list[web.WebSocketResponse] | None:
        """The connections frame ``index`` goes to, or None to hold it back for now."""
        raise NotImplementedError

    def _before_send(self, index: int) -> bool:
        """Called once per frame as it is published; False means nobody receives it."""
        return True

    def _after_send(self, index: int, text: str) -> None:
        """Called once per frame after it was sent to its receivers."""

    def _note_sent(self, ws: web.WebSocketResponse) -> None:
        """Called after every text successfully sent to ``ws``."""

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> Self:
        app = web.Application()
        self._routes(app)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # aiohttp has no public bound port; set once started
        self._publisher = asyncio.create_task(self._publish(), name=f"{self.name}-publisher")
        return self

    async def close(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            await asyncio.gather(self._publisher, return_exceptions=True)
        for ws in list(self._conns):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

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
        """Close every websocket now (code 1001, as the venues do); frames already sent are delivered."""
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

    def send_garbage(self, payloads: Iterable[bytes]) -> None:
        """Send these frames (as text) to every connection before the next recorded frame."""
        self._garbage.extend(payloads)
        self._wake.set()

    # -- publishing --------------------------------------------------------------------------------

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
            receivers = None if self._stalled else self._receivers(self.position)
            if receivers is None:
                await self._wait_for_work()
                continue
            index = self.position
            self.position += 1
            if not self._before_send(index):
                continue
            text = self._frames[index].decode()
            for ws in receivers:
                await self._send(ws, text)
            self._after_send(index, text)
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
        else:
            self._note_sent(ws)

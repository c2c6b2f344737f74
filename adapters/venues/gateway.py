"""The live venue gateway: the per-symbol ``"venue"`` actor of live mode, and its I/O worker.

``VenueGatewayLogic`` is an ordinary, I/O-free actor logic. The executor sends it ``PlaceOrder``,
``RequestCancel``, ``QueryOrder`` and ``QueryPosition`` (``actors.topology``); it records each
request, hands it to a ``VenuePort`` and returns ``[]``. The venue's answers do not come back as
this actor's outputs: the I/O worker sends them into the runtime as external inputs addressed to
``"{SYMBOL}/executor"`` with sender ``"{SYMBOL}/venue"``, so they are journaled with their receive
time and a replay reproduces the executor without any network.

``VenuePort`` is the hand-off: thread-safe, it buffers requests until a worker is connected (the
executor's start-up reconciliation may ask before the worker's loop runs) and then passes each
one on, in order, to the worker's ``submit``.

``VenueIOWorker`` owns one asyncio loop (run on a thread the runtime joins on stop), one aiohttp
session and one venue client (``BinanceFuturesRest`` or ``HyperliquidExchange``: anything with
``async handle(msg) -> list``). Requests of one symbol are handled one at a time, in the order
the executor sent them, so a cancel never overtakes its place; symbols do not wait for each
other. A client exception is logged and counted, never raised into the runtime: the executor's
timeouts query the venue's records, which settle the order. An optional user-data stream (Binance)
feeds fills and acks the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from arbor.actors.base import ActorContext, ActorLogic
from arbor.messages import PlaceOrder, PositionReported, QueryOrder, QueryPosition, RawMarketEvent, RequestCancel

Submit = Callable[[Any], None]
Deliver = Callable[[list[Any]], None]


class VenuePort:
    """Requests from a gateway actor to whichever I/O worker is connected, in order, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Any] = []
        self._sink: Submit | None = None

    def submit(self, msg: Any) -> None:
        with self._lock:
            if self._sink is None:
                self._pending.append(msg)
            else:
                self._sink(msg)

    def connect(self, sink: Submit) -> None:
        """Attach the worker; what was submitted before goes first."""
        with self._lock:
            self._sink = sink
            pending, self._pending = self._pending, []
            for msg in pending:
                sink(msg)

    @property
    def connected(self) -> bool:
        return self._sink is not None

    @property
    def pending(self) -> int:
        return len(self._pending)


class VenueGatewayLogic(ActorLogic):
    """The ``"venue"`` actor of live mode: records each executor request and passes it to the port."""

    ROLE = "venue"

    def __init__(self, ctx: ActorContext, port: VenuePort, venue: str = "binance_usdm") -> None:
        super().__init__(ctx)
        self.port = port
        self.venue = venue
        self.requests: Counter[str] = Counter()
        self.recent: deque[Any] = deque(maxlen=64)  # the last requests, for the operator and post-mortems
        self.market_events = 0

    def _forward(self, msg: Any) -> list[Any]:
        self.requests[type(msg).__name__] += 1
        self.recent.append(msg)
        self.port.submit(msg)
        return []

    def on_place_order(self, msg: PlaceOrder) -> list[Any]:
        self.ctx.log.info("live place {} {} {} {} ({})", msg.symbol, msg.side.value, msg.qty, msg.order_type.value,
                          msg.client_order_id)
        return self._forward(msg)

    def on_request_cancel(self, msg: RequestCancel) -> list[Any]:
        return self._forward(msg)

    def on_query_order(self, msg: QueryOrder) -> list[Any]:
        return self._forward(msg)

    def on_query_position(self, msg: QueryPosition) -> list[Any]:
        return self._forward(msg)

    def on_raw_market_event(self, msg: RawMarketEvent) -> list[Any]:
        self.market_events += 1  # the real venue matches orders itself: market data is not needed here
        return []

    def stats(self) -> dict[str, Any]:
        return {"venue": self.venue, **{f"requests_{k}": v for k, v in sorted(self.requests.items())},
                "port_connected": self.port.connected, "port_pending": self.port.pending}


class VenueIOWorker:
    """One venue client on its own asyncio loop; answers go to ``deliver`` (into the runtime).

    ``client_factory(session)`` returns the client (``async handle(msg) -> list``) and may be a
    coroutine function; ``setup(client)`` runs once before requests are served (clock sync, meta);
    ``user_stream(client, session, deliver_user)`` returns an object with ``async run(stop_event)``
    whose messages are delivered like answers (``PositionReported`` from it is logged, not
    forwarded: it carries no open orders and would start an unsolicited reconciliation).
    """

    def __init__(self, client_factory: Callable[[Any], Any], deliver: Deliver, *, log: Any,
                 setup: Callable[[Any], Awaitable[None]] | None = None,
                 user_stream: Callable[[Any, Any, Deliver], Any] | None = None) -> None:
        self._client_factory = client_factory
        self._deliver = deliver
        self._setup = setup
        self._user_stream_factory = user_stream
        self._log = log
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._lock = threading.Lock()
        self.ready = threading.Event()
        self.stats: Counter[str] = Counter()

    # -- thread-safe ----------------------------------------------------------------------------
    def submit(self, msg: Any) -> None:
        """Queue one request (any thread); the loop picks it up at once."""
        self._inbox.put(msg)
        with self._lock:
            loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the runtime is stopping
                loop.call_soon_threadsafe(wake.set)

    def run_until(self, stop: threading.Event, poll_s: float = 0.05) -> None:
        """The worker thread's body: serve requests until ``stop`` is set, then close everything."""
        asyncio.run(self._main(stop, poll_s))

    # -- the loop -------------------------------------------------------------------------------
    async def _main(self, stop: threading.Event, poll_s: float) -> None:
        import aiohttp

        wake = asyncio.Event()
        with self._lock:
            self._loop, self._wake = asyncio.get_running_loop(), wake
        queues: dict[str, asyncio.Queue[Any]] = {}
        workers: list[asyncio.Task] = []
        stop_async = asyncio.Event()
        async with aiohttp.ClientSession() as session:
            client = self._client_factory(session)
            if asyncio.iscoroutine(client):
                client = await client
            if self._setup is not None:
                try:
                    await self._setup(client)
                except Exception as exc:  # e.g. the clock sync failed: requests still go out, and say so
                    self.stats["setup_failures"] += 1
                    self._log.error("venue setup failed: {}: {}", type(exc).__name__, exc)
            user_task = None
            if self._user_stream_factory is not None:
                stream = self._user_stream_factory(client, session, self._deliver_user)
                user_task = asyncio.create_task(stream.run(stop_async), name="user-data")
                self.user_stream = stream
            self.ready.set()
            try:
                while not stop.is_set():
                    while True:
                        try:
                            msg = self._inbox.get_nowait()
                        except queue.Empty:
                            break
                        symbol = getattr(msg, "symbol", "")
                        q = queues.get(symbol)
                        if q is None:
                            q = queues[symbol] = asyncio.Queue()
                            workers.append(asyncio.create_task(self._serve(client, q), name=f"venue-{symbol}"))
                        q.put_nowait(msg)
                    wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), timeout=poll_s)
            finally:
                with self._lock:
                    self._loop = self._wake = None
                stop_async.set()
                for t in workers:
                    t.cancel()
                if user_task is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(stream.close(), timeout=1.0)
                    user_task.cancel()
                await asyncio.gather(*workers, *( [user_task] if user_task else []), return_exceptions=True)
                self._log.info("venue worker stopped: {}", dict(self.stats))

    async def _serve(self, client: Any, q: asyncio.Queue[Any]) -> None:
        while True:
            msg = await q.get()
            kind = type(msg).__name__
            self.stats[f"requests_{kind}"] += 1
            try:
                answers = await client.handle(msg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never into the runtime: the executor's timeout queries the records
                self.stats["client_errors"] += 1
                self._log.error("venue {} {} failed: {}: {}", kind, getattr(msg, "client_order_id", ""),
                                type(exc).__name__, exc)
                continue
            if answers:
                self.stats["answers"] += len(answers)
                self._deliver(list(answers))

    def _deliver_user(self, messages: Iterable[Any]) -> None:
        out = []
        for m in messages:
            if isinstance(m, PositionReported):
                self.stats["user_positions_logged"] += 1
                self._log.info("venue position {}: qty {} avg {}", m.symbol, m.qty, m.avg_price)
                continue
            out.append(m)
        if out:
            self.stats["user_messages"] += len(out)
            self._deliver(out)


def runtime_delivery(runtime: Any, symbols: Iterable[str], log: Any) -> Deliver:
    """Answers into the runtime: each to ``{SYMBOL}/executor`` as an external input from ``{SYMBOL}/venue``."""
    known = frozenset(symbols)

    def deliver(messages: list[Any]) -> None:
        for m in messages:
            symbol = getattr(m, "symbol", "")
            if symbol not in known:
                log.warning("venue answer for unconfigured symbol {!r} ({}) not delivered", symbol, type(m).__name__)
                continue
            runtime.send(f"{symbol}/executor", m, sender=f"{symbol}/venue")

    return deliver

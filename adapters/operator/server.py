"""The operator HTTP API, websocket event stream, metrics and dashboard, on aiohttp.

Bound to 127.0.0.1 unless told otherwise. Every endpoint needs ``Authorization: Bearer <token>``
except ``GET /healthz`` and the dashboard's static files (``GET /``, ``/static/*``: no data, no
actions; the page asks for the token and sends it with every call). The websocket also accepts
the token as the subprotocol pair ``["arbor.bearer", <token>]``, since browsers cannot set headers
on a websocket. Without a configured token the server refuses to start.

``OperatorServer.start()`` runs the app on its own event loop in a background thread; calls
into the cluster (the ``ClusterView``) run on a small thread pool so that a slow ``ask`` never stalls
the loop; ``stop()`` returns within about two seconds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import json
import os
import threading
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from aiohttp import WSMsgType, web
from arbor.adapters.operator.connections import ConnectionCap
from arbor.adapters.operator.events import EventHub, Webhook
from arbor.adapters.operator.view import ClusterView, CommandError, OperatorView, ViewSource, jsonable
from arbor.messages.risk import has_visible_text
from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

TOKEN_ENV = "ARBOR_OPERATOR_TOKEN"
WS_PROTOCOL = "arbor.bearer"
STATIC_DIR = Path(__file__).parent / "static"
MIN_TOKEN_LEN = 16
MAX_BODY_BYTES = 64 * 1024  # a command body past this answers 413
DEFAULT_MAX_CONNECTIONS = 64  # operator.max_connections
_PUBLIC = ("/healthz", "/", "/favicon.ico")
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'",
}


class OperatorConfigError(RuntimeError):
    """The operator server is not configured well enough to run safely (no token, say)."""


def token_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The bearer token from ``ARBOR_OPERATOR_TOKEN``; an error naming the variable if it is missing or short."""
    token = (os.environ if environ is None else environ).get(TOKEN_ENV, "").strip()
    if not token:
        raise OperatorConfigError(f"{TOKEN_ENV} is not set: the operator API never runs without a bearer token")
    if len(token) < MIN_TOKEN_LEN:
        raise OperatorConfigError(f"{TOKEN_ENV} is too short: use at least {MIN_TOKEN_LEN} characters")
    return token


class OperatorServer:
    """aiohttp app around a view (``ClusterView`` over either run mode's source), an ``EventHub``
    and a metrics registry."""

    def __init__(self, view: OperatorView, hub: EventHub, registry: CollectorRegistry, token: str | None, *,
                 host: str = "127.0.0.1", port: int = 8750, webhook: Webhook | None = None,
                 static_dir: Path = STATIC_DIR, ws_heartbeat_s: float = 15.0,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        """``max_connections``: open connections the server keeps (see ``connections.ConnectionCap``)."""
        token = check_token(token)
        self.view = view
        self.hub = hub
        self.registry = registry
        self._token = token.strip().encode()
        self.host = host
        self.port = port
        self.webhook = webhook
        self.static_dir = static_dir
        self._ws_heartbeat = ws_heartbeat_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self.connections = ConnectionCap(max_connections)
        self._listener: asyncio.Server | None = None
        self.url = ""

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 5.0) -> str:
        """Serve in a background thread; return the base URL once listening (errors re-raised here)."""
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="arbor-operator-io")

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._startup())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="arbor-operator", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise OperatorConfigError(f"operator server did not start within {timeout}s")
        if failure:
            self._thread.join(1.0)
            raise failure[0]
        logger.bind(actor="operator", event_type="lifecycle").info("operator API on {}", self.url)
        return self.url

    def stop(self, timeout: float = 2.0) -> None:
        """Close websockets, stop the site and the loop thread within ``timeout`` seconds."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(timeout * 0.7), loop)
        try:
            fut.result(timeout)
        except Exception as exc:
            logger.bind(actor="operator", event_type="stop").warning("operator shutdown incomplete: {!r}", exc)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def _startup(self) -> None:
        app = self.app()
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        # Listen through the connection cap (aiohttp's own sites would accept without bound).
        self.connections.server = self._runner.server
        self._listener = await asyncio.get_running_loop().create_server(self.connections, self.host, self.port,
                                                                        reuse_address=True)
        host, port = self._listener.sockets[0].getsockname()[:2]
        self.port = port
        self.url = f"http://{host}:{port}"
        if self.webhook is not None:
            await self.webhook.open()
        self.hub.attach(asyncio.get_running_loop(), on_alert=self.webhook)

    async def _shutdown(self, budget: float) -> None:
        self.hub.detach()
        closing = [ws.close(code=1001, message=b"server stopping") for ws in list(self._sockets)]
        if closing:
            await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), budget / 2)
        if self.webhook is not None:
            await self.webhook.close()
        if self._listener is not None:
            self._listener.close()
        if self._runner is not None:
            await asyncio.wait_for(self._runner.cleanup(), budget / 2)

    # -- the app -----------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.connections.middleware, self._headers, self._auth],
                              client_max_size=MAX_BODY_BYTES)
        r = app.router
        r.add_get("/healthz", self.healthz)
        r.add_get("/", self.dashboard)
        r.add_static("/static/", self.static_dir, show_index=False)
        r.add_get("/api/state", self._read(self.view.state))
        r.add_get("/api/positions", self._read(self.view.positions))
        r.add_get("/api/risk/status", self._read(self.view.risk_status))
        r.add_get("/api/tree", self._read(self.view.tree))
        r.add_get("/api/assumptions", self._read(self.view.assumptions))
        r.add_get("/api/events/recent", self.recent_events)
        r.add_post("/api/kill", self._command(lambda b, who: self.view.kill(who, b.reason or "operator kill switch")))
        r.add_post("/api/reset", self._command(lambda b, who: self.view.reset(who, b.require_reason())))
        r.add_post("/api/pause", self._command(lambda b, who: self.view.pause(b.symbol, who, b.reason or "operator pause")))
        r.add_post("/api/resume", self._command(lambda b, who: self.view.resume(b.symbol, who, b.reason or "operator resume")))
        r.add_post("/api/release", self._command(
            lambda b, who: self.view.release(b.require_symbol(), who, b.reason or "operator release")))
        r.add_post("/api/flatten", self._command(
            lambda b, who: self.view.flatten(b.require_symbol(), who, b.reason or "operator flatten")))
        r.add_get("/ws/events", self.events)
        r.add_get("/metrics", self.metrics)
        return app

    @web.middleware
    async def _headers(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                       ) -> web.StreamResponse:
        resp = await handler(request)
        if not resp.prepared:
            resp.headers.update(_SECURITY_HEADERS)
            if request.path.startswith("/api/"):
                resp.headers["Cache-Control"] = "no-store"
        return resp

    @web.middleware
    async def _auth(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        if request.method in ("GET", "HEAD") and (request.path in _PUBLIC or request.path.startswith("/static/")):
            return await handler(request)
        if not self._authorized(request):
            return web.json_response({"error": "unauthorized: send Authorization: Bearer <token>"}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="arbor"'})
        return await handler(request)

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self._token):
            return True
        if request.path == "/ws/events":
            protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
            if len(protocols) == 2 and protocols[0] == WS_PROTOCOL:
                return hmac.compare_digest(protocols[1].encode(), self._token)
        return False

    # -- handlers ----------------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def dashboard(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(self.static_dir / "dashboard.html")

    async def _call(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def _read(self, fn: Callable[[], Any]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            try:
                return _json(await self._call(fn))
            except Exception as exc:  # a group that does not answer: say so, keep serving
                return _json({"error": f"cluster did not answer: {exc!r}"}, status=503)
        return handler

    def _command(self, fn: Callable[[_Body, str], list[Any]]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            try:
                body = _Body(await request.json() if request.can_read_body else {})
                who = body.who()
                sent = await self._call(lambda: fn(body, who))
            except web.HTTPRequestEntityTooLarge:
                return _json({"error": f"body over {MAX_BODY_BYTES // 1024} KiB"}, status=413)
            except (CommandError, ValueError) as exc:
                return _json({"error": str(exc)}, status=400)
            except Exception as exc:
                return _json({"error": f"command not delivered: {exc!r}"}, status=503)
            return _json({"ok": True, "sent": [{"msg_id": e.msg_id, "receiver": e.receiver,
                                                "message": type(e.payload).TAG} for e in sent]})
        return handler

    async def recent_events(self, request: web.Request) -> web.Response:
        return _json({"events": self.hub.recent()})

    async def metrics(self, request: web.Request) -> web.Response:
        body = await self._call(lambda: generate_latest(self.registry))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def events(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=(WS_PROTOCOL,), heartbeat=self._ws_heartbeat)
        await ws.prepare(request)
        self._sockets.add(ws)
        client = self.hub.subscribe(backlog=request.query.get("backlog", "1") != "0")

        async def drain_incoming() -> None:
            async for msg in ws:  # the client only listens; reading notices when it leaves
                if msg.type == WSMsgType.ERROR:
                    break

        reader = asyncio.create_task(drain_incoming())
        try:
            while not ws.closed:
                getter = asyncio.create_task(client.get_batch())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                for ev in getter.result():
                    await ws.send_str(json.dumps(ev, default=str))
        except (ConnectionResetError, RuntimeError):
            pass
        finally:
            self.hub.unsubscribe(client)
            reader.cancel()
            self._sockets.discard(ws)
            await ws.close()
        return ws


class _Body:
    """The JSON body of a command: ``symbol``, ``reason`` and ``who``, checked."""

    def __init__(self, raw: Any) -> None:
        if not isinstance(raw, dict):
            raise ValueError("the body must be a JSON object")
        self.raw = raw
        self.symbol = self._str("symbol") or None
        self.reason = self._str("reason")

    def _str(self, key: str) -> str:
        value = self.raw.get(key, "")
        if value is None:
            return ""
        if not isinstance(value, str) or len(value) > 500:
            raise ValueError(f"{key} must be a string of at most 500 characters")
        return value.strip()

    def who(self) -> str:
        who = self._str("who") or "operator"
        return who[:64]

    def require_reason(self) -> str:
        if not has_visible_text(self.reason):
            raise ValueError("reason is required (visible characters, not only spaces or zero-width ones)")
        return self.reason

    def require_symbol(self) -> str:
        if not self.symbol:
            raise ValueError("symbol is required")
        return self.symbol


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(jsonable(data), status=status, dumps=lambda d: json.dumps(d, default=str))


def check_token(token: str | None) -> str:
    """``token`` if it is usable, else ``OperatorConfigError``: the operator API never runs open."""
    if not token or len(token.strip()) < MIN_TOKEN_LEN:
        raise OperatorConfigError(f"no usable bearer token ({TOKEN_ENV}, at least {MIN_TOKEN_LEN} characters): "
                                  "the operator API never runs open")
    return token


class Service(Protocol):
    """A thread the surface starts before it serves and stops after (the multi-process channel, follower)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class OperatorLifecycle:
    """The one start/stop of an operator surface, whatever the run mode: an ``EventHub`` and its
    ``EventStream``, a metrics registry, the HTTP server around a ``ClusterView`` and the
    liveness cycle.

    Built before the cluster (it checks the token first, so a missing token stops the start
    before any actor or process runs). ``serve(source, errors)`` starts the given services, the
    server and the liveness cycle and returns the base URL; ``stop()`` stops the cycle, the
    server and the services (in reverse), within about 2 s each. ``OperatorSurface`` (one
    process) and ``cluster_view.DistributedOperator`` (many) only assemble what they pass in.
    """

    def __init__(self, liveness_dir: Path, token: str | None, *, clock: Any, registry: CollectorRegistry | None = None,
                 host: str = "127.0.0.1", port: int = 8750, webhook_url: str | None = None,
                 cycle_interval_s: float = 1.0, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        from arbor.adapters.operator.events import EventStream

        self._token = check_token(token)
        self.liveness_dir = Path(liveness_dir)
        self.clock = clock
        self._host, self._port = host, port
        self._webhook_url = webhook_url
        self._cycle_interval = cycle_interval_s
        self._max_connections = max_connections
        self.registry = registry if registry is not None else CollectorRegistry()
        self.hub = EventHub()
        self.stream = EventStream(self.hub)
        self.view: ClusterView | None = None
        self.server: OperatorServer | None = None
        self.cycle: Any = None
        self._services: tuple[Service, ...] = ()

    def serve(self, source: ViewSource, errors: Any, *, metrics: Any = None, services: tuple[Service, ...] = ()) -> str:
        """Start ``services``, serve the API over ``source`` and run the liveness cycle (errors
        from ``errors.take()``, Risk's figures into ``metrics`` if given); return the base URL."""
        from arbor.adapters.operator.liveness import EngineCycle, LivenessFiles

        self.view = ClusterView(source, hub=self.hub)
        self._services = services
        for s in services:
            s.start()
        webhook = Webhook(self._webhook_url) if self._webhook_url else None
        self.server = OperatorServer(self.view, self.hub, self.registry, self._token, host=self._host,
                                     port=self._port, webhook=webhook, max_connections=self._max_connections)
        url = self.server.start()
        self.view.set_stage("running")
        self.cycle = EngineCycle(LivenessFiles(self.liveness_dir), errors, self.clock, interval_s=self._cycle_interval,
                                 view=self.view, metrics=metrics, stream=self.stream)
        self.cycle.start()
        return url

    def stop(self) -> None:
        """Stop the liveness cycle, the server and the services, in that order."""
        if self.view is not None:
            self.view.set_stage("stopping")
        if self.cycle is not None:
            self.cycle.stop(1.0)
        if self.server is not None:
            self.server.stop(1.5)
        for s in reversed(self._services):
            s.stop()
        if self.view is not None:
            self.view.set_stage("stopped")


class OperatorSurface(OperatorLifecycle):
    """The operator surface of one process: its observers go to the runtime, ``start`` serves.

    Construct it before the runtime and pass ``observers`` to the runtime; ``start(runtime,
    board)`` then serves the API over a ``RuntimeSource`` and runs the liveness cycle.
    """

    def __init__(self, symbols: tuple[str, ...], clock: Any, liveness_dir: Path, token: str | None, *,
                 registry: CollectorRegistry | None = None, host: str = "127.0.0.1", port: int = 8750,
                 webhook_url: str | None = None, cycle_interval_s: float = 1.0,
                 journal: Callable[[Any], None] | None = None, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        from arbor.adapters.operator.liveness import ErrorCounter
        from arbor.adapters.operator.local import ClusterFacts
        from arbor.adapters.operator.metrics import ClusterMetrics

        super().__init__(liveness_dir, token, clock=clock, registry=registry, host=host, port=port,
                         webhook_url=webhook_url, cycle_interval_s=cycle_interval_s, max_connections=max_connections)
        self.symbols = symbols
        self._journal = journal
        self.metrics = ClusterMetrics(self.registry, clock)
        self.metrics.init_symbols(symbols)
        self.facts = ClusterFacts()
        self.errors = ErrorCounter()

    @property
    def observers(self) -> tuple[Any, ...]:
        return (self.facts, self.stream, self.metrics, self.errors)

    def start(self, runtime: Any, board: Any) -> str:
        """Serve the API and start the liveness cycle; return the base URL."""
        from arbor.adapters.operator.local import RuntimeSource

        source = RuntimeSource(runtime, board, self.facts, self.symbols, journal=self._journal)
        return self.serve(source, self.errors, metrics=self.metrics)

"""The operator API's limits: visible reasons, 413 for oversized bodies, a cap on connections."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from arbor.actors.testing import eventually
from arbor.adapters.operator import EventHub, OperatorServer
from prometheus_client import CollectorRegistry

from tests.http_helpers import call_json

TOKEN = "test-operator-token-0123456789"
CAP = 8


class CommandLog:
    """The operator view at the server's boundary: records each command, sends nothing."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, str, str]] = []

    def kill(self, who: str, reason: str) -> list[Any]:
        self.commands.append(("kill", who, reason))
        return []

    def reset(self, who: str, reason: str) -> list[Any]:
        self.commands.append(("reset", who, reason))
        return []

    def _symbol_command(self, name: str) -> Any:
        def command(symbol: str | None, who: str, reason: str) -> list[Any]:
            self.commands.append((name, who, reason))
            return []
        return command

    def __getattr__(self, name: str) -> Any:
        """The read endpoints answer an empty document; the other symbol commands are recorded too."""
        if name in ("state", "positions", "risk_status", "tree", "assumptions"):
            return dict
        if name in ("pause", "resume", "release", "flatten"):
            return self._symbol_command(name)
        raise AttributeError(name)


@pytest.fixture
def server() -> Iterator[tuple[OperatorServer, CommandLog]]:
    view = CommandLog()
    srv = OperatorServer(view, EventHub(), CollectorRegistry(), TOKEN, port=0, max_connections=CAP)
    srv.start()
    try:
        yield srv, view
    finally:
        srv.stop()


@pytest.mark.parametrize("reason", ["\u200b", "\u200b\u200c\u2060", " \t\u00a0\u3000 ", "\ufeff"])
def test_reset_reason_without_visible_characters_is_refused(server, reason: str) -> None:
    """A reset whose reason is only whitespace or zero-width characters is 400 and reaches nothing."""
    srv, view = server
    status, _ = call_json(srv.url + "/api/reset", "POST", {"reason": reason}, TOKEN, timeout=5)
    assert status == 400
    assert view.commands == []


def test_oversized_body_is_413(server) -> None:
    """A command body over 64 KiB answers 413, not 503, and reaches nothing."""
    srv, view = server
    status, _ = call_json(srv.url + "/api/reset", "POST", {"reason": "x" * (70 * 1024)}, TOKEN, timeout=5)
    assert status == 413
    assert view.commands == []


def _answers(url: str) -> bool:
    req = urllib.request.Request(url + "/api/reset", method="POST", data=json.dumps({"reason": "probe"}).encode(),
                                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status == 200


def _closed_by_server(s: socket.socket) -> bool:
    """Whether the server has closed (or answered and closed) this connection we never sent on."""
    s.settimeout(0.05)
    try:
        s.recv(1024)  # b"" at EOF, or a refusal just before it
    except TimeoutError:
        return False
    except OSError:
        pass  # reset by the server
    return True


def test_idle_connections_beyond_the_cap_are_shed_and_the_api_still_answers(server) -> None:
    """Many idle connections never hold more than the cap open, and an operator's request still gets through."""
    srv, view = server
    host, port = srv.url.removeprefix("http://").split(":")
    idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(5 * CAP)]
    try:
        eventually(lambda: sum(_closed_by_server(s) for s in idle) >= 4 * CAP, timeout=10)
        assert _answers(srv.url)
        assert view.commands == [("reset", "operator", "probe")]
    finally:
        for s in idle:
            s.close()

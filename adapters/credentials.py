"""Venue credentials, read from the environment and nowhere else, and never shown.

Variables: ``ARBOR_BINANCE_API_KEY`` / ``ARBOR_BINANCE_API_SECRET`` and
``ARBOR_HYPERLIQUID_PRIVATE_KEY`` / ``ARBOR_HYPERLIQUID_ACCOUNT``. A missing or empty one is a
``MissingCredential`` that names the variable (never its value). ``repr()`` and ``str()`` of a
credentials object show which venue and, for Hyperliquid, the public account address, never a
key or secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

BINANCE_API_KEY = "ARBOR_BINANCE_API_KEY"
BINANCE_API_SECRET = "ARBOR_BINANCE_API_SECRET"
HYPERLIQUID_PRIVATE_KEY = "ARBOR_HYPERLIQUID_PRIVATE_KEY"
HYPERLIQUID_ACCOUNT = "ARBOR_HYPERLIQUID_ACCOUNT"

_REDACTED = "<redacted>"
_HEX_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class MissingCredential(RuntimeError):
    """A credential variable is absent, empty or malformed; the message names it, never its value."""


@attrs.frozen(repr=False, eq=False)
class BinanceCredentials:
    """An API key (sent in the ``X-MBX-APIKEY`` header) and the secret that signs requests."""

    api_key: str
    api_secret: str

    def __repr__(self) -> str:
        return f"BinanceCredentials(api_key={_REDACTED}, api_secret={_REDACTED})"

    __str__ = __repr__

    def secrets(self) -> tuple[str, ...]:
        """The strings that must never appear in a log line."""
        return (self.api_key, self.api_secret)


@attrs.frozen(repr=False, eq=False)
class HyperliquidCredentials:
    """The signing key (the account's or an API wallet's) and the account it trades for."""

    private_key: str
    account_address: str

    def __repr__(self) -> str:
        return f"HyperliquidCredentials(account_address={self.account_address!r}, private_key={_REDACTED})"

    __str__ = __repr__

    def secrets(self) -> tuple[str, ...]:
        return (self.private_key,)


def binance_credentials_from_env(environ: Mapping[str, str] | None = None) -> BinanceCredentials:
    """Binance credentials from ``environ`` (default: the process environment)."""
    env = os.environ if environ is None else environ
    return BinanceCredentials(api_key=_required(env, BINANCE_API_KEY), api_secret=_required(env, BINANCE_API_SECRET))


def hyperliquid_credentials_from_env(environ: Mapping[str, str] | None = None) -> HyperliquidCredentials:
    """Hyperliquid credentials from ``environ``: a 32-byte hex key and a 0x-prefixed 20-byte address."""
    env = os.environ if environ is None else environ
    key = _required(env, HYPERLIQUID_PRIVATE_KEY)
    if not _HEX_KEY.match(key):
        raise MissingCredential(f"{HYPERLIQUID_PRIVATE_KEY} must be 32 bytes of hex (64 hex digits, optional 0x)")
    account = _required(env, HYPERLIQUID_ACCOUNT)
    if not _ADDRESS.match(account):
        raise MissingCredential(f"{HYPERLIQUID_ACCOUNT} must be a 0x-prefixed 20-byte hex address")
    return HyperliquidCredentials(private_key=key if key.startswith("0x") else "0x" + key, account_address=account)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each (non-empty) secret replaced by ``<redacted>``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    return text


def log_redactor(secrets: Iterable[str]) -> Callable[[dict[str, Any]], None]:
    """A loguru patcher that scrubs ``secrets`` from a record's message: a second line of defence.

    Install it where logging is configured (``logger.configure(patcher=...)``); adapters never log
    a secret in the first place.
    """
    held = tuple(s for s in secrets if s)

    def patch(record: dict[str, Any]) -> None:
        record["message"] = redact(record["message"], held)

    return patch


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value.strip():
        raise MissingCredential(f"environment variable {name} is not set (or empty); live trading needs it")
    return value.strip()

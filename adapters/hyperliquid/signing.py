"""Hyperliquid L1 action signing: msgpack action hash, EIP-712 "phantom agent", secp256k1 signature.

As the official hyperliquid-python-sdk does it (``hyperliquid.utils.signing.sign_l1_action``):
``connectionId = keccak(msgpack(action) || nonce (8 bytes BE) || vault flag [|| vault address]
[|| 0x00 || expiresAfter (8 bytes BE)])``, signed as the EIP-712 message
``Agent{source: "a" (mainnet) | "b" (testnet), connectionId}`` in the domain
``Exchange / 1 / chainId 1337 / verifyingContract 0x0``. Keccak, the EIP-712 encoding and the
signature come from eth-account (and its eth-utils); nothing cryptographic is written here.

eth-account is imported lazily (inside the functions), so the rest of the system runs without
it; only Hyperliquid order entry needs it. The key order of an action dict is part of its hash:
build actions with the keys in the SDK's order (see ``adapters.hyperliquid.exchange``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgpack

_DOMAIN = {"chainId": 1337, "name": "Exchange", "verifyingContract": "0x0000000000000000000000000000000000000000", "version": "1"}
_TYPES = {
    "Agent": [{"name": "source", "type": "string"}, {"name": "connectionId", "type": "bytes32"}],
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
}


class SigningUnavailable(RuntimeError):
    """eth-account is not installed: Hyperliquid order entry cannot sign."""


def action_hash(action: Any, nonce: int, vault_address: str | None = None, expires_after: int | None = None) -> bytes:
    """The 32-byte keccak of the action's msgpack encoding, nonce, vault and expiry."""
    keccak = _eth()[2]
    data = msgpack.packb(action)
    data += nonce.to_bytes(8, "big")
    if vault_address is None:
        data += b"\x00"
    else:
        data += b"\x01" + bytes.fromhex(vault_address.removeprefix("0x"))
    if expires_after is not None:
        data += b"\x00" + expires_after.to_bytes(8, "big")
    return keccak(data)


def l1_typed_data(connection_id: bytes, is_mainnet: bool) -> dict[str, Any]:
    """The EIP-712 message that is signed for an L1 action."""
    return {
        "domain": _DOMAIN,
        "types": _TYPES,
        "primaryType": "Agent",
        "message": {"source": "a" if is_mainnet else "b", "connectionId": connection_id},
    }


class L1Signer:
    """Signs L1 actions with one private key. ``repr()`` shows the signer's address only."""

    def __init__(self, private_key: str) -> None:
        account_cls = _eth()[0]
        self._account = account_cls.from_key(private_key)
        self.address: str = self._account.address

    def __repr__(self) -> str:
        return f"L1Signer(address={self.address!r})"

    def sign(
        self, action: Any, nonce: int, *, is_mainnet: bool, vault_address: str | None = None, expires_after: int | None = None
    ) -> dict[str, Any]:
        """``{"r": "0x..", "s": "0x..", "v": 27|28}``, the signature the /exchange endpoint expects."""
        _, encode_typed_data, _, to_hex = _eth()
        digest = action_hash(action, nonce, vault_address, expires_after)
        signed = self._account.sign_message(encode_typed_data(full_message=l1_typed_data(digest, is_mainnet)))
        return {"r": to_hex(signed.r), "s": to_hex(signed.s), "v": signed.v}


def recover_l1_signer(
    action: Any, signature: dict[str, Any], nonce: int, *, is_mainnet: bool, vault_address: str | None = None, expires_after: int | None = None
) -> str:
    """The address that signed ``action`` (what the venue checks against the account or its agents)."""
    account_cls, encode_typed_data, _, _ = _eth()
    digest = action_hash(action, nonce, vault_address, expires_after)
    message = encode_typed_data(full_message=l1_typed_data(digest, is_mainnet))
    vrs = (signature["v"], int(signature["r"], 16), int(signature["s"], 16))
    return account_cls.recover_message(message, vrs=vrs)


def decimal_to_wire(value: Decimal) -> str:
    """A price or size as the venue hashes it: plain notation, no trailing zeros ("100", "0.0147")."""
    if not value.is_finite():
        raise ValueError(f"not a finite decimal: {value}")
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _eth() -> tuple[Any, Any, Any, Any]:
    try:
        from eth_account import Account
        from eth_account.messages import encode_typed_data
        from eth_utils import keccak, to_hex
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise SigningUnavailable("Hyperliquid signing needs eth-account (pip install eth-account)") from exc
    return Account, encode_typed_data, keccak, to_hex

"""HMAC helpers shared by channel plugins that sign or verify requests."""

from __future__ import annotations

import hashlib
import hmac

from signoff.notify.model import Secret

__all__ = ["hmac_sha256_hex", "timing_safe_equal"]


def _key_bytes(key: Secret | str | bytes) -> bytes:
    if isinstance(key, Secret):
        return key.reveal().encode()
    if isinstance(key, str):
        return key.encode()
    return key


def hmac_sha256_hex(key: Secret | str | bytes, message: bytes) -> str:
    """Hex HMAC-SHA256 of ``message`` under ``key``."""
    return hmac.new(_key_bytes(key), message, hashlib.sha256).hexdigest()


def timing_safe_equal(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time comparison, so a signature check leaks nothing through timing."""
    a_bytes = a.encode() if isinstance(a, str) else a
    b_bytes = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(a_bytes, b_bytes)

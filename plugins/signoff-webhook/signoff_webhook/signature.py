"""The ``Signoff-Signature`` scheme, for senders and receivers.

Header: ``Signoff-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`` where each ``v1`` is
HMAC-SHA256 of ``f"{t}.".encode() + body`` under one configured secret (several during a key
rotation). This module uses only the standard library so receivers can copy it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

__all__ = ["SIGNATURE_HEADER", "SignatureVerificationError", "sign", "verify_signature"]

SIGNATURE_HEADER = "Signoff-Signature"


class SignatureVerificationError(Exception):
    """The request is not a fresh, authentic signoff delivery; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secrets: Iterable[str], timestamp: int | None = None) -> str:
    """The ``Signoff-Signature`` header value for ``body``, one ``v1`` per secret."""
    t = int(time.time()) if timestamp is None else timestamp
    parts = [f"t={t}"] + [f"v1={_digest(s, t, body)}" for s in secrets]
    return ",".join(parts)


def verify_signature(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Iterable[str],
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> int:
    """Verify a delivery; return its signature timestamp or raise ``SignatureVerificationError``.

    ``headers`` may use any capitalisation; ``body`` must be the raw bytes received. Any of
    ``secrets`` may match (rotation). Reject replays yourself: remember
    ``(Signoff-Event-Id, Signoff-Signature)`` pairs for ``tolerance_seconds``; a genuine retry
    carries the same event id with a new signature, so de-duplicate by event id and answer 2xx.
    """
    value = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower()), None)
    if not value:
        raise SignatureVerificationError("missing signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in value.split(","):
        key, _, item = part.strip().partition("=")
        if key == "t" and item.isdigit():
            timestamp = int(item)
        elif key == "v1":
            candidates.append(item)
    if timestamp is None or not candidates:
        raise SignatureVerificationError("malformed signature header")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise SignatureVerificationError("timestamp outside the tolerance window")
    expected = [_digest(secret, timestamp, body) for secret in secrets]
    # Compare every pair: constant time per comparison, no early exit on the first match.
    matched = False
    for candidate in candidates:
        for digest in expected:
            matched |= hmac.compare_digest(candidate.encode(), digest.encode())
    if not matched:
        raise SignatureVerificationError("no signature matches")
    return timestamp

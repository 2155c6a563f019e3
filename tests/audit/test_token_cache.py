"""Verified tokens are remembered until they expire, and refused from the exact instant a full
check would refuse them."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from signoff.api.auth import TokenVerifier
from signoff.domain.errors import DomainError, ErrorCode


class Clock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def token(settings: Any, user: str = "alice", *, exp: int, secret: str | None = None) -> str:
    claims = {
        "sub": user,
        "tenant": "acme",
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": int(time.time()),
        "exp": exp,
    }
    return jwt.encode(claims, secret or settings.effective_jwt_secret, algorithm="HS256")


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token whose signature PyJWT checks."""
    seen: list[str] = []
    original = jwt.decode

    def counting(encoded: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(encoded)
        return original(encoded, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return seen


def test_a_verified_token_is_not_checked_again(settings, decodes):
    verifier = TokenVerifier(settings)
    valid = token(settings, exp=int(time.time()) + 600)
    first = verifier.verify(valid)
    assert verifier.verify(valid) == first
    assert first.user_id == "alice" and first.tenant_id == "acme"
    assert decodes == [valid]


def test_a_remembered_token_expires_exactly_when_a_full_check_would_refuse_it(settings, decodes):
    # PyJWT refuses a token when `exp <= now - leeway`: the last accepted instant is just
    # before exp + leeway.
    exp = int(time.time()) + 600
    clock = Clock(exp - 1000)
    verifier = TokenVerifier(settings, clock=clock)
    valid = token(settings, exp=exp)
    verifier.verify(valid)
    deadline = exp + settings.jwt_leeway_seconds
    clock.now = deadline - 0.000_001
    assert verifier.verify(valid).user_id == "alice"
    clock.now = deadline
    with pytest.raises(DomainError) as refused:
        verifier.verify(valid)
    assert refused.value.code == ErrorCode.UNAUTHENTICATED
    assert "expired" in refused.value.message
    assert verifier.cached_tokens == 0
    assert decodes == [valid]


def test_refused_tokens_are_not_remembered(settings, decodes):
    verifier = TokenVerifier(settings)
    forged = token(
        settings, exp=int(time.time()) + 600, secret="another-secret-of-32-bytes-or-more!"
    )
    expired = token(settings, exp=int(time.time()) - settings.jwt_leeway_seconds - 60)
    for bad in (forged, expired, forged, expired):
        with pytest.raises(DomainError):
            verifier.verify(bad)
    assert verifier.cached_tokens == 0
    assert decodes == [forged, expired, forged, expired]


def test_the_cache_is_bounded(settings, decodes):
    verifier = TokenVerifier(settings, cache_size=3)
    exp = int(time.time()) + 600
    tokens = [token(settings, f"user{n}", exp=exp) for n in range(5)]
    for t in tokens:
        verifier.verify(t)
    assert verifier.cached_tokens == 3
    verifier.verify(tokens[-1])  # remembered
    verifier.verify(tokens[0])  # dropped: checked again
    assert decodes == [*tokens, tokens[0]]

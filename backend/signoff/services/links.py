"""Links for one person: short-lived HS256 tokens naming who may use them and what for.

Signed with the URL key (never the bearer-token key, so a link can never pass for a bearer
token, nor a bearer token for a link), for one audience each (a download link is no decision
link); expiry is checked against the service clock.

Download links (`mint`/`grant`) carry the caller's id, tenant, roles and groups and the id of
the thing they open; the endpoint rebuilds that principal and asks the service again, so a
reader who lost access cannot use a link minted before. Decision links
(`services/decision_links.py`) sign their own claims with `sign`/`verify`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import jwt

from signoff.domain.actors import Actor, Principal
from signoff.domain.errors import DomainError, ErrorCode
from signoff.services.context import ServiceContext


def sign(ctx: ServiceContext, audience: str, claims: Mapping[str, Any], expires: datetime) -> str:
    """A token for `audience` carrying `claims`, valid until `expires`."""
    payload = {**claims, "aud": audience, "exp": int(expires.timestamp())}
    return jwt.encode(payload, ctx.settings.effective_url_signing_secret, algorithm="HS256")


class LinkRefused(Exception):
    """A token that is not a valid link for the audience (signature, audience or claims)."""


def verify(
    ctx: ServiceContext, token: str, audience: str, required: Iterable[str]
) -> tuple[dict[str, Any], bool]:
    """The claims of a token `sign` made for `audience`, and whether it has expired (by the
    service clock); `LinkRefused` when it is not one."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            ctx.settings.effective_url_signing_secret,
            algorithms=["HS256"],
            audience=audience,
            # Expiry is checked against the service clock below, not the wall clock.
            options={"require": ["exp", *required], "verify_exp": False},
        )
        expired = int(claims["exp"]) <= int(ctx.clock.now().timestamp())
    except (jwt.InvalidTokenError, ValueError, TypeError, KeyError):
        raise LinkRefused from None
    return claims, expired


def mint(
    actor: Actor, ctx: ServiceContext, audience: str, claim: str, target: UUID, ttl: timedelta
) -> tuple[str, datetime]:
    """A token opening `target` (under `claim`) for `actor` until now + `ttl`; and that time."""
    expires = ctx.clock.now() + ttl
    principal = actor.principal
    claims = {
        "sub": principal.user_id,
        "ten": principal.tenant_id,
        "rol": sorted(principal.roles),
        "grp": sorted(principal.groups),
        claim: str(target),
    }
    return sign(ctx, audience, claims, expires), expires


def grant(ctx: ServiceContext, token: str, audience: str, claim: str) -> tuple[Actor, UUID]:
    """(actor, target) of a token `mint` made; NOT_FOUND when it is invalid or expired."""
    try:
        claims, expired = verify(ctx, token, audience, ("sub", "ten", claim))
        if expired:
            raise LinkRefused
        principal = Principal(
            str(claims["sub"]),
            str(claims["ten"]),
            frozenset(claims.get("rol") or ()),
            frozenset(claims.get("grp") or ()),
        )
        return Actor(principal), UUID(str(claims[claim]))
    except (LinkRefused, ValueError, TypeError, KeyError):
        raise DomainError(
            ErrorCode.NOT_FOUND, "this download link is invalid or has expired"
        ) from None

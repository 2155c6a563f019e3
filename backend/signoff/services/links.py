"""Download links for one person: a short-lived HS256 token naming who may use it and what.

The token carries the caller's id, tenant, roles and groups and the id of the thing it opens;
the endpoint rebuilds that principal and asks the service again, so a reader who lost access
cannot use a link minted before. Signed with the URL key (never the bearer-token key, so a link
can never pass for a bearer token); expiry is checked against the service clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import jwt

from signoff.domain.actors import Actor, Principal
from signoff.domain.errors import DomainError, ErrorCode
from signoff.services.context import ServiceContext


def mint(
    actor: Actor, ctx: ServiceContext, audience: str, claim: str, target: UUID, ttl: timedelta
) -> tuple[str, datetime]:
    """A token opening `target` (under `claim`) for `actor` until now + `ttl`; and that time."""
    expires = ctx.clock.now() + ttl
    principal = actor.principal
    claims = {
        "aud": audience,
        "sub": principal.user_id,
        "ten": principal.tenant_id,
        "rol": sorted(principal.roles),
        "grp": sorted(principal.groups),
        claim: str(target),
        "exp": int(expires.timestamp()),
    }
    token = jwt.encode(claims, ctx.settings.effective_url_signing_secret, algorithm="HS256")
    return token, expires


def grant(ctx: ServiceContext, token: str, audience: str, claim: str) -> tuple[Actor, UUID]:
    """(actor, target) of a token `mint` made; NOT_FOUND when it is invalid or expired."""
    try:
        claims = jwt.decode(
            token,
            ctx.settings.effective_url_signing_secret,
            algorithms=["HS256"],
            audience=audience,
            # Expiry is checked against the service clock below, not the wall clock.
            options={"require": ["exp", "sub", "ten", claim], "verify_exp": False},
        )
        if int(claims["exp"]) <= int(ctx.clock.now().timestamp()):
            raise jwt.ExpiredSignatureError
        principal = Principal(
            str(claims["sub"]),
            str(claims["ten"]),
            frozenset(claims.get("rol") or ()),
            frozenset(claims.get("grp") or ()),
        )
        return Actor(principal), UUID(str(claims[claim]))
    except (jwt.InvalidTokenError, ValueError, TypeError, KeyError):
        raise DomainError(
            ErrorCode.NOT_FOUND, "this download link is invalid or has expired"
        ) from None

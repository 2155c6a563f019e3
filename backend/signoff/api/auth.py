"""Bearer tokens: verification with a fixed algorithm list, and minting for development."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

import jwt

from signoff.domain.actors import Principal, is_tenant_id
from signoff.domain.errors import DomainError, ErrorCode
from signoff.settings import Settings


class TokenVerifier:
    """Checks signature, `exp`, `nbf`, `iss` and `aud`; the algorithm comes from configuration.

    A token that verified is remembered with its expiry (at most `cache_size` tokens, least
    recently used dropped first), so a client's next requests skip the signature check; a
    remembered token is refused from the same instant a full check would refuse it
    (`exp + leeway`, PyJWT's rule), read from `clock` (seconds since the epoch).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._cache_size = cache_size
        self._clock = clock
        self._algorithms = list(settings.jwt_algorithms)
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway_seconds
        if all(alg.startswith("HS") for alg in self._algorithms):
            self._key: str = settings.effective_jwt_secret
        else:
            self._key = settings.public_key_pem()
        if not self._key:
            raise ValueError("no token key configured (SIGNOFF_JWT_SECRET or _PUBLIC_KEY)")

    def verify(self, token: str) -> Principal:
        """The principal a valid token names; UNAUTHENTICATED with the reason otherwise."""
        if not token:
            raise _unauthenticated("missing bearer token")
        remembered = self._cache.get(token)
        if remembered is not None:
            principal, expires = remembered
            if self._clock() < expires:
                self._cache.move_to_end(token)
                return principal
            del self._cache[token]
            raise _unauthenticated("token expired")
        principal, expires = self._check(token)
        self._cache[token] = (principal, expires)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return principal

    @property
    def cached_tokens(self) -> int:
        """How many verified tokens are remembered."""
        return len(self._cache)

    def _check(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthenticated("token expired") from None
        except jwt.InvalidAlgorithmError:
            raise _unauthenticated("token algorithm not accepted") from None
        except jwt.InvalidSignatureError:
            raise _unauthenticated("token signature invalid") from None
        except jwt.InvalidAudienceError:
            raise _unauthenticated("token audience not accepted") from None
        except jwt.InvalidIssuerError:
            raise _unauthenticated("token issuer not accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _unauthenticated(f"token lacks the {exc.claim!r} claim") from None
        except jwt.PyJWTError:
            raise _unauthenticated("token malformed") from None
        tenant = claims.get("tenant")
        if not isinstance(tenant, str) or not tenant:
            raise _unauthenticated("token lacks the 'tenant' claim")
        if not is_tenant_id(tenant):
            raise _unauthenticated("token's 'tenant' claim is not a tenant id")
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject.strip():
            raise _unauthenticated("token's 'sub' claim is empty")
        principal = Principal(
            user_id=subject,
            tenant_id=tenant,
            roles=frozenset(_strings(claims.get("roles"))),
            groups=frozenset(_strings(claims.get("groups"))),
            environment=str(claims.get("env", "production")),
        )
        # PyJWT refuses a token once `exp <= now - leeway`.
        return principal, float(int(claims["exp"]) + self._leeway)


def _strings(value: object) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def _unauthenticated(reason: str) -> DomainError:
    return DomainError(ErrorCode.UNAUTHENTICATED, reason)


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer …` header, or an empty string."""
    if not authorization:
        return ""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def mint_token(
    settings: Settings,
    *,
    user_id: str,
    tenant_id: str,
    roles: Iterable[str] = (),
    groups: Iterable[str] = (),
    ttl_seconds: int = 3600,
    now: float | None = None,
) -> str:
    """A development HS256 token; refused outside development mode."""
    if not settings.is_development:
        raise RuntimeError("tokens are minted only in development mode (SIGNOFF_ENVIRONMENT)")
    algorithm = settings.jwt_algorithms[0]
    if not algorithm.startswith("HS"):
        raise RuntimeError("development tokens need an HMAC algorithm (SIGNOFF_JWT_ALGORITHMS)")
    issued = int(now if now is not None else time.time())
    claims = {
        "sub": user_id,
        "tenant": tenant_id,
        "roles": list(roles),
        "groups": list(groups),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    return jwt.encode(claims, settings.effective_jwt_secret, algorithm=algorithm)

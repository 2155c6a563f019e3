"""Who acts: the authenticated principal and the request it acts through."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# The shape of a tenant id (the `tenant` table's check): what tokens may name and what the
# database's tenant scope accepts.
_TENANT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def is_tenant_id(value: object) -> bool:
    """Whether `value` has the shape of a tenant id (`[a-z0-9][a-z0-9_-]{0,62}`)."""
    return isinstance(value, str) and _TENANT_ID.fullmatch(value) is not None


@dataclass(frozen=True)
class Principal:
    """An authenticated user (or service, or agent) inside exactly one tenant."""

    user_id: str
    tenant_id: str
    roles: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    environment: str = "production"
    # The command line acting with the database's keys; never set from a token.
    operator: bool = False

    def has_any_role(self, roles: Iterable[str]) -> bool:
        """Whether the principal holds at least one of `roles`."""
        return not self.roles.isdisjoint(roles)


@dataclass(frozen=True)
class RequestMeta:
    """Where a change came from, recorded on its audit event."""

    request_id: str | None = None
    client_addr: str | None = None
    user_agent: str | None = None


SYSTEM_USER = "system"
"""The actor id recorded for changes made by timers, policies and the sweeper."""


@dataclass(frozen=True)
class Actor:
    """A principal acting through one request; what every service receives."""

    principal: Principal
    meta: RequestMeta = field(default_factory=RequestMeta)

    @property
    def user_id(self) -> str:
        """The acting user's id."""
        return self.principal.user_id

    @property
    def tenant_id(self) -> str:
        """The tenant every read and write of this actor is bound to."""
        return self.principal.tenant_id

    @classmethod
    def system(cls, tenant_id: str, request_id: str | None = None) -> Actor:
        """The actor for automatic changes (timers, policies) in `tenant_id`."""
        return cls(Principal(SYSTEM_USER, tenant_id), RequestMeta(request_id=request_id))

    @classmethod
    def operator(cls, tenant_id: str, user_id: str = "cli") -> Actor:
        """The command line's actor in `tenant_id`: an operator, who holds the administrative
        permissions (`domain.permissions.OPERATOR_PERMISSIONS`) whatever the tenant's table."""
        return cls(Principal(user_id, tenant_id, operator=True))

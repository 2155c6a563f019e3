"""Which tenant's rows the database shows: the scope every transaction declares at BEGIN.

Row-level security (migration `2026-11-30T05`) shows and accepts only rows of the tenant named
by the transaction-local setting `signoff.tenant`; `signoff.db.engine` sets it in the same
round trip as BEGIN from the scope current in the task (a context variable). Nothing is left on
a pooled connection: the setting ends with its transaction.

Code that legitimately works across tenants (the timer sweeper, the audit check, the
notification sweep) opens `all_tenants()` explicitly; this is the only way to see more than one
tenant, and the code paths that use it are listed in docs/security.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from signoff.domain.actors import is_tenant_id


@dataclass(frozen=True)
class Scope:
    """A tenant (`tenant`), or every tenant (`all_tenants`)."""

    tenant: str | None = None
    all_tenants: bool = False

    def begin_statement(self, begin: str = "BEGIN", *, generic_plans: bool = False) -> str:
        """`begin` (BEGIN, with a mode if given) and the transaction-local settings of this
        scope, as one simple query; with `generic_plans`, the transaction's prepared
        statements also use their generic plans from the first execution on (see
        `ScopedEngine.transaction`)."""
        tenant = self.tenant or ""
        if tenant and not is_tenant_id(tenant):
            raise ValueError("not a tenant id")
        everyone = "on" if self.all_tenants else ""
        plans = ", set_config('plan_cache_mode', 'force_generic_plan', true)"
        return (
            begin
            + "; SELECT set_config('signoff.tenant', '"
            + tenant
            + "', true), set_config('signoff.all_tenants', '"
            + everyone
            + "', true)"
            + (plans if generic_plans else "")
        )


_SCOPE: ContextVar[Scope | None] = ContextVar("signoff_tenant_scope", default=None)


def current() -> Scope | None:
    """The scope of the running task, if any."""
    return _SCOPE.get()


@contextmanager
def tenant(tenant_id: str) -> Iterator[Scope]:
    """Bind the transactions opened inside to `tenant_id`'s rows."""
    if not is_tenant_id(tenant_id):
        raise ValueError("not a tenant id")
    token = _SCOPE.set(Scope(tenant=tenant_id))
    try:
        yield _SCOPE.get() or Scope()
    finally:
        _SCOPE.reset(token)


@contextmanager
def unbound() -> Iterator[None]:
    """No scope inside, whatever encloses it: the transactions opened inside see no tenant's
    rows (under the application's role)."""
    token = _SCOPE.set(Scope())
    try:
        yield
    finally:
        _SCOPE.reset(token)


@contextmanager
def all_tenants() -> Iterator[Scope]:
    """Let the transactions opened inside see every tenant's rows: for the jobs that span
    tenants (sweeper, audit check), never for work done on behalf of a user."""
    token = _SCOPE.set(Scope(all_tenants=True))
    try:
        yield _SCOPE.get() or Scope()
    finally:
        _SCOPE.reset(token)

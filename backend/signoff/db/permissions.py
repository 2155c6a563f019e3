"""Queries of the permission table (grants of permissions to roles)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from signoff.db import sql
from signoff.domain.permissions import Grant, Permission


def _grant(row: Any) -> Grant | None:
    try:
        permission = Permission(row["permission"])
    except ValueError:  # a permission a newer version stored: not ours to interpret
        return None
    return Grant(permission, frozenset(row["grantees"]), row["template_key"])


def grants_of_rows(rows: Sequence[Any]) -> tuple[Grant, ...]:
    """Grants from `permission_grant` rows (template_key, permission, grantees)."""
    return tuple(g for g in (_grant(r) for r in rows) if g is not None)


async def grants_of(tenant_id: str) -> tuple[Grant, ...]:
    """The tenant's stored grants (tenant-wide and per template)."""
    rows = await sql.fetch(
        """SELECT template_key, permission, grantees FROM permission_grant
        WHERE tenant_id = $1 ORDER BY template_key, permission""",
        tenant_id,
    )
    return grants_of_rows(rows)


# Any constant: the first key of the advisory locks that serialise changes of one grant.
_GRANT_LOCK = 0x6752A7


async def _lock_grant(tenant_id: str, template_key: str, permission: str) -> None:
    """Serialise the changes of one grant until the transaction ends. A row lock cannot: while
    no grant is stored there is no row to lock, and two first grants at once would each
    record "nothing" as what they replaced. The statements after this one see what the
    previous holder committed."""
    await sql.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        _GRANT_LOCK,
        f"{tenant_id}\n{template_key}\n{permission}",
    )


async def put_grant(tenant_id: str, grant: Grant, updated_by: str, now: datetime) -> Grant | None:
    """Store `grant` (replacing the one of its permission and template key); the one replaced.
    Runs in the caller's transaction, serialised with other changes of that grant."""
    await _lock_grant(tenant_id, grant.template_key, grant.permission.value)
    row = await sql.fetchrow(
        """WITH before AS (
            SELECT template_key, permission, grantees FROM permission_grant
            WHERE tenant_id = $2 AND template_key = $3 AND permission = $4 FOR UPDATE
        ), put AS (
            INSERT INTO permission_grant (id, tenant_id, template_key, permission, grantees,
                updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (tenant_id, template_key, permission) DO UPDATE SET
                grantees = excluded.grantees, updated_by = excluded.updated_by,
                updated_at = excluded.updated_at
        )
        SELECT * FROM before""",
        uuid.uuid4(),
        tenant_id,
        grant.template_key,
        grant.permission.value,
        sorted(grant.grantees),
        updated_by,
        now,
    )
    return _grant(row) if row else None


async def delete_grant(tenant_id: str, template_key: str, permission: Permission) -> Grant | None:
    """Remove a stored grant (back to the next rule); the one removed, if any. Runs in the
    caller's transaction, serialised with other changes of that grant."""
    await _lock_grant(tenant_id, template_key, permission.value)
    row = await sql.fetchrow(
        """DELETE FROM permission_grant
        WHERE tenant_id = $1 AND template_key = $2 AND permission = $3
        RETURNING template_key, permission, grantees""",
        tenant_id,
        template_key,
        permission.value,
    )
    return _grant(row) if row else None

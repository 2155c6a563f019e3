"""The database roles signoff runs as: the owner migrates, a member of `signoff_app` serves."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from signoff.db import sql

APP_ROLE = "signoff_app"
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


async def ensure_login_role(owner_url: str, name: str) -> None:
    """Create the login role `name`, a member of `signoff_app`, unless it exists (roles
    belong to the whole server: another process may create it at the same moment). For
    `signoff dev`, benchmarks and tests, which connect without a password; production
    operators create their own role with a password."""
    if not _ROLE_NAME.fullmatch(name):
        raise ValueError(f"not a role name: {name!r}")
    conn = await asyncpg.connect(owner_url)
    try:
        await conn.execute(
            f"""
            DO $$
            BEGIN
                IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN
                    CREATE ROLE {name} LOGIN NOSUPERUSER NOBYPASSRLS IN ROLE {APP_ROLE};
                END IF;
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN NULL;
            END
            $$;
            """
        )
    finally:
        await conn.close()


def login_url(url: str, user: str) -> str:
    """`url` logging in as `user`, without a password (for servers that trust local roles:
    the embedded one of `signoff dev`, the test and benchmark servers)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{user}@{host}", parts.path, parts.query, parts.fragment))


async def app_login(owner_url: str, name: str) -> str:
    """The URL of the login role `name`, a member of `signoff_app` (created if missing), on
    the database of `owner_url`: how `signoff dev` connects as production does."""
    await ensure_login_role(owner_url, name)
    return login_url(owner_url, name)


async def row_security_bypasses() -> list[str]:
    """Why row-level security would not bind the role the engine connects as: empty when it
    does (not a superuser, no BYPASSRLS, directly or through a role it belongs to, owns no
    table, is a member of `signoff_app`)."""
    row = await sql.fetchrow(
        """
        SELECT
            current_user AS name,
            EXISTS (SELECT 1 FROM pg_roles r WHERE pg_has_role(r.oid, 'MEMBER')
                AND r.rolsuper) AS superuser,
            EXISTS (SELECT 1 FROM pg_roles r WHERE pg_has_role(r.oid, 'MEMBER')
                AND r.rolbypassrls) AS bypassrls,
            EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public' AND c.relkind = 'r'
                    AND pg_has_role(c.relowner, 'MEMBER')) AS owner,
            pg_has_role($1, 'MEMBER') AS member
        """,
        APP_ROLE,
    )
    assert row is not None
    reasons = []
    if row["superuser"]:
        reasons.append(f"{row['name']} is a superuser")
    if row["bypassrls"]:
        reasons.append(f"{row['name']} has BYPASSRLS")
    if row["owner"]:
        reasons.append(f"{row['name']} owns tables")
    if not row["member"]:
        reasons.append(f"{row['name']} is not a member of {APP_ROLE}")
    return reasons

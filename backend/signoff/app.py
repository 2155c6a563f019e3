"""The Litestar application factory: the composition root of the API process."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from litestar import Litestar, Response, get
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from redis.exceptions import RedisError

from signoff import metrics, tracing
from signoff.api.audit_export_http import download_audit_export
from signoff.api.auth import TokenVerifier
from signoff.api.console import console_routes, demo_users_route
from signoff.api.context import SignoffContext
from signoff.api.controller import graphql_controller
from signoff.api.decision_page import confirm_decision_link_form, decision_link_page
from signoff.api.evidence_http import download_evidence, receive_evidence_upload
from signoff.api.graphiql import graphiql_assets
from signoff.api.interactions import REGISTRY_STATE_KEY, channel_interaction
from signoff.api.push import keep_transport_send
from signoff.api.ratelimit import RateLimiter
from signoff.api.schema import build_schema
from signoff.api.ws_sessions import SocketCaps
from signoff.db import sql
from signoff.db.engine import ENGINE, close_pool, configure_engine, start_pool
from signoff.db.migrate import pending_migrations
from signoff.domain.clock import Clock, SystemClock
from signoff.jobs.notifications import build_registry
from signoff.jobs.timers import ArqScheduler
from signoff.realtime.hub import RealtimeHub
from signoff.request_ids import request_id_middleware
from signoff.services import scopes
from signoff.services.context import ServiceContext
from signoff.settings import Settings, get_settings
from signoff.storage.factory import storage_for

log = logging.getLogger("signoff.app")


@get("/healthz", sync_to_thread=False, include_in_schema=False)
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@get("/metrics", include_in_schema=False)
async def metrics_endpoint(state: State) -> Response[bytes]:
    """This process's Prometheus metrics (the pool and the queue read now)."""
    if ENGINE.pool is not None:
        metrics.set_pool(ENGINE.pool.get_size(), ENGINE.pool.get_idle_size())
    try:
        metrics.QUEUE_DEPTH.set(await state.redis.zcard(state.settings.job_queue_name))
    except RedisError:
        log.warning("queue depth unknown: Redis did not answer")
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)


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


def _tracing_plugins() -> list[Any]:
    """Litestar's OpenTelemetry plugin (a server span per HTTP request), when tracing is on."""
    provider = tracing.provider()
    if provider is None:
        return []
    from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

    return [
        OpenTelemetryPlugin(
            OpenTelemetryConfig(tracer_provider=provider, exclude_spans=["receive", "send"])
        )
    ]


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    demo_users: Sequence[dict[str, Any]] | None = None,
) -> Litestar:
    """Build the API application for `settings` (default: from the environment). `demo_users`
    (only `signoff dev` passes it) is served at `/dev/demo-users` for the console's sign-in."""
    settings = settings or get_settings()
    configure_engine(settings.database_url)
    tracing.configure(settings, "signoff-api")
    clock = clock or SystemClock()
    scheduler = ArqScheduler(settings, clock)
    services = ServiceContext(
        settings=settings, clock=clock, scheduler=scheduler, storage=storage_for(settings)
    )
    verifier = TokenVerifier(settings)
    hub = RealtimeHub(
        settings.database_url,
        poll_interval=settings.realtime_poll_seconds,
        max_queued_events=settings.ws_max_queued_events,
    )
    limiter = (
        RateLimiter(
            settings.redis_url,
            settings.redis_prefix,
            settings.rate_limit_capacity,
            settings.rate_limit_per_second,
        )
        if settings.rate_limit_capacity
        else None
    )
    schema = build_schema(settings, limiter=limiter)

    async def context_getter(state: State) -> SignoffContext:
        # Takes `state`, not `request`: a request parameter breaks websocket connections.
        return SignoffContext(services=services, verifier=verifier, realtime=hub)

    caps = SocketCaps(settings)
    controller = graphql_controller(schema, settings, context_getter, caps)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # A pool already running (the worker in `signoff dev`, a test session) is shared.
        owns_pool = ENGINE.pool is None
        if owns_pool:
            await start_pool(settings.db_pool_min, settings.db_pool_max)
        try:
            await scopes.check_database_role(settings)
        except BaseException:
            if owns_pool:
                await close_pool()
            raise
        app.state.redis = aioredis.Redis.from_url(settings.redis_url)
        app.state.realtime = hub
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()
            await app.state.redis.aclose()
            if limiter is not None:
                await limiter.close()
            await caps.close()
            await scheduler.close()
            if owns_pool:
                await close_pool()
            tracing.flush()

    cors = (
        CORSConfig(allow_origins=list(settings.cors_origins), allow_credentials=False)
        if settings.cors_origins
        else None
    )
    routes: list[Any] = [
        controller,
        healthz,
        readyz,
        metrics_endpoint,
        channel_interaction,
        receive_evidence_upload,
        download_evidence,
        download_audit_export,
        decision_link_page,
        confirm_decision_link_form,
    ]
    if settings.graphiql_enabled:
        routes.append(graphiql_assets())
    if settings.console_dir:
        routes.extend(console_routes(settings.console_dir, redirect_root=settings.is_development))
    if demo_users is not None and settings.is_development:
        routes.append(demo_users_route(demo_users))
    app = Litestar(
        route_handlers=routes,
        lifespan=[lifespan],
        middleware=[request_id_middleware],  # type: ignore[list-item]
        plugins=_tracing_plugins(),
        cors_config=cors,
        state=State(
            {
                "settings": settings,
                "services": services,
                "verifier": verifier,
                "limiter": limiter,
                REGISTRY_STATE_KEY: build_registry(settings),
            }
        ),
        debug=False,
        # logging is the process's (one handler, JSON in production: request_ids.py); Litestar
        # would otherwise install its own format on start-up
        logging_config=None,
        request_max_body_size=settings.max_request_bytes,
    )
    # Pushed frames go to the server's own send (`api/push.py`); the middlewares' send
    # wrappers only touch the handshake.
    app.asgi_handler = keep_transport_send(app.asgi_handler)
    return app

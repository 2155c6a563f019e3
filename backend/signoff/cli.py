"""The `signoff` command: dev, serve, worker, migrate, schema, token, templates, docs, audit,
permissions."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import uvloop

from signoff import audit_cli, permissions_cli
from signoff.api.push import WEBSOCKET_OPTIONS
from signoff.domain.records import TemplateVersion
from signoff.http_server import OneWriteHttpToolsProtocol
from signoff.request_ids import configure_logging
from signoff.settings import Settings, get_settings

log = logging.getLogger("signoff.cli")

DEMO_TENANT = "demo"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_TEMPLATES = Path(__file__).resolve().parent / "demo"
CONSOLE_BUILD = REPO_ROOT / "console" / "dist"
CONSOLE_HOWTO = (
    "the reviewer console is not built: install Node.js 20.19 or newer and run `scripts/dev` "
    "again (it builds console/ when Node.js is present), or `scripts/console build`"
)


def _settings() -> Settings:
    try:
        return get_settings()
    except ValueError as exc:
        sys.exit(f"configuration error: {exc}")


DEVELOPMENT_JWT_SECRET = "signoff-development-secret-do-not-use-in-production"
"""The fixed, public secret of `signoff dev` (and of `signoff token` beside it). `serve` and
`worker` refuse it; nothing else knows it."""

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def _require_safe_start(settings: Settings) -> None:
    """`serve` and `worker` start only with an explicit environment and, for tokens, a key of
    their own: never the development secret, never none."""
    if "SIGNOFF_ENVIRONMENT" not in os.environ:
        sys.exit(
            "set SIGNOFF_ENVIRONMENT=production (or development) to start; "
            "for a local try-out run `signoff dev`"
        )
    hmac = all(alg.startswith("HS") for alg in settings.jwt_algorithms)
    if hmac and not settings.jwt_secret:
        sys.exit("set SIGNOFF_JWT_SECRET (or SIGNOFF_JWT_PUBLIC_KEY with RS256/ES256)")
    if hmac and settings.jwt_secret == DEVELOPMENT_JWT_SECRET and not settings.is_development:
        sys.exit("SIGNOFF_JWT_SECRET is the public development secret: set a secret of your own")


def _require_channels(settings: Settings) -> None:
    """A notification channel configuration that cannot work stops start-up with one line per
    problem (plugin, channel, field), not a traceback from inside the process."""
    from signoff.jobs.notifications import build_registry
    from signoff.notify.registry import RegistryError

    try:
        build_registry(settings)
    except (RegistryError, ValueError, OSError) as exc:
        sys.exit(f"configuration error: {exc}")


def _require_services(settings: Settings) -> None:
    missing = [
        n
        for n, v in (("DATABASE_URL", settings.database_url), ("REDIS_URL", settings.redis_url))
        if not v
    ]
    if missing:
        sys.exit(
            "set "
            + " and ".join(f"SIGNOFF_{m}" for m in missing)
            + " (or run `signoff dev` for embedded ones)"
        )


async def _migrate(settings: Settings) -> str:
    from signoff.db.engine import configure_engine
    from signoff.db.migrate import apply_migrations

    configure_engine(settings.database_url)
    return await apply_migrations(settings.migration_database_url or settings.database_url)


def cmd_migrate(args: argparse.Namespace) -> None:
    settings = _settings()
    _require_services(settings)
    print(asyncio.run(_migrate(settings)).strip() or "migrations applied")


def server_options(settings: Settings, port: int) -> dict[str, Any]:
    """uvicorn's options: uvloop and httptools (`uvicorn[standard]`; a response's head and body
    in one write: `http_server.py`), websockets as the fan-out writes to them
    (`api/push.py::WEBSOCKET_OPTIONS`), the access log only when `SIGNOFF_ACCESS_LOG` asks for
    it, the server's messages at `SIGNOFF_LOG_LEVEL`."""
    return {
        "host": settings.host,
        "port": port,
        "loop": "uvloop",
        "http": OneWriteHttpToolsProtocol,
        **WEBSOCKET_OPTIONS,
        "access_log": settings.access_log,
        "log_level": settings.log_level.lower(),
        # the server's lines go through the process's one handler (JSON in production)
        "log_config": None,
    }


GC_THRESHOLDS = (50_000, 20, 100)
"""The collector's thresholds in a serving process (Python's defaults: 700, 10, 10)."""


def settle_collector() -> None:
    """Tune the garbage collector for a long-lived API process, once it is built: what start-up
    made (modules, the schema, the routes) is frozen out of every later collection, and the
    young generation holds 50,000 objects instead of 700, so that the short-lived objects of a
    request or of a pushed batch die young instead of being promoted to the old generation,
    whose full collections scan every open socket's objects (measured in
    docs/architecture.md, "Fan-out and the garbage collector")."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from signoff.app import create_app

    settings = _settings()
    _require_safe_start(settings)
    _require_services(settings)
    _require_channels(settings)
    app = create_app(settings)
    settle_collector()
    uvicorn.run(app, **server_options(settings, settings.port))


def cmd_worker(args: argparse.Namespace) -> None:
    from signoff.worker import build_worker

    settings = _settings()
    _require_safe_start(settings)
    _require_services(settings)
    _require_channels(settings)
    if settings.worker_metrics_port:
        from signoff.metrics import serve_worker_metrics

        serve_worker_metrics(settings.worker_metrics_port, settings.host)
    # arq runs on the event loop it finds: uvloop's, as the API's (`uvicorn[standard]`);
    # measured in `signoff bench timers`, see docs/architecture.md.
    asyncio.set_event_loop(uvloop.new_event_loop())
    build_worker(settings).run()


def cmd_dev(args: argparse.Namespace) -> None:
    """API and worker in one process, on embedded PostgreSQL/Redis unless URLs are set; on
    loopback only, with the development secret unless another is set."""
    from signoff.embedded import start_embedded

    os.environ.setdefault("SIGNOFF_JWT_SECRET", DEVELOPMENT_JWT_SECRET)
    get_settings.cache_clear()
    base = _settings()
    if not base.is_development:
        sys.exit("`signoff dev` runs only with SIGNOFF_ENVIRONMENT=development")
    if base.host not in LOOPBACK_HOSTS:
        sys.exit("`signoff dev` listens on loopback only (SIGNOFF_HOST=127.0.0.1)")
    _require_channels(base)
    embedded = None
    if not base.database_url or not base.redis_url:
        embedded = start_embedded(base.data_dir)
        if not base.database_url:
            os.environ["SIGNOFF_DATABASE_URL"] = embedded.database_url
        if not base.redis_url:
            os.environ["SIGNOFF_REDIS_URL"] = embedded.redis_url
        get_settings.cache_clear()
    if not base.console_dir and (CONSOLE_BUILD / "index.html").is_file():
        os.environ["SIGNOFF_CONSOLE_DIR"] = str(CONSOLE_BUILD)
        get_settings.cache_clear()
    settings = _settings()
    from signoff import tracing

    tracing.configure(settings, "signoff-dev")  # API and worker report as one service
    # uvicorn handles SIGTERM itself, then restores the previous handler and raises the signal
    # again once it has shut down; with the default handler that kills the process before the
    # `finally` below, leaving the embedded servers running. Treat SIGTERM like Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        asyncio.run(_dev(settings, port=args.port or settings.port))
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass  # a stop asked for (Ctrl-C, SIGTERM), however far start-up had got
    finally:
        if embedded is not None:
            embedded.stop()


def _positive_seconds(text: str) -> int:
    """A number of seconds greater than zero (argparse turns the error into a usage line)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value}")
    return value


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


async def _dev(settings: Settings, port: int) -> None:
    import uvicorn

    from signoff.app import create_app
    from signoff.demo_data import USERS, seed_demo
    from signoff.worker import build_worker

    print((await _migrate(settings)).strip())
    settings = await _dev_app_role(settings)
    demo_users: list[dict[str, Any]] = []  # filled once seeded, for the console's sign-in
    app = create_app(settings, demo_users=demo_users)
    server = uvicorn.Server(uvicorn.Config(app, **server_options(settings, port)))
    worker = build_worker(settings, handle_signals=False)

    async def seed_when_started() -> bool:
        # uvicorn offers no event for "listening"
        while not server.started:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        try:
            tokens = await seed_demo(settings, DEMO_TEMPLATES)
        except Exception:
            # without its demo data nobody can sign in: say why and stop, never serve on silently
            log.exception("signoff dev could not seed its demo data; stopping")
            server.should_exit = True
            return False
        demo_users.extend(
            {"user": user, "roles": USERS[user][0], "token": token}
            for user, token in tokens.items()
        )
        base = f"http://{settings.host}:{port}"
        print(f"\nsignoff is running: {base}/graphql")
        if settings.console_dir:
            print(f"reviewer console: {base}/console/")
        else:
            print(CONSOLE_HOWTO)
        print("demo tokens (tenant 'demo'; use as `Authorization: Bearer <token>`):")
        for user, token in tokens.items():
            print(f"  {user:6} {token}")
        return True

    worker_task = asyncio.create_task(worker.async_run())
    seed_task = asyncio.create_task(seed_when_started())
    try:
        await server.serve()
    finally:
        seed_task.cancel()
        worker_task.cancel()
        # the worker's own tasks end cancelled: that is how it stops, not a failure
        with contextlib.suppress(asyncio.CancelledError):
            await worker.close()
        with contextlib.suppress(asyncio.CancelledError):
            await worker_task
    if seed_task.done() and not seed_task.cancelled() and not seed_task.result():
        raise SystemExit(1)


DEV_LOGIN_ROLE = "signoff_dev"
"""The role `signoff dev` connects as, unless SIGNOFF_MIGRATION_DATABASE_URL names the owner
apart from SIGNOFF_DATABASE_URL."""


async def _dev_app_role(settings: Settings) -> Settings:
    """`signoff dev` connects as production does: as a member of `signoff_app` that row-level
    security binds. SIGNOFF_DATABASE_URL is taken for the owner's (the embedded server's
    administrator) unless SIGNOFF_MIGRATION_DATABASE_URL names the owner apart; it exits when
    the role would bypass the policies."""
    from signoff.db import roles
    from signoff.db.engine import configure_engine

    if not settings.migration_database_url:
        owner = settings.database_url
        app_url = await roles.app_login(owner, DEV_LOGIN_ROLE)
        settings = dataclasses.replace(settings, database_url=app_url, migration_database_url=owner)
    configure_engine(settings.database_url)
    reasons = await roles.row_security_bypasses()
    if reasons:
        raise SystemExit(
            "`signoff dev` connects as a member of signoff_app that row-level security binds, "
            "and SIGNOFF_DATABASE_URL's role does not qualify ("
            + "; ".join(reasons)
            + "): set SIGNOFF_MIGRATION_DATABASE_URL to the owner's URL and "
            "SIGNOFF_DATABASE_URL to such a role's, or leave the migration URL empty"
        )
    print("database: connected as a member of signoff_app (row-level security applies)")
    return settings


def cmd_token(args: argparse.Namespace) -> None:
    from signoff.api.auth import mint_token

    settings = _settings()
    if settings.is_development and not settings.jwt_secret:
        settings = dataclasses.replace(settings, jwt_secret=DEVELOPMENT_JWT_SECRET)
    try:
        token = mint_token(
            settings,
            user_id=args.user,
            tenant_id=args.tenant,
            roles=args.role or [],
            groups=args.group or [],
            ttl_seconds=args.ttl,
        )
    except RuntimeError as exc:
        sys.exit(str(exc))
    print(token)


def cmd_schema(args: argparse.Namespace) -> None:
    from signoff.api.schema import schema

    text = schema.as_str().rstrip() + "\n"
    target = Path(args.path)
    released = Path(args.released)
    if args.action == "export":
        target.write_text(text)
        print(f"wrote {target}")
        return
    if args.action == "release":
        released.write_text(_RELEASED_HEADER + text)
        print(f"wrote {released}: breaking changes are now judged against this schema")
        return
    if not target.exists() or target.read_text() != text:
        sys.exit(f"{target} is out of date: run `signoff schema export`")
    print(f"{target} is up to date")
    _check_breaking_changes(released, text, Path(args.changelog))


_RELEASED_HEADER = (
    "# The schema of the last release, written by `signoff schema release`.\n"
    "# `signoff schema check` refuses a breaking change against it that was not deprecated\n"
    "# first and that the Unreleased section of CHANGELOG.md does not name.\n"
)


def _check_breaking_changes(released: Path, current: str, changelog: Path) -> None:
    """Refuse a break against the released schema that CHANGELOG's Unreleased section does not
    name and that was not deprecated first (signoff/api/schema_compat.py)."""
    from signoff.api.schema_compat import compare_schemas

    if not released.exists():
        sys.exit(f"{released} is missing: run `signoff schema release` when a version is cut")
    notes = changelog.read_text() if changelog.exists() else ""
    comparison = compare_schemas(released.read_text(), current, notes)
    for description in comparison.dangerous:
        print(f"dangerous (allowed): {description}")
    for change in comparison.breaks:
        if change.allowed:
            why = "deprecated first" if change.deprecated_first else "announced in CHANGELOG"
            print(f"breaking, {why}: {change.description}")
    unannounced = comparison.unannounced
    if unannounced:
        lines = "\n".join(f"  {b.coordinate}: {b.description}" for b in unannounced)
        sys.exit(
            f"breaking changes against {released.name} that are neither deprecated first nor "
            f"named in the Unreleased section of {changelog.name}:\n{lines}\n"
            "deprecate instead, or name each coordinate under `## Unreleased` with what clients "
            "must do"
        )
    print(f"no unannounced breaking change against {released.name}")


def cmd_templates(args: argparse.Namespace) -> None:
    if args.action == "draw":
        _draw_template(args.target, args.format)
        return
    settings = _settings()
    _require_services(settings)

    async def load() -> list[TemplateVersion]:
        from signoff.db.engine import configure_engine
        from signoff.domain.actors import Actor
        from signoff.services.context import ServiceContext
        from signoff.services.templates import load_templates

        configure_engine(settings.database_url)
        actor = Actor.operator(args.tenant)
        return await load_templates(actor, ServiceContext(settings=settings), Path(args.target))

    for version in asyncio.run(load()):
        print(f"{version.key} v{version.version} {version.status.value}")


def _draw_template(target: str, fmt: str) -> None:
    """Print the step graph of a template file (or of a demo template, by key) as Mermaid text
    or as SVG."""
    import yaml

    from signoff.domain.diagram_svg import DiagramFormat, draw
    from signoff.domain.errors import DomainError
    from signoff.domain.template_parsing import parse_template

    path = Path(target)
    if not path.is_file():
        path = DEMO_TEMPLATES / f"{target}.yaml"
    if not path.is_file():
        sys.exit(f"no template file {target!r}, and no demo template with that key")
    try:
        document = yaml.safe_load(path.read_text())
        definition = parse_template(document)
    except yaml.YAMLError as exc:
        sys.exit(f"{path}: not YAML: {exc}")
    except DomainError as exc:
        problems = [f"  - {p.path or '-'}: {p.message}" for p in exc.problems] or [
            f"  - {exc.message}"
        ]
        sys.exit("\n".join([f"{path}: not a valid template:", *problems]))
    print(draw(definition, None, DiagramFormat(fmt)), end="")


def cmd_sweep(args: argparse.Namespace) -> None:
    """Re-arm every due timer once (what the worker's cron does), then exit."""
    settings = _settings()
    _require_services(settings)

    async def sweep_once() -> int:
        from datetime import timedelta

        from signoff.db.engine import configure_engine
        from signoff.domain.clock import SystemClock
        from signoff.jobs.timers import ArqScheduler
        from signoff.services.context import ServiceContext
        from signoff.services.timers import sweep

        configure_engine(settings.database_url)
        scheduler = ArqScheduler(settings, SystemClock())
        try:
            ctx = ServiceContext(settings=settings, scheduler=scheduler)
            return await sweep(ctx, timedelta(seconds=settings.timer_horizon_seconds))
        finally:
            await scheduler.close()

    print(f"re-armed {asyncio.run(sweep_once())} due timers")


def cmd_retention(args: argparse.Namespace) -> None:
    """Apply retention once (what the worker's hourly job does), or set, list and remove a
    tenant's policies (audited as the admin `cli`)."""
    settings = _settings()
    _require_services(settings)
    if args.action != "run" and not args.tenant:
        sys.exit(f"retention {args.action} needs --tenant")

    async def run() -> list[str]:
        from signoff.db.engine import configure_engine
        from signoff.domain.actors import Actor
        from signoff.services import retention, scopes
        from signoff.services.context import ServiceContext

        configure_engine(settings.database_url)
        ctx = ServiceContext(settings=settings)
        admin = Actor.operator(args.tenant or "")
        if args.action == "run":
            report = await retention.apply_retention(ctx, args.tenant)
            return [
                f"content removed from {len(report.applied)} items ({report.held} on legal "
                f"hold); {report.objects_deleted} evidence objects deleted, "
                f"{report.object_failures} to retry",
                f"{report.exports_expired} audit exports expired; "
                f"{report.export_files_deleted} export files deleted, "
                f"{report.export_file_failures} to retry",
            ]
        if args.action == "set":
            if args.days is None or args.mode is None:
                sys.exit("retention set needs --days and --action")
            inp = retention.SetPolicyInput(args.days, args.mode, args.template, args.reason)
            await retention.set_policy(admin, ctx, inp)
        elif args.action == "remove":
            await retention.remove_policy(admin, ctx, args.template, args.reason)
        with scopes.acting_as(admin):
            policies = await retention.list_policies(admin, ctx)
        return [
            f"{p.template_key or '(default)'}: {p.action.value} after {p.days} days"
            for p in policies
        ]

    from signoff.domain.errors import DomainError

    try:
        lines = asyncio.run(run())
    except DomainError as exc:
        sys.exit(f"{exc.code}: {exc.message}")
    print("\n".join(lines) if lines else "no retention policy")


def cmd_tenants(args: argparse.Namespace) -> None:
    """Create a tenant (idempotent; audited as its first event), or list the tenants."""
    settings = _settings()
    _require_services(settings)
    if args.action == "create" and not args.id:
        sys.exit("tenants create needs a tenant id")

    async def run() -> list[str]:
        from signoff.db.engine import configure_engine
        from signoff.services import tenants
        from signoff.services.context import ServiceContext

        configure_engine(settings.database_url)
        ctx = ServiceContext(settings=settings)
        if args.action == "create":
            record, created = await tenants.create_tenant(ctx, args.id, args.name)
            return [f"{'created' if created else 'exists'}: {record.id} ({record.name})"]
        return [
            f"{t.id}\t{t.name}\t{t.created_at:%Y-%m-%d}" for t in await tenants.list_tenants(ctx)
        ]

    from signoff.domain.errors import DomainError

    try:
        lines = asyncio.run(run())
    except DomainError as exc:
        sys.exit(f"{exc.code}: {exc.message}")
    print("\n".join(lines) if lines else "no tenant")


def cmd_docs(args: argparse.Namespace) -> None:
    if args.what == "diagrams":
        import yaml

        from signoff.domain.diagram_svg import svg
        from signoff.domain.template_parsing import parse_template

        folder = REPO_ROOT / "docs" / "reference" / "diagrams"
        folder.mkdir(exist_ok=True)
        for path in sorted(DEMO_TEMPLATES.glob("*.yaml")):
            target = folder / f"{path.stem}.svg"
            target.write_text(svg(parse_template(yaml.safe_load(path.read_text()))))
            print(f"wrote {target}")
        return
    from signoff.domain import permissions, states

    render = {"state-machine": states.render_markdown, "permissions": permissions.render_markdown}
    target = REPO_ROOT / "docs" / "reference" / f"{args.what}.md"
    target.write_text(render[args.what]())
    print(f"wrote {target}")


def cmd_bench(args: argparse.Namespace) -> None:
    """Run benchmark scenarios and write docs/benchmarks.md (see `signoff.bench`)."""
    from signoff.bench.runner import command

    sys.exit(command(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="signoff", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="API + worker in one process with demo data")
    dev.add_argument("--port", type=int, default=None)
    dev.set_defaults(func=cmd_dev)
    sub.add_parser("serve", help="run the API").set_defaults(func=cmd_serve)
    sub.add_parser("worker", help="run an arq worker").set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="apply pending migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("sweep", help="re-arm due timers once").set_defaults(func=cmd_sweep)
    schema = sub.add_parser(
        "schema",
        help="export or check schema.graphql; release records it as the last released schema",
    )
    schema.add_argument("action", choices=["export", "check", "release"])
    schema.add_argument("--path", default=str(REPO_ROOT / "schema.graphql"))
    schema.add_argument("--released", default=str(REPO_ROOT / "schema.released.graphql"))
    schema.add_argument("--changelog", default=str(REPO_ROOT / "CHANGELOG.md"))
    schema.set_defaults(func=cmd_schema)
    token = sub.add_parser("token", help="mint a development token")
    token.add_argument("--user", required=True)
    token.add_argument("--tenant", default=DEMO_TENANT)
    token.add_argument("--role", action="append")
    token.add_argument("--group", action="append")
    token.add_argument(
        "--ttl", type=_positive_seconds, default=3600 * 12, help="lifetime in seconds (> 0)"
    )
    token.set_defaults(func=cmd_token)
    templates = sub.add_parser(
        "templates", help="load YAML templates; draw one's step graph as Mermaid text or SVG"
    )
    templates.add_argument("action", choices=["load", "draw"])
    templates.add_argument(
        "target", help="load: a directory of YAML files; draw: a YAML file or a demo key"
    )
    templates.add_argument("--tenant", default=DEMO_TENANT)
    templates.add_argument(
        "--format", choices=["mermaid", "svg"], default="mermaid", help="draw: the picture's format"
    )
    templates.set_defaults(func=cmd_templates)
    retention = sub.add_parser("retention", help="apply retention, or manage its policies")
    retention.add_argument("action", choices=["run", "set", "list", "remove"])
    retention.add_argument("--tenant", help="the tenant (run: all tenants when omitted)")
    retention.add_argument("--template", help="a template key (default: the tenant's default)")
    retention.add_argument("--days", type=int)
    retention.add_argument("--action", dest="mode", choices=["redact", "purge"])
    retention.add_argument("--reason")
    retention.set_defaults(func=cmd_retention)
    tenants = sub.add_parser("tenants", help="create a tenant, or list them")
    tenants.add_argument("action", choices=["create", "list"])
    tenants.add_argument("id", nargs="?", help="the tenant id (create)")
    tenants.add_argument("--name", help="its display name (default: the id)")
    tenants.set_defaults(func=cmd_tenants)
    docs = sub.add_parser("docs", help="regenerate generated docs")
    docs.add_argument("what", choices=["state-machine", "permissions", "diagrams"])
    docs.set_defaults(func=cmd_docs)
    bench = sub.add_parser("bench", help="run the benchmarks, write docs/benchmarks.md")
    bench.add_argument("scenarios", nargs="*", help="scenarios to run (default: all)")
    bench.add_argument("--quick", action="store_true", help="small sizes: a development run")
    bench.add_argument("--repeats", type=int, default=3, help="runs per figure (default 3)")
    bench.add_argument("--keep", action="store_true", help="keep the benchmark databases")
    bench.add_argument(
        "--reuse",
        action="store_true",
        help="keep each scenario's database under a fixed name and reuse what an earlier "
        "--reuse run loaded there (scenarios that support it skip their load)",
    )
    bench.add_argument("--out", default=str(REPO_ROOT / "docs"), help="where to write reports")
    bench.add_argument("--list", action="store_true", help="list the scenarios and exit")
    bench.add_argument("--profile", action="store_true", help="py-spy every started process")
    bench.set_defaults(func=cmd_bench)
    audit_cli.add_parser(sub)
    permissions_cli.add_parser(sub)
    return parser


def _json_logs(env: Mapping[str, str]) -> bool:
    """JSON lines unless `SIGNOFF_LOG_FORMAT=text`; `auto` (the default) means JSON in
    production, text in development. Read before the settings, so that a settings error is
    logged in the chosen format too."""
    chosen = env.get("SIGNOFF_LOG_FORMAT", "auto").lower()
    if chosen == "auto":
        return env.get("SIGNOFF_ENVIRONMENT", "development").lower() == "production"
    return chosen == "json"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `signoff` command."""
    configure_logging(
        os.environ.get("SIGNOFF_LOG_LEVEL", "INFO").upper(), json_lines=_json_logs(os.environ)
    )
    if os.environ.get("SIGNOFF_ACCESS_LOG", "").lower() in ("1", "true", "yes", "on"):
        from signoff.api.operation_metrics import enable_operation_log

        enable_operation_log()
    args = build_parser().parse_args(argv)
    if args.command in ("audit", "permissions"):
        args.func(args, _settings())
        return
    args.func(args)


if __name__ == "__main__":
    main()

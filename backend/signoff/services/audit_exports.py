"""Exporting the audit trail: streamed, with a manifest, verifiable without the database."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import anyio

from signoff.db import audit as audit_repo
from signoff.db import audit_exports as export_repo
from signoff.db import redaction as redaction_repo
from signoff.db import scope as tenant_scope
from signoff.db.paging import Window
from signoff.domain.actors import Actor, Principal
from signoff.domain.audit_export import (
    ExportFilter,
    ExportFormat,
    ExportProblem,
    ExportView,
    ManifestBuilder,
    csv_header,
    encode_rows,
    read_rows,
    verify_export,
)
from signoff.domain.clock import Clock, SystemClock
from signoff.domain.errors import DomainError, ErrorCode, invalid
from signoff.domain.permissions import Permission
from signoff.services import links, permissions
from signoff.services.audit import require_auditor
from signoff.services.context import ServiceContext
from signoff.services.uow import remember_result, replayed_result, unit_of_work
from signoff.storage import ObjectMissing, ObjectReader, ObjectStorage, StorageError
from signoff.storage.factory import storage_for

log = logging.getLogger("signoff.exports")

BATCH = 2_000
"""Events read and written at a time: what an export holds in memory."""

Progress = Callable[[int], Awaitable[None]]


@dataclass
class ExportStream:
    """The bytes of one export, produced as they are read; its manifest once exhausted."""

    tenant_id: str
    filter: ExportFilter
    fmt: ExportFormat
    to_seq: int
    view: ExportView
    on_progress: Progress | None = None
    builder: ManifestBuilder = field(init=False)

    def __post_init__(self) -> None:
        self.builder = ManifestBuilder(
            self.tenant_id,
            self.fmt,
            self.filter,
            self.to_seq,
            reader_roles=tuple(self.view.reader.roles),
        )

    async def chunks(self) -> AsyncIterator[bytes]:
        """The file, one chunk per batch of events."""
        if self.fmt is ExportFormat.CSV:
            yield self._counted(csv_header())
        async for rows in export_repo.stream_events(
            self.tenant_id,
            self.filter,
            self.to_seq,
            BATCH,
            lines=self.fmt is ExportFormat.NDJSON,
            records=self.fmt is ExportFormat.CSV,
            payload_copies=self.view.hides_payload_fields,
            client_details=self.view.hides_client_details,
        ):
            self.builder.add_rows(rows)
            chunk, redacted = encode_rows(self.fmt, rows, self.view)
            for seq, digest in redacted:
                self.builder.add_redacted(seq, digest)
            yield self._counted(chunk)
            if self.on_progress is not None:
                await self.on_progress(self.builder.rows)

    def _counted(self, chunk: bytes) -> bytes:
        self.builder.add_bytes(chunk)
        return chunk


def export_reader(tenant_id: str, roles: Iterable[str]) -> Principal:
    """Whom an export made for `roles` is written for (redaction rules apply to them)."""
    return Principal("audit-export", tenant_id, roles=frozenset(roles))


async def open_stream(
    tenant_id: str,
    f: ExportFilter,
    fmt: ExportFormat,
    reader: Principal,
    *,
    to_seq: int | None = None,
    on_progress: Progress | None = None,
    hide_client_details: bool = False,
) -> ExportStream:
    """An export of `tenant_id`'s events up to `to_seq` (default: the head now), as `reader`
    may see them under the tenant's redaction rules (and without client details when
    `hide_client_details`: see `sees_client_details`)."""
    with tenant_scope.tenant(tenant_id):
        rules = await redaction_repo.rules_of(tenant_id)
        if to_seq is None:
            to_seq, _ = await audit_repo.chain_head(tenant_id)
    view = ExportView(rules, reader, hides_client_details=hide_client_details)
    return ExportStream(tenant_id, f, fmt, to_seq, view, on_progress)


async def sees_client_details(ctx: ServiceContext, reader: Principal) -> bool:
    """Whether an export's `reader` may see where each change came from (client address,
    user agent): `read_audit_details` under its tenant's permission table, as on every read."""
    with tenant_scope.tenant(reader.tenant_id):
        return await permissions.may(Actor(reader), ctx, Permission.READ_AUDIT_DETAILS)


async def export_to_sink(
    actor: Actor,
    ctx: ServiceContext,
    sink: Callable[[bytes], Awaitable[None]],
    f: ExportFilter | None = None,
    fmt: ExportFormat = ExportFormat.NDJSON,
) -> dict[str, Any]:
    """Stream the actor's tenant's trail into `sink` (export_audit), redacted as the actor may
    see it; its manifest."""
    await require_auditor(actor, ctx, "exporting the audit trail")
    stream = await open_stream(
        actor.tenant_id,
        f or ExportFilter(),
        fmt,
        actor.principal,
        hide_client_details=not await sees_client_details(ctx, actor.principal),
    )
    async for chunk in stream.chunks():
        await sink(chunk)
    return stream.builder.manifest(ctx.clock.now())


def manifest_path(path: Path) -> Path:
    """Where the manifest of an exported file is kept: beside it."""
    return path.with_name(path.name + ".manifest.json")


async def export_to_file(
    tenant_id: str,
    f: ExportFilter,
    fmt: ExportFormat,
    path: Path,
    clock: Clock | None = None,
    reader_roles: Iterable[str] = (),
    hide_client_details: bool = False,
) -> dict[str, Any]:
    """Export into `path` and its manifest beside it (operators, from the command line), as a
    reader with `reader_roles` may see it under the redaction rules (none: every field a rule
    names is hidden), without client details when `hide_client_details`.

    Written to a temporary file renamed into place when complete: a failed export leaves no
    file, never a truncated one.
    """
    stream = await open_stream(
        tenant_id,
        f,
        fmt,
        export_reader(tenant_id, reader_roles),
        hide_client_details=hide_client_details,
    )
    await anyio.Path(path.parent).mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            async for chunk in stream.chunks():
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        manifest = stream.builder.manifest((clock or SystemClock()).now())
        await anyio.Path(manifest_path(path)).write_text(
            json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        )
        os.replace(temp, path)
    except BaseException:
        await anyio.Path(temp).unlink(missing_ok=True)
        raise
    return manifest


def verify_file(path: Path, manifest: dict[str, Any] | None = None) -> ExportProblem | None:
    """Check an exported file against its manifest (read from beside it unless given), without
    the database: every row (`domain.audit_export.verify_export`), then its sha256 and size.

    The rows come first so that a change is named by the row it is in, one that leaves the row
    saying the same (JSON's spelling of a value, its spaces) too, by the row's `row_sha256`.
    Each line is decoded on its own, so a byte that is not UTF-8 is named by its row too.
    """
    if manifest is None:
        manifest = json.loads(manifest_path(path).read_text())
    fmt = ExportFormat(manifest["format"])
    sha, size = hashlib.sha256(), 0

    def lines(raw: Iterable[bytes]) -> Iterator[str]:
        nonlocal size
        for line in raw:
            sha.update(line)
            size += len(line)
            yield line.decode("utf-8")

    with path.open("rb") as raw:
        try:
            problem = verify_export(read_rows(fmt, lines(raw)), manifest)
        except (ValueError, KeyError, TypeError) as exc:
            return ExportProblem(0, None, f"not a readable audit export: {exc}")
        if problem is not None:
            return problem
        for _ in lines(raw):  # hash what a reader left unread (nothing, normally)
            pass
    if sha.hexdigest() != manifest["sha256"] or size != manifest["bytes"]:
        return ExportProblem(0, None, "the file's sha256 or size is not the manifest's")
    return None


# -- exports requested through the API, run by a worker ---------------------------------------

STALE_AFTER = timedelta(seconds=120)
"""An export whose heartbeat is older than this has lost its worker and is handed out again."""
HEARTBEAT_EVERY = timedelta(seconds=2)
MAX_ATTEMPTS = 3
EXTENSIONS = {ExportFormat.NDJSON: "ndjson", ExportFormat.CSV: "csv"}


def check_filter(f: ExportFilter) -> None:
    """Refuse a filter that cannot select anything sensible (`INVALID_INPUT`)."""
    if f.since is not None and f.until is not None and f.since >= f.until:
        raise invalid("`since` must be before `until`", "filter.since")
    for name, moment in (("since", f.since), ("until", f.until)):
        if moment is not None and moment.tzinfo is None:
            raise invalid("give the time with its offset", f"filter.{name}")


async def request_export(
    actor: Actor,
    ctx: ServiceContext,
    f: ExportFilter,
    fmt: ExportFormat,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Record an export of the actor's tenant's trail and have a worker run it (auditors and
    admins). It holds the events up to the chain's head now; a replayed key returns the
    export it made."""
    await require_auditor(actor, ctx, "exporting the audit trail")
    check_filter(f)
    request = {"filter": f.to_dict(), "format": fmt.value}
    async with unit_of_work(actor, ctx) as uow:
        replayed = await replayed_result(uow, idempotency_key, "requestAuditExport", request)
        if replayed is not None:
            export_id = UUID(replayed["export_id"])
        else:
            export_id = uuid4()
            to_seq, _ = await audit_repo.chain_head(actor.tenant_id)
            await export_repo.insert(
                {
                    "id": export_id,
                    "tenant_id": actor.tenant_id,
                    "requested_by": actor.user_id,
                    "format": fmt.value,
                    "filter": f.to_dict(),
                    "to_seq": to_seq,
                    "created_at": ctx.clock.now(),
                    "reader_roles": actor.principal.roles,
                }
            )
            uow.record(
                "audit.export_requested",
                data={"export_id": str(export_id), **request, "to_seq": to_seq},
            )
            await remember_result(uow, idempotency_key, {"export_id": str(export_id)})
            scheduler = ctx.scheduler
            if scheduler is not None:

                async def enqueue() -> None:
                    await scheduler.run_audit_export(actor.tenant_id, str(export_id), 1)

                uow.after_commit(enqueue)
        export = await export_repo.get(actor.tenant_id, export_id)
    assert export is not None
    return export


async def get_export(actor: Actor, ctx: ServiceContext, export_id: UUID) -> dict[str, Any]:
    """One export of the actor's tenant, with its progress (export_audit)."""
    await require_auditor(actor, ctx, "reading audit exports")
    with tenant_scope.tenant(actor.tenant_id):
        export = await export_repo.get(actor.tenant_id, export_id)
    if export is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such audit export")
    return export


async def get_export_for_worker(tenant_id: str, export_id: UUID) -> dict[str, Any]:
    """One export, for the worker that runs it."""
    with tenant_scope.tenant(tenant_id):
        export = await export_repo.get(tenant_id, export_id)
    if export is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such audit export")
    return export


async def list_exports(actor: Actor, ctx: ServiceContext, window: Window) -> list[dict[str, Any]]:
    """A page of the tenant's exports, newest first (export_audit)."""
    await require_auditor(actor, ctx, "reading audit exports")
    with tenant_scope.tenant(actor.tenant_id):
        return await export_repo.list_recent(actor.tenant_id, window)


def storage_of(ctx: ServiceContext) -> ObjectStorage:
    """The store exports are kept in (the evidence store)."""
    return ctx.storage if ctx.storage is not None else storage_for(ctx.settings)


def _key(export: dict[str, Any], attempt: int) -> str:
    ext = EXTENSIONS[ExportFormat(export["format"])]
    return f"tenants/{export['tenant_id']}/audit-exports/{export['id']}.{attempt}.{ext}"


async def run_export(ctx: ServiceContext, tenant_id: str, export_id: UUID) -> str:
    """Run one export if no live worker runs it: stream its events into the store, then mark
    it completed with its manifest. What it did: `completed`, `skipped` (done, or alive
    elsewhere), `lost` (another worker took it over), `retry` or `failed`.

    The object appears whole or not at all (the store's `put` is atomic), under a key of its
    own per attempt, and only the attempt holding the lease marks the export completed: an
    interrupted export is run again from the start by the sweeper, never left truncated.
    """
    lease = uuid4()
    now = ctx.clock.now()
    with tenant_scope.tenant(tenant_id):
        export = await export_repo.claim(tenant_id, export_id, lease, now, now - STALE_AFTER)
        if export is None:
            return "skipped"
        f = ExportFilter.from_dict(export["filter"])
        to_seq = int(export["to_seq"])
        total = await export_repo.count_rows(tenant_id, f, to_seq)
        await export_repo.progress(tenant_id, export_id, lease, 0, now, total)
        beat = {"at": now}

        async def on_progress(rows: int) -> None:
            moment = ctx.clock.now()
            if moment - beat["at"] < HEARTBEAT_EVERY and rows < total:
                return
            beat["at"] = moment
            if not await export_repo.progress(tenant_id, export_id, lease, rows, moment, None):
                raise LeaseLost

        fmt = ExportFormat(export["format"])
        reader = export_reader(tenant_id, export["reader_roles"] or ())
        stream = await open_stream(
            tenant_id,
            f,
            fmt,
            reader,
            to_seq=to_seq,
            on_progress=on_progress,
            hide_client_details=not await sees_client_details(ctx, reader),
        )
        key = _key(export, int(export["attempts"]))
        store = storage_of(ctx)
        try:
            await store.put(key, stream.chunks())
            manifest = stream.builder.manifest(ctx.clock.now(), str(export_id))
            await store.put(key + ".manifest.json", _once(json.dumps(manifest).encode()))
        except LeaseLost:
            return "lost"
        except Exception as exc:
            final = int(export["attempts"]) >= MAX_ATTEMPTS
            await export_repo.give_up(
                tenant_id, export_id, lease, f"{type(exc).__name__}: {exc}", ctx.clock.now(), final
            )
            log.exception("audit export %s failed (attempt %s)", export_id, export["attempts"])
            return "failed" if final else "retry"
        async with unit_of_work(Actor.system(tenant_id, f"export:{export_id}"), ctx) as uow:
            done = await export_repo.complete(
                tenant_id, export_id, lease, storage_key=key, manifest=manifest, now=ctx.clock.now()
            )
            if done:
                uow.record(
                    "audit.export_completed",
                    data={
                        "export_id": str(export_id),
                        "rows": manifest["rows"],
                        "sha256": manifest["sha256"],
                        "last_hash": manifest["chain"]["last_hash"],
                    },
                )
    if not done:
        # Another attempt took over while this one wrote: its file is the export's.
        await store.delete(key)
        await store.delete(key + ".manifest.json")
        return "lost"
    return "completed"


class LeaseLost(Exception):
    """Another attempt took the export over (this one's heartbeat was late)."""


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def sweep_exports(ctx: ServiceContext, limit: int = 100) -> int:
    """Hand out again every export no live worker runs (queued with a lost job, or running
    without a heartbeat): the database holds the truth, the queue only accelerates."""
    with tenant_scope.all_tenants():
        stale = await export_repo.unfinished(ctx.clock.now() - STALE_AFTER, limit)
    scheduler = ctx.scheduler
    if scheduler is None:
        return 0
    for tenant_id, export_id in stale:
        with tenant_scope.tenant(tenant_id):
            export = await export_repo.get(tenant_id, export_id)
        if export is not None:
            await scheduler.run_audit_export(tenant_id, str(export_id), int(export["attempts"]) + 1)
    return len(stale)


async def open_export_file(
    actor: Actor, ctx: ServiceContext, export_id: UUID, manifest: bool = False
) -> tuple[dict[str, Any], ObjectReader]:
    """The completed export's file (or its manifest), for a holder of `export_audit`;
    EXPORT_EXPIRED once retention removed it."""
    export = await get_export(actor, ctx, export_id)
    if export["status"] == "expired":
        raise DomainError(
            ErrorCode.EXPORT_EXPIRED,
            f"this audit export's file was removed by retention on "
            f"{export['expired_at']:%Y-%m-%d}; request the export again",
        )
    if export["status"] != "completed":
        raise DomainError(ErrorCode.NOT_FOUND, "this audit export has no file yet")
    key = str(export["storage_key"]) + (".manifest.json" if manifest else "")
    try:
        return export, await storage_of(ctx).open(key)
    except ObjectMissing:
        raise DomainError(ErrorCode.NOT_FOUND, "the export's file is no longer stored") from None


DOWNLOAD_AUDIENCE = "signoff:audit-export-download"
DOWNLOAD_TTL = timedelta(minutes=10)


def download_token(actor: Actor, ctx: ServiceContext, export_id: UUID) -> str:
    """A short-lived token for an export's download links, naming who may use them (the
    download is authorised again, as that person, when it is used)."""
    token, _ = links.mint(actor, ctx, DOWNLOAD_AUDIENCE, "xpt", export_id, DOWNLOAD_TTL)
    return token


def download_grant(ctx: ServiceContext, token: str) -> tuple[Actor, UUID]:
    """(actor, export id) of a download token; NOT_FOUND when it is invalid or expired."""
    return links.grant(ctx, token, DOWNLOAD_AUDIENCE, "xpt")


# -- retention of the stored files ------------------------------------------------------------


@dataclass
class ExpiryReport:
    """What one retention run did to the stored export files."""

    expired: list[UUID] = field(default_factory=list)
    files_deleted: int = 0
    file_failures: int = 0


def expires_at(ctx: ServiceContext, export: dict[str, Any]) -> datetime | None:
    """When a completed export's file will be removed (None: it is not completed, or files are
    kept until removed by hand)."""
    days = ctx.settings.audit_export_retention_days
    if days <= 0 or export["status"] != "completed" or export["finished_at"] is None:
        return None
    finished: datetime = export["finished_at"]
    return finished + timedelta(days=days)


def _scope(tenant_id: str | None) -> Any:
    return tenant_scope.tenant(tenant_id) if tenant_id else tenant_scope.all_tenants()


async def expire_exports(
    ctx: ServiceContext, tenant_id: str | None = None, *, limit: int = 500
) -> ExpiryReport:
    """Expire the completed exports (of `tenant_id`, or of every tenant) whose file has been
    kept `audit_export_retention_days`, then delete the files of expired exports from the store.

    Expiring is one unit of work per export: its status becomes `expired`, with its
    `audit.export_expired` event, and from that commit on a download is refused with
    EXPORT_EXPIRED. The file and its manifest are deleted after the commit (no slow call inside
    the transaction); a deletion that fails is retried by the next run. Safe to run concurrently
    and again: an export expires once.
    """
    report = ExpiryReport()
    days = ctx.settings.audit_export_retention_days
    if days > 0:
        now = ctx.clock.now()
        cutoff = now - timedelta(days=days)
        with _scope(tenant_id):
            due = await export_repo.due_to_expire(cutoff, tenant_id, limit)
        for tenant, export_id in due:
            with tenant_scope.tenant(tenant):
                actor = Actor.system(tenant, f"retention:export:{export_id}")
                async with unit_of_work(actor, ctx) as uow:
                    expired = await export_repo.expire(tenant, export_id, cutoff, now)
                    if expired is not None:
                        uow.record(
                            "audit.export_expired",
                            data={
                                "export_id": str(export_id),
                                "sha256": expired["sha256"],
                                "rows": expired["rows_written"],
                                "finished_at": expired["finished_at"],
                                "retention_days": days,
                            },
                        )
            if expired is not None:
                report.expired.append(export_id)
    with _scope(tenant_id):
        files = await export_repo.files_to_delete(tenant_id, limit)
    store = storage_of(ctx)
    for tenant, export_id, key in files:
        try:
            await store.delete(key + ".manifest.json")
            await store.delete(key)
        except StorageError:
            report.file_failures += 1
            log.warning(
                "could not delete the file of expired audit export %s; retried next run",
                export_id,
                extra={"tenant": tenant, "export_id": str(export_id), "storage": store.name},
            )
            continue
        with tenant_scope.tenant(tenant):
            await export_repo.forget_file(tenant, export_id)
        report.files_deleted += 1
    return report

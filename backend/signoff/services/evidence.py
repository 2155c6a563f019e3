"""Evidence use cases: an upload URL for a file, receiving it, listing and reading it back.

A browser asks `request_upload` for a short-lived URL (after the item's read check), then PUTs
the raw file to it. `receive_upload` streams the body into the object store while counting and
hashing it: more bytes than declared, fewer, or another sha256 than declared abort the write,
and nothing is left behind. Only a complete, verified object is recorded, with its
`evidence.attached` audit event, in one transaction. Reading verifies the stored bytes against
the recorded sha256 before the first byte goes out (`INTEGRITY_CHECK_FAILED` otherwise), then
streams them pinned to the version it verified.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from signoff.db import evidence as repo
from signoff.db import incidents as incidents_repo
from signoff.db import items as items_repo
from signoff.domain.actors import Actor, Principal, RequestMeta
from signoff.domain.errors import DomainError, ErrorCode, not_found
from signoff.domain.evidence import (
    EvidenceRecord,
    EvidenceSource,
    base_media_type,
    check_file,
    digest_of,
    encode_snapshot,
    upload_id_of,
    upload_token,
)
from signoff.domain.redaction import redact_history, redact_value
from signoff.services import items as item_services
from signoff.services import links, scopes
from signoff.services import redaction as redaction_services
from signoff.services.context import ServiceContext
from signoff.services.uow import UnitOfWork, remember_result, replayed_result, unit_of_work
from signoff.storage import ObjectChanged, ObjectMissing, ObjectStorage, StorageError
from signoff.storage.factory import storage_for

log = logging.getLogger("signoff.evidence")

DOWNLOAD_AUDIENCE = "signoff:evidence-download"


@dataclass(frozen=True)
class RequestUploadInput:
    """A file a browser is about to upload to an item or one of its steps."""

    file_name: str
    content_type: str
    size: int
    item_id: UUID | None = None
    step_id: UUID | None = None
    sha256: str | None = None
    description: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class UploadTicket:
    """Where and until when to PUT the file; `token` goes into the upload URL."""

    upload_id: UUID
    token: str
    content_type: str
    size: int
    expires_at: datetime


@dataclass
class EvidenceContent:
    """A verified evidence file, ready to stream: `size` bytes with `sha256`, those recorded
    unless `redacted` (a snapshot served without fields the reader may not see)."""

    record: EvidenceRecord
    chunks: AsyncIterator[bytes]
    size: int
    sha256: str
    redacted: bool = False


def storage_of(ctx: ServiceContext) -> ObjectStorage:
    """The evidence store of this deployment."""
    return ctx.storage if ctx.storage is not None else storage_for(ctx.settings)


def _fingerprint(inp: Any) -> dict[str, Any]:
    data = asdict(inp)
    data.pop("idempotency_key", None)
    return data


async def _target(
    actor: Actor, ctx: ServiceContext, item_id: UUID | None, step_id: UUID | None
) -> tuple[UUID, UUID | None]:
    """(item, step) an evidence file goes to, checked readable by the item service."""
    if (item_id is None) == (step_id is None):
        raise DomainError(
            ErrorCode.INVALID_INPUT, "give exactly one of itemId and stepId", "itemId"
        )
    if step_id is not None:
        owner = await items_repo.item_id_of_step(actor.tenant_id, step_id)
        if owner is None:
            raise not_found("step", step_id)
        view = await item_services.get_item(actor, ctx, owner)
        if step_id not in {s.id for s in view.steps}:
            raise not_found("step", step_id)
        return owner, step_id
    assert item_id is not None
    await item_services.get_item(actor, ctx, item_id)
    return item_id, None


def _check_room(ctx: ServiceContext, count: int) -> None:
    if count >= ctx.settings.evidence_max_per_item:
        raise DomainError(
            ErrorCode.LIMIT_EXCEEDED,
            f"an item holds at most {ctx.settings.evidence_max_per_item} evidence files",
        )


def storage_key(tenant_id: str, evidence_id: UUID) -> str:
    """Where an evidence file's bytes are kept (never derived from user input)."""
    return f"tenants/{hashlib.sha256(tenant_id.encode()).hexdigest()[:32]}/evidence/{evidence_id}"


async def request_upload(
    actor: Actor, ctx: ServiceContext, inp: RequestUploadInput
) -> UploadTicket:
    """A short-lived URL to PUT one file to, for someone who may read the item."""
    settings = ctx.settings
    facts = check_file(
        inp.file_name,
        inp.content_type,
        inp.size,
        inp.sha256,
        inp.description,
        max_bytes=settings.evidence_max_bytes,
        allowed_types=settings.evidence_content_types,
    )
    key = settings.effective_url_signing_secret
    async with unit_of_work(actor, ctx) as uow:
        replay = await replayed_result(
            uow, inp.idempotency_key, "requestEvidenceUpload", _fingerprint(inp)
        )
        if replay is not None:
            slot = await repo.get_slot(UUID(replay["upload_id"]))
            assert slot is not None
            return UploadTicket(
                slot.id, upload_token(slot.id, key), slot.content_type, slot.size, slot.expires_at
            )
        item_id, step_id = await _target(actor, ctx, inp.item_id, inp.step_id)
        _check_room(ctx, await repo.count_of_item(actor.tenant_id, item_id))
        upload_id = uuid.uuid4()
        now = ctx.clock.now()
        principal = actor.principal
        slot = await repo.insert_slot(
            {
                "id": upload_id,
                "tenant_id": actor.tenant_id,
                "item_id": item_id,
                "step_id": step_id,
                "uploader_id": actor.user_id,
                "uploader_roles": sorted(principal.roles),
                "uploader_groups": sorted(principal.groups),
                "name": facts.name,
                "content_type": facts.content_type,
                "size": facts.size,
                "sha256": facts.sha256,
                "description": facts.description,
                "storage_key": storage_key(actor.tenant_id, upload_id),
                "expires_at": now + timedelta(seconds=settings.evidence_upload_ttl_seconds),
                "now": now,
            }
        )
        await remember_result(uow, inp.idempotency_key, {"upload_id": str(upload_id)})
    return UploadTicket(
        upload_id, upload_token(upload_id, key), slot.content_type, slot.size, slot.expires_at
    )


async def receive_upload(
    ctx: ServiceContext,
    token: str,
    content_type: str | None,
    chunks: AsyncIterable[bytes],
    meta: RequestMeta | None = None,
) -> EvidenceRecord:
    """Receive the body PUT to an upload URL and attach it as evidence, or leave nothing.

    Refusals: NOT_FOUND (no such URL), UPLOAD_EXPIRED, UPLOAD_IN_PROGRESS (another PUT to the
    same URL is running), CONTENT_TYPE_NOT_ALLOWED (not the declared type), INVALID_INPUT
    (size differs from the declared one), INTEGRITY_CHECK_FAILED (sha256 differs), and
    whatever the item's read check or the item's evidence limit say when it completes.
    """
    upload_id = upload_id_of(token, ctx.settings.effective_url_signing_secret)
    if upload_id is None:
        raise not_found("upload", token[:32])
    with scopes.across_tenants("a signed upload URL names only its upload"):
        probe = await repo.get_slot(upload_id)
    if probe is None:
        raise not_found("upload", upload_id)
    with scopes.for_tenant(probe.tenant_id):
        return await _receive(ctx, upload_id, content_type, chunks, meta)


async def _receive(
    ctx: ServiceContext,
    upload_id: UUID,
    content_type: str | None,
    chunks: AsyncIterable[bytes],
    meta: RequestMeta | None,
) -> EvidenceRecord:
    slot = await _claim(ctx, upload_id, content_type)
    storage = storage_of(ctx)
    facts: dict[str, str] = {}
    try:
        await storage.put(slot.storage_key, _checked(chunks, slot.size, slot.sha256, facts))
    except BaseException:
        await _release(ctx, upload_id)
        raise
    try:
        return await _attach(ctx, upload_id, facts["sha256"], meta or RequestMeta())
    except BaseException:
        await storage.delete(slot.storage_key)
        await _release(ctx, upload_id)
        raise


async def _claim(ctx: ServiceContext, upload_id: UUID, content_type: str | None) -> repo.UploadSlot:
    async with repo.transaction():
        slot = await repo.get_slot(upload_id, lock=True)
        if slot is None or slot.status in ("completed",):
            raise not_found("upload", upload_id)
        now = ctx.clock.now()
        if slot.status == "expired" or slot.expires_at <= now:
            raise DomainError(ErrorCode.UPLOAD_EXPIRED, "this upload URL has expired; ask again")
        if slot.status == "receiving":
            raise DomainError(
                ErrorCode.UPLOAD_IN_PROGRESS, "a file is being uploaded to this URL already"
            )
        if content_type is None or base_media_type(content_type) != base_media_type(
            slot.content_type
        ):
            raise DomainError(
                ErrorCode.CONTENT_TYPE_NOT_ALLOWED,
                f"send the file with Content-Type {slot.content_type}, as declared",
                "contentType",
            )
        await repo.set_slot_status(upload_id, "receiving", now)
    return slot


async def _release(ctx: ServiceContext, upload_id: UUID) -> None:
    try:
        async with repo.transaction():
            await repo.release_slot(upload_id, ctx.clock.now())
    except Exception:
        # The slot stays `receiving` until it expires; the sweeper then removes it.
        log.exception("could not release upload %s", upload_id)


async def _checked(
    chunks: AsyncIterable[bytes], size: int, sha256: str | None, facts: dict[str, str]
) -> AsyncIterator[bytes]:
    """The body, counted and hashed on the way; raising makes the store drop the write."""
    digest = hashlib.sha256()
    received = 0
    async for chunk in chunks:
        if not chunk:
            continue
        received += len(chunk)
        if received > size:
            raise DomainError(
                ErrorCode.INVALID_INPUT, f"more than the declared {size} bytes were sent", "size"
            )
        digest.update(chunk)
        yield chunk
    if received != size:
        raise DomainError(
            ErrorCode.INVALID_INPUT, f"{received} bytes were sent, {size} declared", "size"
        )
    hexdigest = digest.hexdigest()
    if sha256 is not None and hexdigest != sha256:
        raise DomainError(
            ErrorCode.INTEGRITY_CHECK_FAILED,
            "the file's sha256 is not the one declared",
            "sha256",
            details={"received_sha256": hexdigest},
        )
    facts["sha256"] = hexdigest


async def _attach(
    ctx: ServiceContext, upload_id: UUID, sha256: str, meta: RequestMeta
) -> EvidenceRecord:
    slot = await repo.get_slot(upload_id)
    assert slot is not None
    uploader = Actor(
        Principal(
            slot.uploader_id,
            slot.tenant_id,
            frozenset(slot.uploader_roles),
            frozenset(slot.uploader_groups),
        ),
        meta,
    )
    async with unit_of_work(uploader, ctx) as uow:
        locked = await repo.get_slot(upload_id, lock=True)
        if locked is None or locked.status != "receiving":
            raise not_found("upload", upload_id)
        # Authorised again now: the uploader may have lost access since the URL was made.
        await item_services.get_item(uploader, ctx, slot.item_id)
        _check_room(ctx, await repo.count_of_item(slot.tenant_id, slot.item_id))
        record = await record_evidence(
            uow,
            evidence_id=slot.id,
            item_id=slot.item_id,
            step_id=slot.step_id,
            source=EvidenceSource.UPLOAD,
            name=slot.name,
            content_type=slot.content_type,
            size=slot.size,
            sha256=sha256,
            description=slot.description,
            key=slot.storage_key,
        )
        await repo.set_slot_status(upload_id, "completed", ctx.clock.now())
        return record


async def record_evidence(
    uow: UnitOfWork,
    *,
    evidence_id: UUID,
    item_id: UUID,
    step_id: UUID | None,
    source: str,
    name: str,
    content_type: str,
    size: int,
    sha256: str,
    description: str | None,
    key: str,
) -> EvidenceRecord:
    """Record a stored file as evidence of an item, with its `evidence.attached` event, in the
    caller's unit of work."""
    record = await repo.insert_evidence(
        {
            "id": evidence_id,
            "tenant_id": uow.actor.tenant_id,
            "item_id": item_id,
            "step_id": step_id,
            "source": source,
            "name": name,
            "content_type": content_type,
            "size": size,
            "sha256": sha256,
            "description": description,
            "description_sha256": digest_of(description),
            "uploaded_by": uow.actor.user_id,
            "storage_key": key,
            "now": uow.ctx.clock.now(),
        }
    )
    uow.record(
        "evidence.attached",
        item_id=item_id,
        step_id=step_id,
        data={
            "evidence_id": str(evidence_id),
            "source": source,
            "name": name,
            "content_type": content_type,
            "size": size,
            "sha256": sha256,
            "description_sha256": digest_of(description),
        },
    )
    return record


async def store_snapshot(
    ctx: ServiceContext, tenant_id: str, evidence_id: UUID, content: bytes
) -> tuple[str, str]:
    """Store generated content (a payload or history snapshot) for `record_evidence`; returns
    (storage key, sha256). The caller deletes the key if its transaction fails."""
    key = storage_key(tenant_id, evidence_id)

    async def body() -> AsyncIterator[bytes]:
        yield content

    await storage_of(ctx).put(key, body())
    return key, hashlib.sha256(content).hexdigest()


# --------------------------------------------------------------------------- reading


async def list_evidence(
    actor: Actor, ctx: ServiceContext, item_id: UUID, step_id: UUID | None = None
) -> list[EvidenceRecord]:
    """An item's evidence (only a step's, when given), oldest first."""
    view = await item_services.get_item(actor, ctx, item_id)
    if step_id is not None and step_id not in {s.id for s in view.steps}:
        raise not_found("step", step_id)
    return await repo.evidence_of_item(actor.tenant_id, item_id, step_id)


async def get_evidence(actor: Actor, ctx: ServiceContext, evidence_id: UUID) -> EvidenceRecord:
    """One evidence file's metadata, for someone who may read its item."""
    record = await repo.get_evidence(actor.tenant_id, evidence_id)
    if record is None:
        raise not_found("evidence", evidence_id)
    await item_services.get_item(actor, ctx, record.item_id)
    return record


async def open_content(actor: Actor, ctx: ServiceContext, evidence_id: UUID) -> EvidenceContent:
    """An evidence file's bytes for someone who may read its item, verified first.

    The stored bytes are read once and hashed: when they are not what was recorded (changed,
    truncated, missing), INTEGRITY_CHECK_FAILED is raised before anything is sent and an
    `evidence.integrity_failed` event is audited. They are then streamed pinned to the version
    just verified, hashed again on the way (a change in between ends the stream with an error).
    """
    record = await get_evidence(actor, ctx, evidence_id)
    view = await _snapshot_view(actor, record)
    if record.storage_key is None or record.purged_at is not None:
        raise DomainError(ErrorCode.NOT_FOUND, "the content of this evidence was purged")
    if record.redaction_due_at is not None:
        raise DomainError(
            ErrorCode.NOT_FOUND,
            "the content of this evidence is being redacted by retention; ask again later",
        )
    storage = storage_of(ctx)
    try:
        reader = await storage.open(record.storage_key)
        digest = hashlib.sha256()
        size = 0
        kept: list[bytes] = []
        async for chunk in reader.chunks():
            digest.update(chunk)
            size += len(chunk)
            if view is not None:
                kept.append(chunk)
        problem = None
        if size != record.size or digest.hexdigest() != record.sha256:
            problem = "the stored bytes are not those recorded"
    except ObjectMissing:
        problem = "the stored file is missing"
    if problem is not None:
        await _integrity_failed(actor, ctx, record, problem)
    if view is not None:
        body = view(b"".join(kept))
        if body is not None:
            return EvidenceContent(
                record, _once(body), len(body), hashlib.sha256(body).hexdigest(), redacted=True
            )
    return EvidenceContent(
        record, _verified_stream(storage, record, reader.meta.etag), record.size, record.sha256
    )


SnapshotView = Callable[[bytes], bytes | None]


async def _snapshot_view(actor: Actor, record: EvidenceRecord) -> SnapshotView | None:
    """How `actor` sees an incident review's snapshot when redaction rules hide payload fields
    from them (None: as stored). A reopened item's `history.json` is redacted under the rules
    of the reopened item's template (its payload and the payload copies in its audit events,
    as `WorkflowItem.payload` and `auditEvents` show them); a snapshot sent with
    `openIncidentReview` is a payload of the review's template, redacted as one."""
    if record.source != EvidenceSource.SNAPSHOT:
        return None
    review = await incidents_repo.get_review(actor.tenant_id, record.item_id)
    if review is None or review.snapshot_evidence_id != record.id:
        return None
    of_item = review.reviewed_item_id or record.item_id
    template_key = await incidents_repo.template_key_of(actor.tenant_id, of_item) or ""
    redactor = await redaction_services.redactor(actor, template_key)
    if not redactor.hidden:
        return None
    history = review.reviewed_item_id is not None

    def view(stored: bytes) -> bytes | None:
        try:
            document = json.loads(stored)
        except ValueError:
            # Never served unredacted: what cannot be read cannot be shown safely.
            raise DomainError(
                ErrorCode.INTEGRITY_CHECK_FAILED,
                f"evidence {record.name!r} cannot be read to redact it; it is not served",
            ) from None
        if history and isinstance(document, Mapping):
            seen = redact_history(document, redactor)
        else:
            seen = redact_value(document, redactor.hidden)
        return None if seen == document else encode_snapshot(seen)

    return view


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def _verified_stream(
    storage: ObjectStorage, record: EvidenceRecord, etag: str
) -> AsyncIterator[bytes]:
    assert record.storage_key is not None
    try:
        reader = await storage.open(record.storage_key, etag=etag)
    except (ObjectMissing, ObjectChanged) as exc:
        raise StorageError(f"evidence {record.id} changed while being read") from exc
    digest = hashlib.sha256()
    async for chunk in reader.chunks():
        digest.update(chunk)
        yield chunk
    if digest.hexdigest() != record.sha256:
        log.error("evidence %s changed while being streamed", record.id)
        raise StorageError(f"evidence {record.id} changed while being read")


async def _integrity_failed(
    actor: Actor, ctx: ServiceContext, record: EvidenceRecord, problem: str
) -> None:
    log.error(
        "evidence %s of item %s failed its integrity check: %s", record.id, record.item_id, problem
    )
    async with unit_of_work(actor, ctx) as uow:
        uow.record(
            "evidence.integrity_failed",
            item_id=record.item_id,
            step_id=record.step_id,
            reason=problem,
            data={"evidence_id": str(record.id), "sha256": record.sha256},
        )
    raise DomainError(
        ErrorCode.INTEGRITY_CHECK_FAILED,
        f"evidence {record.name!r} failed its integrity check: {problem}; it is not served",
    )


def download_token(
    actor: Actor, ctx: ServiceContext, record: EvidenceRecord
) -> tuple[str, datetime]:
    """A short-lived token for the download URL of `record`, carrying who may use it (the
    download is authorised again, as that person, when it is used)."""
    ttl = timedelta(seconds=ctx.settings.evidence_download_ttl_seconds)
    return links.mint(actor, ctx, DOWNLOAD_AUDIENCE, "evd", record.id, ttl)


def download_grant(ctx: ServiceContext, token: str) -> tuple[Actor, UUID]:
    """(actor, evidence id) of a download token; NOT_FOUND when it is invalid or expired."""
    return links.grant(ctx, token, DOWNLOAD_AUDIENCE, "evd")


# --------------------------------------------------------------------------- housekeeping


async def sweep_uploads(ctx: ServiceContext, *, limit: int = 500) -> int:
    """Expire unfinished uploads past their time and delete whatever they stored; remove
    leftovers of writes interrupted by a crash. Returns how many uploads were expired."""
    storage = storage_of(ctx)
    with scopes.across_tenants("the upload sweeper expires every tenant's uploads"):
        async with repo.transaction():
            slots = await repo.expired_slots(ctx.clock.now(), limit)
            for slot in slots:
                await storage.delete(slot.storage_key)
                await repo.set_slot_status(slot.id, "expired", ctx.clock.now())
    await storage.sweep_incomplete(ctx.settings.evidence_upload_ttl_seconds)
    return len(slots)

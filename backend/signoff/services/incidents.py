"""Incident reviews: opened from an external trace or decision id, or by reopening a decided
item; each with a snapshot attached as evidence and precedent to compare with.

A review is an ordinary workflow item of an `incident_review` template (submitted through the
item service, so it is reviewed, timed and notified like any other), plus an `incident_review`
row saying what it is about. The snapshot — the payload sent with the trace, or the reopened
item's whole history — is frozen into the evidence store and attached in the same transaction
as the review; a failed transaction deletes it again.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any
from uuid import UUID

from signoff.db import audit as audit_repo
from signoff.db import comments as comment_repo
from signoff.db import evidence as evidence_repo
from signoff.db import incidents as repo
from signoff.db import items as items_repo
from signoff.db.incidents import IncidentReviewRecord
from signoff.db.paging import Window, in_list_order
from signoff.domain.actors import Actor
from signoff.domain.errors import DomainError, ErrorCode, invalid
from signoff.domain.evidence import EvidenceSource, encode_snapshot
from signoff.domain.records import Decision
from signoff.domain.states import DECIDED_ITEM_STATES
from signoff.services import engine
from signoff.services import evidence as evidence_services
from signoff.services import items as item_services
from signoff.services.context import ServiceContext
from signoff.services.engine import ItemView
from signoff.services.uow import remember_result, replayed_result, unit_of_work

DEFAULT_TEMPLATE = "incident-review"
MAX_REF = 500
MAX_SUBJECT = 200
DECIDED = DECIDED_ITEM_STATES
SOURCE_KINDS = ("trace", "decision")
PRECEDENT_SCAN = 10
"""How many candidates per place in a page `precedent` examines at most (see there)."""


@dataclass(frozen=True)
class OpenReviewInput:
    """An incident review of an external trace or decision."""

    source_ref: str
    title: str
    source_kind: str = "trace"
    subject: str | None = None
    summary: str | None = None
    severity: str | None = None
    snapshot: Any = None
    template_key: str = DEFAULT_TEMPLATE
    idempotency_key: str | None = None


@dataclass(frozen=True)
class ReopenInput:
    """Reopen a decided item as an incident review."""

    item_id: UUID
    title: str | None = None
    summary: str | None = None
    severity: str | None = None
    template_key: str = DEFAULT_TEMPLATE
    expected_version: int | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Precedent:
    """An earlier decided item, why it is precedent, and how it was decided."""

    view: ItemView
    same_template: bool
    same_subject: bool
    decisions: list[Decision] = field(default_factory=list)


def _text(value: str | None, limit: int, name: str, *, required: bool = False) -> str | None:
    text = (value or "").strip()
    if required and not text:
        raise invalid(f"{name} is required", name)
    if len(text) > limit or any(ord(c) < 32 for c in text):
        raise invalid(f"{name} is at most {limit} characters, without control characters", name)
    return text or None


def _snapshot_bytes(ctx: ServiceContext, snapshot: Any) -> bytes:
    data = encode_snapshot(snapshot)
    if len(data) > ctx.settings.evidence_max_bytes:
        raise DomainError(
            ErrorCode.LIMIT_EXCEEDED,
            f"the snapshot is larger than {ctx.settings.evidence_max_bytes} bytes",
            "snapshot",
        )
    return data


def _fingerprint(inp: Any) -> dict[str, Any]:
    data = asdict(inp)
    data.pop("idempotency_key", None)
    return data


async def open_incident_review(actor: Actor, ctx: ServiceContext, inp: OpenReviewInput) -> ItemView:
    """Open an incident review of an external trace or decision, its payload snapshot (when
    given) attached as evidence."""
    source_ref = _text(inp.source_ref, MAX_REF, "sourceRef", required=True)
    assert source_ref is not None
    if inp.source_kind not in SOURCE_KINDS:
        raise invalid(f"sourceKind is one of {list(SOURCE_KINDS)}", "sourceKind")
    subject = _text(inp.subject, MAX_SUBJECT, "subject")
    snapshot = _snapshot_bytes(ctx, inp.snapshot) if inp.snapshot is not None else None
    return await _open(
        actor,
        ctx,
        operation="openIncidentReview",
        fingerprint=_fingerprint(inp),
        idempotency_key=inp.idempotency_key,
        template_key=inp.template_key,
        title=inp.title,
        payload={
            "source": source_ref,
            "source_kind": inp.source_kind,
            "subject": subject,
            "summary": inp.summary,
            "severity": inp.severity,
        },
        source_ref=source_ref,
        source_kind=inp.source_kind,
        subject=subject,
        external_ref=source_ref,
        reviewed=None,
        expected_version=None,
        snapshot=snapshot,
        snapshot_name=f"snapshot-{inp.source_kind}.json",
    )


async def reopen_as_incident_review(
    actor: Actor, ctx: ServiceContext, inp: ReopenInput
) -> ItemView:
    """Reopen a decided item as an incident review: the review links to it, its whole history
    (item, steps, decisions, audit events, comments, evidence) is attached as a snapshot, and
    the item's own history records that it was reopened."""
    original = await item_services.get_item(actor, ctx, inp.item_id)
    _check_reopenable(original, inp.expected_version)
    history = await _history(actor, original)
    item = original.item
    global_ref = f"item:{item.id}"
    subject = item.external_ref or None
    return await _open(
        actor,
        ctx,
        operation="reopenAsIncidentReview",
        fingerprint=_fingerprint(inp),
        idempotency_key=inp.idempotency_key,
        template_key=inp.template_key,
        title=inp.title or f"Review: {item.title}"[:300],
        payload={
            "source": global_ref,
            "source_kind": "item",
            "subject": subject,
            "summary": inp.summary,
            "severity": inp.severity,
        },
        source_ref=global_ref,
        source_kind="item",
        subject=subject,
        external_ref=item.external_ref,
        reviewed=original,
        expected_version=inp.expected_version,
        snapshot=_snapshot_bytes(ctx, history),
        snapshot_name="history.json",
    )


async def _open(
    actor: Actor,
    ctx: ServiceContext,
    *,
    operation: str,
    fingerprint: dict[str, Any],
    idempotency_key: str | None,
    template_key: str,
    title: str,
    payload: dict[str, Any],
    source_ref: str,
    source_kind: str,
    subject: str | None,
    external_ref: str | None,
    reviewed: ItemView | None,
    expected_version: int | None,
    snapshot: bytes | None,
    snapshot_name: str,
) -> ItemView:
    evidence_id = uuid.uuid4()
    stored: tuple[str, str] | None = None
    if snapshot is not None:
        # Stored before the transaction (no slow call inside it), deleted if it fails.
        stored = await evidence_services.store_snapshot(ctx, actor.tenant_id, evidence_id, snapshot)
    try:
        async with unit_of_work(actor, ctx) as uow:
            replay = await replayed_result(uow, idempotency_key, operation, fingerprint)
            if replay is not None:
                if stored is not None:
                    await evidence_services.storage_of(ctx).delete(stored[0])
                return await item_services.get_item(actor, ctx, UUID(replay["item_id"]))
            if reviewed is not None:
                # Checked again under the item's lock: it may have changed since it was read.
                locked, _context = await engine.lock_view(actor, ctx, item_id=reviewed.id)
                _check_reopenable(locked, expected_version)
            view = await item_services.submit_item(
                actor,
                ctx,
                item_services.SubmitItemInput(
                    template_key=template_key,
                    title=title,
                    payload={k: v for k, v in payload.items() if v is not None},
                    external_ref=external_ref,
                ),
            )
            if view.definition.kind.value != "incident_review":
                raise invalid(f"{template_key!r} is not an incident review template", "templateKey")
            if stored is not None and snapshot is not None:
                await evidence_services.record_evidence(
                    uow,
                    evidence_id=evidence_id,
                    item_id=view.id,
                    step_id=None,
                    source=EvidenceSource.SNAPSHOT,
                    name=snapshot_name,
                    content_type="application/json",
                    size=len(snapshot),
                    sha256=stored[1],
                    description=None,
                    key=stored[0],
                )
            await repo.insert_review(
                {
                    "item_id": view.id,
                    "tenant_id": actor.tenant_id,
                    "source_ref": source_ref,
                    "source_kind": source_kind,
                    "subject": subject,
                    "reviewed_item_id": reviewed.id if reviewed else None,
                    "snapshot_evidence_id": evidence_id if stored else None,
                    "now": ctx.clock.now(),
                }
            )
            links = {
                "source_ref": source_ref,
                "source_kind": source_kind,
                "subject": subject,
                "reviewed_item_id": str(reviewed.id) if reviewed else None,
                "snapshot_evidence_id": str(evidence_id) if stored else None,
            }
            uow.record("incident_review.opened", item_id=view.id, data=links)
            if reviewed is not None:
                uow.record(
                    "item.reopened_as_review",
                    item_id=reviewed.id,
                    data={"review_item_id": str(view.id)},
                )
            await remember_result(uow, idempotency_key, {"item_id": str(view.id)})
            return view
    except BaseException:
        if stored is not None:
            await evidence_services.storage_of(ctx).delete(stored[0])
        raise


def _check_reopenable(view: ItemView, expected_version: int | None) -> None:
    engine.check_version(view, expected_version)
    if view.state not in DECIDED:
        raise DomainError(
            ErrorCode.ILLEGAL_TRANSITION,
            f"only a decided item can be reopened as an incident review, not a "
            f"{view.state.value} one",
        )


async def _history(actor: Actor, view: ItemView) -> dict[str, Any]:
    """Everything recorded about an item, as the snapshot of a review."""
    tenant = actor.tenant_id
    comments = await comment_repo.comments_of_item(
        tenant, view.id, step_id=None, after_seq=None, limit=100_000
    )
    return {
        "item": asdict(view.item),
        "steps": [asdict(s) for s in view.steps],
        "decisions": [asdict(d) for d in await items_repo.decisions_of_items(tenant, [view.id])],
        "audit_events": await audit_repo.events_for_item(tenant, view.id),
        "comments": [{**asdict(c), "body": None if c.deleted else c.body} for c in comments],
        "evidence": [
            asdict(e) for e in await evidence_repo.evidence_of_item(tenant, view.id, None)
        ],
    }


async def get_review(
    actor: Actor, ctx: ServiceContext, item_id: UUID
) -> IncidentReviewRecord | None:
    """What an item the actor may read reviews, when it is an incident review."""
    await item_services.get_item(actor, ctx, item_id)
    return await repo.get_review(actor.tenant_id, item_id)


async def reviews_of(actor: Actor, ctx: ServiceContext, item_id: UUID) -> list[ItemView]:
    """The incident reviews that reopened an item, those the actor may read."""
    await item_services.get_item(actor, ctx, item_id)
    views = []
    for review in await repo.reviews_of(actor.tenant_id, item_id):
        readable = await _readable(actor, ctx, review.item_id)
        if readable is not None:
            views.append(readable)
    return views


async def _readable(actor: Actor, ctx: ServiceContext, item_id: UUID) -> ItemView | None:
    try:
        return await item_services.get_item(actor, ctx, item_id)
    except DomainError as exc:
        if exc.code == ErrorCode.NOT_FOUND:
            return None
        raise


async def precedent(
    actor: Actor, ctx: ServiceContext, item_id: UUID, window: Window
) -> list[Precedent]:
    """Earlier decided items like this one, newest first, with their decisions and reasons:
    of the same template (for a review that reopened an item: that item's template) or about
    the same subject (the external reference, or a review's subject); the keyset `window` of
    that list (key `db.incidents.PRECEDENT_KEY`), in the list's order. Only items the actor
    may read are shown, and skipped ones do not count towards the window's limit; at most
    `PRECEDENT_SCAN` times the limit candidates are examined per call, so a reader who may
    read few of them gets a shorter list rather than an unbounded scan. The item a review
    reopened is shown as such, not as precedent."""
    view = await item_services.get_item(actor, ctx, item_id)
    tenant = actor.tenant_id
    review = await repo.get_review(tenant, item_id)
    template_key = await repo.template_key_of(tenant, item_id)
    subject = view.item.external_ref
    exclude = [item_id]
    if review is not None:
        subject = review.subject or subject
        if review.reviewed_item_id is not None:
            exclude.append(review.reviewed_item_id)
            template_key = await repo.template_key_of(tenant, review.reviewed_item_id)
    found: list[Precedent] = []
    scanned = 0
    batch_window = dataclasses.replace(window, limit=window.limit * 2)
    while len(found) < window.limit and scanned < window.limit * PRECEDENT_SCAN:
        batch = await repo.precedent_candidates(
            tenant,
            exclude=exclude,
            before=view.item.created_at,
            template_key=template_key,
            subject=subject,
            decided_states=[s.value for s in DECIDED],
            window=batch_window,
        )
        scanned += len(batch)
        for candidate in batch:
            readable = await _readable(actor, ctx, candidate.item_id)
            if readable is None:
                continue
            found.append(Precedent(readable, candidate.same_template, candidate.same_subject))
            if len(found) == window.limit:
                break
        if len(batch) < batch_window.limit:
            break
        # Go on from the last candidate read, in the direction the window is read.
        last = (batch[-1].created_at, batch[-1].item_id)
        if window.from_end:
            batch_window = dataclasses.replace(batch_window, before=last)
        else:
            batch_window = dataclasses.replace(batch_window, after=last)
    found = in_list_order(found, window)
    decisions = await items_repo.decisions_of_items(tenant, [p.view.id for p in found])
    for entry in found:
        entry.decisions.extend(d for d in decisions if d.item_id == entry.view.id)
    return found

"""Retention use cases: set a tenant's policies, place and release legal holds, and apply the
policies to the items that are due (the scheduled job and `signoff retention run`).

Applying a policy to an item is one unit of work: the item locked, its hold and history
checked again under the lock, its payload, comment bodies and evidence descriptions removed,
and its `item.retention_applied` audit event written — or nothing. Evidence objects are deleted
from the store after the commit (a slow call never runs inside the transaction); a deletion
that fails is retried by the next run, and the file is refused for download from the commit on.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from signoff import metrics
from signoff.db import audit as audit_repo
from signoff.db import items as items_repo
from signoff.db import retention as repo
from signoff.db import scope
from signoff.domain.actors import Actor
from signoff.domain.errors import DomainError, ErrorCode, not_found
from signoff.domain.evidence import encode_snapshot
from signoff.domain.permissions import Permission
from signoff.domain.retention import (
    ItemRetentionRecord,
    LegalHoldRecord,
    RetentionAction,
    RetentionPolicy,
    Verdict,
    check_policy,
    check_reason,
    digest_of,
    policy_for,
    retained_event_data,
    retained_history,
    retained_payload,
    verdict,
)
from signoff.services import audit_exports as export_services
from signoff.services import permissions
from signoff.services.context import ServiceContext
from signoff.services.evidence import storage_of
from signoff.services.uow import Guards, remember_result, replayed_result, run_once, unit_of_work
from signoff.storage import StorageError

log = logging.getLogger("signoff.services.retention")

BATCH = 200


@dataclass(frozen=True)
class SetPolicyInput:
    """A tenant's policy: for one template (`template_key`), or the default (None or '')."""

    days: int
    action: str
    template_key: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class HoldInput:
    """Place or release a legal hold on an item."""

    item_id: UUID
    reason: str
    idempotency_key: str | None = None


@dataclass
class RetentionReport:
    """What one run of retention did."""

    applied: list[UUID] = field(default_factory=list)
    held: int = 0
    objects_deleted: int = 0
    object_failures: int = 0
    snapshots_redacted: int = 0
    snapshot_failures: int = 0
    exports_expired: int = 0
    export_files_deleted: int = 0
    export_file_failures: int = 0


def _policy_data(policy: RetentionPolicy | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    return {"template_key": policy.template_key, "days": policy.days, "action": policy.action}


async def _replayed_policy(kept: dict[str, Any]) -> RetentionPolicy:
    return RetentionPolicy(kept["template_key"], kept["days"], RetentionAction(kept["action"]))


def _kept_policy(policy: RetentionPolicy) -> dict[str, Any]:
    kept = _policy_data(policy)
    assert kept is not None
    return kept


async def set_policy(
    actor: Actor, ctx: ServiceContext, inp: SetPolicyInput, guards: Guards = Guards()
) -> RetentionPolicy:
    """Create or replace a retention policy (admins; audited as `retention.policy_set`)."""
    await permissions.require(
        actor, ctx, Permission.ADMINISTER_RETENTION, "changing or reading retention policies"
    )
    policy = check_policy(inp.template_key, inp.days, inp.action)
    async with unit_of_work(actor, ctx) as uow:

        async def change() -> RetentionPolicy:
            now = ctx.clock.now()
            before = await repo.put_policy(actor.tenant_id, policy, actor.user_id, now)
            uow.record(
                "retention.policy_set",
                reason=inp.reason,
                data={"before": _policy_data(before), "after": _policy_data(policy)},
            )
            return policy

        return await run_once(
            uow,
            guards.idempotency_key,
            "setRetentionPolicy",
            asdict(inp),
            change,
            keep=_kept_policy,
            replay=_replayed_policy,
        )


async def remove_policy(
    actor: Actor,
    ctx: ServiceContext,
    template_key: str | None,
    reason: str | None = None,
    guards: Guards = Guards(),
) -> RetentionPolicy:
    """Remove a retention policy (admins; audited as `retention.policy_removed`); NOT_FOUND
    when there is none for that template."""
    await permissions.require(
        actor, ctx, Permission.ADMINISTER_RETENTION, "changing or reading retention policies"
    )
    key = (template_key or "").strip()
    async with unit_of_work(actor, ctx) as uow:

        async def change() -> RetentionPolicy:
            removed = await repo.delete_policy(actor.tenant_id, key)
            if removed is None:
                raise not_found("retention policy", repr(key or "default"))
            uow.record(
                "retention.policy_removed", reason=reason, data={"before": _policy_data(removed)}
            )
            return removed

        return await run_once(
            uow,
            guards.idempotency_key,
            "removeRetentionPolicy",
            {"template_key": key, "reason": reason},
            change,
            keep=_kept_policy,
            replay=_replayed_policy,
        )


async def list_policies(actor: Actor, ctx: ServiceContext) -> list[RetentionPolicy]:
    """The tenant's retention policies (admins)."""
    await permissions.require(
        actor, ctx, Permission.ADMINISTER_RETENTION, "changing or reading retention policies"
    )
    return await repo.policies_of(actor.tenant_id)


async def place_hold(actor: Actor, ctx: ServiceContext, inp: HoldInput) -> LegalHoldRecord:
    """Put an item on legal hold: retention leaves it alone until the hold is released.
    Legal hold roles only; audited as `item.legal_hold_placed`."""
    await permissions.require(
        actor, ctx, Permission.LEGAL_HOLD, "placing or releasing a legal hold"
    )
    reason = check_reason(inp.reason)
    async with unit_of_work(actor, ctx) as uow:
        replay = await replayed_result(
            uow, inp.idempotency_key, "placeLegalHold", {"item": str(inp.item_id), "r": reason}
        )
        if replay is not None:
            return _replayed_hold(inp.item_id, replay)
        await _lock(actor, inp.item_id)
        if await repo.hold_of(actor.tenant_id, inp.item_id) is not None:
            raise DomainError(ErrorCode.ILLEGAL_TRANSITION, "the item is already on legal hold")
        hold = await repo.place_hold(
            actor.tenant_id, inp.item_id, reason, actor.user_id, ctx.clock.now()
        )
        uow.record("item.legal_hold_placed", item_id=inp.item_id, reason=reason, data={})
        await remember_result(uow, inp.idempotency_key, _hold_result(hold))
    return hold


async def release_hold(actor: Actor, ctx: ServiceContext, inp: HoldInput) -> LegalHoldRecord:
    """Release an item's legal hold (legal hold roles; audited as `item.legal_hold_released`,
    with who placed it and when). A replay of the same key returns the released hold."""
    await permissions.require(
        actor, ctx, Permission.LEGAL_HOLD, "placing or releasing a legal hold"
    )
    reason = check_reason(inp.reason)
    async with unit_of_work(actor, ctx) as uow:
        replay = await replayed_result(
            uow, inp.idempotency_key, "releaseLegalHold", {"item": str(inp.item_id), "r": reason}
        )
        if replay is not None:
            return _replayed_hold(inp.item_id, replay)
        await _lock(actor, inp.item_id)
        released = await repo.release_hold(actor.tenant_id, inp.item_id)
        if released is None:
            raise DomainError(ErrorCode.ILLEGAL_TRANSITION, "the item is not on legal hold")
        uow.record(
            "item.legal_hold_released",
            item_id=inp.item_id,
            reason=reason,
            data={
                "placed_by": released.placed_by,
                "placed_at": released.placed_at,
                "placed_reason": released.reason,
            },
        )
        await remember_result(uow, inp.idempotency_key, _hold_result(released))
    return released


def _hold_result(hold: LegalHoldRecord) -> dict[str, Any]:
    return {
        "reason": hold.reason,
        "placed_by": hold.placed_by,
        "placed_at": hold.placed_at.isoformat(),
    }


def _replayed_hold(item_id: UUID, result: dict[str, Any]) -> LegalHoldRecord:
    return LegalHoldRecord(
        item_id, result["reason"], result["placed_by"], datetime.fromisoformat(result["placed_at"])
    )


async def _lock(actor: Actor, item_id: UUID) -> None:
    # Holds and retention serialise on the item row: a purge never misses a hold placed
    # while it runs.
    if await items_repo.lock_item(actor.tenant_id, item_id=item_id) is None:
        raise not_found("item", item_id)


async def hold_of(actor: Actor, ctx: ServiceContext, item_id: UUID) -> LegalHoldRecord | None:
    """The item's legal hold, for someone with a legal hold role (None for anyone else)."""
    if not await permissions.may(actor, ctx, Permission.LEGAL_HOLD):
        return None
    return await repo.hold_of(actor.tenant_id, item_id)


async def retention_of(
    actor: Actor, ctx: ServiceContext, item_id: UUID
) -> ItemRetentionRecord | None:
    """What retention did to an item the caller has already been allowed to read."""
    return await repo.retention_of(actor.tenant_id, item_id)


async def apply_retention(
    ctx: ServiceContext, tenant_id: str | None = None, *, limit: int | None = None
) -> RetentionReport:
    """Apply every tenant's policies (or `tenant_id`'s; of `timer_tenants` only, when that
    setting names any) to the items due at the clock's now; then delete the stored objects of
    purged evidence, rewrite the review snapshots that hold removed content, and expire the
    audit export files kept long enough (`audit_exports.expire_exports`). Safe to run
    concurrently and again: each item is decided under its lock and handled once."""
    report = RetentionReport()
    only = [tenant_id] if tenant_id else list(ctx.settings.timer_tenants)
    if only:
        tenants = only
    else:
        # The one read across tenants: which of them have a policy.
        with scope.all_tenants():
            tenants = await repo.tenants_with_policies()
    for tenant in tenants:
        with scope.tenant(tenant):
            await _apply_tenant(ctx, tenant, report, limit)
            await _delete_objects(ctx, tenant, report)
            await _redact_snapshots(ctx, tenant, report)
    export_scopes: list[str | None] = [*only] or [None]
    for exports_of in export_scopes:
        exports = await export_services.expire_exports(ctx, exports_of)
        report.exports_expired += len(exports.expired)
        report.export_files_deleted += exports.files_deleted
        report.export_file_failures += exports.file_failures
    return report


async def _apply_tenant(
    ctx: ServiceContext, tenant_id: str, report: RetentionReport, limit: int | None
) -> None:
    seen: set[UUID] = set()
    while limit is None or len(report.applied) < limit:
        now = ctx.clock.now()
        candidates = [c for c in await repo.due_candidates(tenant_id, now, BATCH) if c not in seen]
        if not candidates:
            return
        for item_id in candidates:
            if limit is not None and len(report.applied) >= limit:
                return
            seen.add(item_id)
            outcome = await apply_to_item(ctx, tenant_id, item_id)
            if outcome is Verdict.DUE:
                report.applied.append(item_id)
            elif outcome is Verdict.HELD:
                report.held += 1


async def apply_to_item(ctx: ServiceContext, tenant_id: str, item_id: UUID) -> Verdict:
    """Apply the governing policy to one item if it is due now; what was decided."""
    actor = Actor.system(tenant_id)
    async with unit_of_work(actor, ctx) as uow:
        locked = await items_repo.lock_item(tenant_id, item_id=item_id)
        if locked is None:
            return Verdict.NO_POLICY
        item, _ = locked
        facts = await repo.facts_of(tenant_id, item_id, item.template_id)
        policy = policy_for(await repo.policies_of(tenant_id), facts.template_key)
        now = ctx.clock.now()
        decided = verdict(
            state=item.state,
            last_changed=item.updated_at,
            policy=policy,
            held=facts.held,
            applied=facts.applied,
            now=now,
        )
        if decided is not Verdict.DUE:
            return decided
        assert policy is not None
        digest = digest_of(dict(item.payload))
        version = await repo.replace_payload(
            tenant_id, item_id, retained_payload(item.payload, policy.action), now
        )
        events = 0
        # An event committed but not yet numbered would escape the redaction below.
        await audit_repo.sequence_here(tenant_id)
        for seq, data in await repo.events_with_payload_copies(tenant_id, item_id):
            remaining = retained_event_data(data)
            if remaining is not None:
                await audit_repo.redact_event(tenant_id, seq, at=now, data=remaining)
                events += 1
        comments = await repo.purge_comment_bodies(tenant_id, item_id, now)
        evidence = await repo.purge_evidence(tenant_id, item_id, now)
        snapshots = await repo.mark_review_snapshots(tenant_id, item_id, now)
        await repo.record_applied(tenant_id, item_id, policy, digest, now)
        uow.record(
            "item.retention_applied",
            item_id=item_id,
            data={
                "policy": _policy_data(policy),
                "payload_sha256": digest,
                "comment_revisions": comments,
                "evidence": evidence,
                "audit_events": events,
                "review_snapshots": snapshots,
                "version": version,
            },
        )
    return Verdict.DUE


async def _delete_objects(ctx: ServiceContext, tenant_id: str, report: RetentionReport) -> None:
    storage = storage_of(ctx)
    for evidence_id, key in await repo.objects_to_delete(tenant_id):
        try:
            await storage.delete(key)
        except StorageError:
            report.object_failures += 1
            log.warning("could not delete purged evidence %s; retried next run", evidence_id)
            continue
        await repo.forget_object(tenant_id, evidence_id)
        report.objects_deleted += 1


async def _redact_snapshots(ctx: ServiceContext, tenant_id: str, report: RetentionReport) -> None:
    """Rewrite the snapshots of incident reviews whose reviewed item's content retention
    removed: the same redaction, applied to the history they hold.

    The new content replaces the object under its key (the store's `put` is atomic), then the
    evidence row takes its digest and size, audited as `evidence.snapshot_redacted` on the
    review. The rewrite is deterministic (from the item's payload as retention left it) and
    changes nothing when applied again, so runs may overlap or stop between the two steps:
    the next run finishes the job. Until then the file is not served.
    """
    storage = storage_of(ctx)
    for snapshot in await repo.snapshots_to_redact(tenant_id):
        stage = "read"
        try:
            reader = await storage.open(snapshot.storage_key)
            raw = b"".join([chunk async for chunk in reader.chunks()])
            stage = "decode"
            history = json.loads(raw)
            payload = await repo.payload_of(tenant_id, snapshot.reviewed_item_id)
            content = encode_snapshot(retained_history(history, payload))
            stage = "write"
            await storage.put(snapshot.storage_key, _once(content))
        except (StorageError, ValueError, TypeError, AttributeError) as exc:
            report.snapshot_failures += 1
            _snapshot_failed(tenant_id, snapshot, storage.name, stage, exc)
            continue
        sha256 = hashlib.sha256(content).hexdigest()
        async with unit_of_work(Actor.system(tenant_id), ctx) as uow:
            if await repo.snapshot_redacted(tenant_id, snapshot.evidence_id, sha256, len(content)):
                uow.record(
                    "evidence.snapshot_redacted",
                    item_id=snapshot.review_item_id,
                    data={
                        "evidence_id": str(snapshot.evidence_id),
                        "reviewed_item_id": str(snapshot.reviewed_item_id),
                        "sha256_before": snapshot.sha256,
                        "sha256": sha256,
                        "size": len(content),
                    },
                )
                report.snapshots_redacted += 1


def _snapshot_failed(
    tenant_id: str, snapshot: repo.SnapshotToRedact, storage: str, stage: str, exc: Exception
) -> None:
    """Count a snapshot rewrite that failed and say so in one structured line (no traceback:
    the stage and the error name the problem, and the next run tries again)."""
    metrics.SNAPSHOT_REWRITE_FAILURES.labels(storage, stage).inc()
    log.warning(
        "could not redact the review snapshot %s (%s failed: %s); retried next run",
        snapshot.evidence_id,
        stage,
        type(exc).__name__,
        extra={
            "tenant": tenant_id,
            "evidence_id": str(snapshot.evidence_id),
            "review_item_id": str(snapshot.review_item_id),
            "reviewed_item_id": str(snapshot.reviewed_item_id),
            "storage": storage,
            "stage": stage,
            "error": f"{type(exc).__name__}: {exc}"[:500],
        },
    )


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body

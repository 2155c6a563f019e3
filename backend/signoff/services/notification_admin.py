"""Notification use cases of people: operators' dead letters, profiles and preferences."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from uuid import UUID

from signoff.db import notifications as repo
from signoff.db.paging import Window
from signoff.domain import notification_policy as policy
from signoff.domain.actors import Actor
from signoff.domain.errors import DomainError, ErrorCode, invalid, not_found
from signoff.domain.permissions import Permission
from signoff.services import permissions
from signoff.services.context import ServiceContext
from signoff.services.uow import Guards, UnitOfWork, run_once, unit_of_work


def _uuid(value: str | None) -> UUID | None:
    return UUID(value) if value else None


async def _require_admin(actor: Actor, ctx: ServiceContext) -> None:
    await permissions.require(
        actor, ctx, Permission.ADMINISTER_NOTIFICATIONS, "administering notifications"
    )


async def dead_letters(actor: Actor, ctx: ServiceContext, window: Window) -> list[dict[str, Any]]:
    """A page of the tenant's dead-lettered deliveries, most recently changed first
    (administrators only)."""
    await _require_admin(actor, ctx)
    return await repo.dead_letters(actor.tenant_id, window)


async def delivery(actor: Actor, ctx: ServiceContext, delivery_id: int) -> dict[str, Any]:
    """One delivery of the tenant with its log (administrators only); NOT_FOUND otherwise."""
    await _require_admin(actor, ctx)
    row = await repo.delivery_of_tenant(actor.tenant_id, delivery_id)
    if row is None:
        raise not_found("delivery", delivery_id)
    return row


async def display_names(actor: Actor, user_ids: list[str]) -> dict[str, str]:
    """The directory's display names of people of the actor's tenant (absent: none known).
    Only names: addresses stay with the notification pipeline."""
    return await repo.display_names(actor.tenant_id, user_ids)


async def attempts_of(delivery_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """The attempts of deliveries, by delivery id."""
    return await repo.attempts_of(delivery_ids)


async def retry_dead_letter(
    actor: Actor, ctx: ServiceContext, delivery_id: int, guards: Guards = Guards()
) -> dict[str, Any]:
    """Give a dead-lettered delivery a fresh set of attempts (administrators only), audited.

    The delivery is due at once; the sweeper (or the caller, after commit) enqueues it.
    """
    await _require_admin(actor, ctx)

    async def replay(kept: dict[str, Any]) -> dict[str, Any]:
        return await delivery(actor, ctx, delivery_id)

    async with unit_of_work(actor, ctx) as uow:
        return await run_once(
            uow,
            guards.idempotency_key,
            "retryDeadLetter",
            {"delivery_id": delivery_id},
            lambda: _retry(actor, ctx, uow, delivery_id),
            keep=lambda _: {},
            replay=replay,
        )


async def _retry(
    actor: Actor, ctx: ServiceContext, uow: UnitOfWork, delivery_id: int
) -> dict[str, Any]:
    row = await repo.lock_tenant_delivery(actor.tenant_id, delivery_id)
    if row is None:
        raise not_found("notification delivery", delivery_id)
    if row["status"] != "dead":
        raise DomainError(
            ErrorCode.ILLEGAL_TRANSITION,
            f"only a dead-lettered delivery can be retried (this one is {row['status']})",
            "id",
        )
    now = ctx.clock.now()
    changes = {
        "status": "queued",
        "next_attempt_at": now,
        "max_attempts": row["attempts"] + ctx.settings.notify_max_attempts,
    }
    await repo.update_delivery(delivery_id, changes, now)
    uow.record(
        "notification.retry_requested",
        item_id=_uuid(row["payload"].get("item_id")),
        data={
            "delivery_id": delivery_id,
            "channel": row["channel"],
            "recipient_id": row["recipient_id"],
            "attempts": row["attempts"],
        },
    )
    return {**row, **changes, "updated_at": now}


@dataclass(frozen=True)
class ProfileInput:
    """An administrator's view of a user: None leaves a field unchanged."""

    user_id: str
    display_name: str | None = None
    groups: tuple[str, ...] | None = None
    roles: tuple[str, ...] | None = None
    addresses: dict[str, str] | None = None


async def upsert_user_profile(
    actor: Actor, ctx: ServiceContext, inp: ProfileInput, guards: Guards = Guards()
) -> dict[str, Any]:
    """Create or update a user's profile (administrators only), audited."""
    await _require_admin(actor, ctx)
    user_id = inp.user_id.strip()
    if not user_id or len(user_id) > 200:
        raise invalid("userId must be 1 to 200 characters", "userId")
    addresses = policy.check_addresses(inp.addresses) if inp.addresses is not None else None

    async def change() -> dict[str, Any]:
        row = await repo.upsert_profile(
            actor.tenant_id,
            user_id,
            display_name=inp.display_name,
            groups=sorted(set(inp.groups)) if inp.groups is not None else None,
            roles=sorted(set(inp.roles)) if inp.roles is not None else None,
            addresses=addresses,
            preferences=None,
            now=ctx.clock.now(),
        )
        # Addresses are personal data: the audit trail names the channels, not the addresses.
        uow.record(
            "user_profile.upserted",
            data={
                "user_id": user_id,
                "groups": row["groups"],
                "roles": row["roles"],
                "channels": sorted(row["addresses"]),
            },
        )
        return row

    async def replay(kept: dict[str, Any]) -> dict[str, Any]:
        row = await repo.get_profile(actor.tenant_id, user_id)
        if row is None:
            raise not_found("user profile", user_id)
        return row

    async with unit_of_work(actor, ctx) as uow:
        return await run_once(
            uow,
            guards.idempotency_key,
            "upsertUserProfile",
            asdict(inp),
            change,
            keep=lambda _: {},
            replay=replay,
        )


async def my_profile(actor: Actor) -> dict[str, Any]:
    """The caller's profile (an empty one when none is stored)."""
    row = await repo.get_profile(actor.tenant_id, actor.user_id)
    if row is not None:
        return row
    return {
        "user_id": actor.user_id,
        "display_name": "",
        "groups": [],
        "roles": [],
        "addresses": {},
        "preferences": {},
    }


async def update_notification_preferences(
    actor: Actor, ctx: ServiceContext, raw: dict[str, Any], guards: Guards = Guards()
) -> dict[str, Any]:
    """Replace the caller's notification preferences (validated), audited."""
    prefs = policy.parse_preferences(raw)

    async def change() -> dict[str, Any]:
        row = await repo.upsert_profile(
            actor.tenant_id,
            actor.user_id,
            display_name=None,
            groups=None,
            roles=None,
            addresses=None,
            preferences=prefs.to_dict(),
            now=ctx.clock.now(),
        )
        uow.record("user_profile.preferences_updated", data={"preferences": prefs.to_dict()})
        return row

    async def replay(kept: dict[str, Any]) -> dict[str, Any]:
        return await my_profile(actor)

    async with unit_of_work(actor, ctx) as uow:
        return await run_once(
            uow,
            guards.idempotency_key,
            "updateNotificationPreferences",
            prefs.to_dict(),
            change,
            keep=lambda _: {},
            replay=replay,
        )

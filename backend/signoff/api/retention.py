"""Retention policies, legal holds, and what retention did to an item."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from signoff.api import ids
from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.enums import described_enum
from signoff.api.errors import CodedError, UserError, user_error
from signoff.api.guards import GuardsInput, guards_field, key_guards
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.retention import LegalHoldRecord, RetentionAction
from signoff.domain.retention import RetentionPolicy as PolicyRecord
from signoff.services import items as item_services
from signoff.services import retention as retention_services

RetentionActionEnum = described_enum(
    RetentionAction,
    "What a retention policy does to the content of a decided item once it is due.",
    {
        RetentionAction.REDACT: "Every payload value is replaced by its sha256 digest (the keys "
        "stay); comment texts and evidence files are removed, their digests stay.",
        RetentionAction.PURGE: "The payload is emptied; comment texts and evidence files are "
        "removed, their digests stay.",
    },
    name="RetentionAction",
)


@strawberry.type(description="After `days` days, redact or purge the content of decided items.")
class RetentionPolicy:
    template_key: str | None = strawberry.field(
        description="The template it is for; null for the tenant's default."
    )
    days: int = strawberry.field(description="Days after an item's last change (1 to 36500).")
    action: RetentionAction = strawberry.field(description="What it does.")

    @classmethod
    def from_record(cls, policy: PolicyRecord) -> RetentionPolicy:
        """Map a policy."""
        return cls(template_key=policy.template_key or None, days=policy.days, action=policy.action)


@strawberry.type(description="An item retention must leave alone until the hold is released.")
class LegalHold:
    item_id: strawberry.ID = strawberry.field(description="Global id of the item.")
    reason: str = strawberry.field(description="Why it is held.")
    placed_by: str = strawberry.field(description="Who placed the hold.")
    placed_at: datetime = strawberry.field(description="When.")

    @classmethod
    def from_record(cls, hold: LegalHoldRecord) -> LegalHold:
        """Map a hold."""
        return cls(
            item_id=strawberry.ID(ids.encode("WorkflowItem", hold.item_id)),
            reason=hold.reason,
            placed_by=hold.placed_by,
            placed_at=hold.placed_at,
        )


@strawberry.type(description="What retention did to an item's content.")
class ItemRetention:
    action: RetentionAction = strawberry.field(description="Redacted or purged.")
    template_key: str | None = strawberry.field(
        description="The policy applied: its template, or null for the tenant's default."
    )
    days: int = strawberry.field(description="The policy's days.")
    payload_sha256: str = strawberry.field(
        description="sha256 of the canonical JSON of the payload that was removed (also in "
        "the `item.submitted` audit event)."
    )
    applied_at: datetime = strawberry.field(description="When.")


@strawberry.input(description="Create or replace a retention policy (administer_retention).")
class SetRetentionPolicyInput:
    days: int = strawberry.field(description="Days after an item's last change (1 to 36500).")
    action: RetentionAction = strawberry.field(description="What to do then.")
    template_key: str | None = strawberry.field(
        default=None, description="The template it is for; omitted: the tenant's default."
    )
    reason: str | None = strawberry.field(default=None, description="Why, for the audit trail.")
    guards: GuardsInput | None = guards_field(versioned=False)


@strawberry.input(description="Remove a retention policy (administer_retention).")
class RemoveRetentionPolicyInput:
    template_key: str | None = strawberry.field(
        default=None, description="The template's policy; omitted: the tenant's default."
    )
    reason: str | None = strawberry.field(default=None, description="Why, for the audit trail.")
    guards: GuardsInput | None = guards_field(versioned=False)


@strawberry.input(description="Place or release a legal hold on an item (legal hold roles).")
class LegalHoldInput:
    item_id: strawberry.ID = strawberry.field(description="Global id of the item.")
    reason: str = strawberry.field(description="Why (required; audited).")
    guards: GuardsInput | None = guards_field(versioned=False)


@strawberry.type(description="Result of setting or removing a retention policy.")
class RetentionPolicyPayload:
    policy: RetentionPolicy | None = strawberry.field(
        description="The policy set, or the one removed."
    )
    errors: list[UserError] = strawberry.field(description="Empty on success.")


@strawberry.type(description="Result of placing or releasing a legal hold.")
class LegalHoldPayload:
    hold: LegalHold | None = strawberry.field(description="The hold placed, or the one released.")
    errors: list[UserError] = strawberry.field(description="Empty on success.")


@strawberry.type
class RetentionQueries:
    @strawberry.field(description="The tenant's retention policies (administer_retention).")
    async def retention_policies(self, info: Info[SignoffContext, Any]) -> list[RetentionPolicy]:
        actor = actor_of(info)
        try:
            policies = await retention_services.list_policies(actor, services_of(info))
        except DomainError as exc:
            raise CodedError(exc) from None
        return [RetentionPolicy.from_record(p) for p in policies]

    @strawberry.field(
        description="The item's legal hold; null when there is none or the caller has no legal "
        "hold role."
    )
    async def legal_hold(
        self,
        info: Info[SignoffContext, Any],
        item_id: Annotated[strawberry.ID, strawberry.argument(description="The item.")],
    ) -> LegalHold | None:
        actor = actor_of(info)
        try:
            raw = ids.decode_uuid(item_id, "WorkflowItem", "itemId")
        except DomainError as exc:
            raise CodedError(exc) from None
        hold = await retention_services.hold_of(actor, services_of(info), raw)
        return LegalHold.from_record(hold) if hold else None

    @strawberry.field(
        description="What retention did to an item; null when nothing, or when the caller may "
        "not read the item."
    )
    async def item_retention(
        self,
        info: Info[SignoffContext, Any],
        item_id: Annotated[strawberry.ID, strawberry.argument(description="The item.")],
    ) -> ItemRetention | None:
        actor = actor_of(info)
        services = services_of(info)
        try:
            raw = ids.decode_uuid(item_id, "WorkflowItem", "itemId")
            await item_services.get_item(actor, services, raw)
        except DomainError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                return None
            raise CodedError(exc) from None
        done = await retention_services.retention_of(actor, services, raw)
        if done is None:
            return None
        return ItemRetention(
            action=done.action,
            template_key=done.policy_key or None,
            days=done.days,
            payload_sha256=done.payload_sha256,
            applied_at=done.applied_at,
        )


@strawberry.type
class RetentionMutations:
    @strawberry.mutation(
        description="Create or replace a retention policy (administer_retention; audited)."
    )
    async def set_retention_policy(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[SetRetentionPolicyInput, strawberry.argument(description="The policy.")],
    ) -> RetentionPolicyPayload:
        actor = actor_of(info)
        try:
            policy = await retention_services.set_policy(
                actor,
                services_of(info),
                retention_services.SetPolicyInput(
                    days=input.days,
                    action=RetentionAction(input.action).value,
                    template_key=input.template_key,
                    reason=input.reason,
                ),
                key_guards(input.guards),
            )
        except DomainError as exc:
            return RetentionPolicyPayload(policy=None, errors=[user_error(exc)])
        return RetentionPolicyPayload(policy=RetentionPolicy.from_record(policy), errors=[])

    @strawberry.mutation(description="Remove a retention policy (administer_retention; audited).")
    async def remove_retention_policy(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            RemoveRetentionPolicyInput, strawberry.argument(description="Which policy.")
        ],
    ) -> RetentionPolicyPayload:
        actor = actor_of(info)
        try:
            policy = await retention_services.remove_policy(
                actor,
                services_of(info),
                input.template_key,
                input.reason,
                key_guards(input.guards),
            )
        except DomainError as exc:
            return RetentionPolicyPayload(policy=None, errors=[user_error(exc)])
        return RetentionPolicyPayload(policy=RetentionPolicy.from_record(policy), errors=[])

    @strawberry.mutation(
        description="Put an item on legal hold: retention leaves it alone (legal hold roles)."
    )
    async def place_legal_hold(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[LegalHoldInput, strawberry.argument(description="The hold.")],
    ) -> LegalHoldPayload:
        return await _hold(info, input, retention_services.place_hold)

    @strawberry.mutation(description="Release an item's legal hold (legal hold roles).")
    async def release_legal_hold(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[LegalHoldInput, strawberry.argument(description="The hold.")],
    ) -> LegalHoldPayload:
        return await _hold(info, input, retention_services.release_hold)


async def _hold(
    info: Info[SignoffContext, Any], input: LegalHoldInput, call: Any
) -> LegalHoldPayload:
    actor = actor_of(info)
    try:
        raw = ids.decode_uuid(input.item_id, "WorkflowItem", "itemId")
        hold = await call(
            actor,
            services_of(info),
            retention_services.HoldInput(
                raw, input.reason, key_guards(input.guards).idempotency_key
            ),
        )
    except DomainError as exc:
        return LegalHoldPayload(hold=None, errors=[user_error(exc)])
    return LegalHoldPayload(hold=LegalHold.from_record(hold), errors=[])

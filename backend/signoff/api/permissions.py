"""The permission table through GraphQL: who holds what, and setting it (administrators of
permissions; audited)."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.enums import described_enum
from signoff.api.errors import CodedError, UserError, user_error
from signoff.api.guards import GuardsInput, guards_field, key_guards
from signoff.domain.errors import DomainError
from signoff.domain.permissions import SPECS, Permission, Source
from signoff.services import permissions as permission_services

PermissionEnum = described_enum(
    Permission,
    "Something a role may be allowed to do; see docs/reference/permissions.md.",
    {s.permission: s.summary for s in SPECS},
    name="Permission",
)
PermissionSourceEnum = described_enum(
    Source,
    "Where a permission's grantees come from.",
    {
        Source.DEFAULT: "The deployment's default (its role settings): nothing was set.",
        Source.TENANT: "The tenant's grant.",
        Source.TEMPLATE: "The template's grant, which replaces the tenant's for its items.",
    },
    name="PermissionSource",
)


@strawberry.type(description="One permission and who holds it.")
class PermissionGrant:
    permission: Permission = strawberry.field(description="The permission.")
    grantees: list[str] = strawberry.field(
        description="Role names, `*` (every user of the tenant) or `@requester` (the item's "
        "requester); empty: nobody."
    )
    source: Source = strawberry.field(description="Where the grantees come from.")
    template_key: str | None = strawberry.field(
        description="The template the grantees apply to; null for the whole tenant."
    )
    per_template: bool = strawberry.field(
        description="Whether the permission may be set per template."
    )

    @classmethod
    def from_entry(cls, entry: permission_services.PermissionEntry) -> PermissionGrant:
        """Map an entry of the table."""
        return cls(
            permission=entry.permission,
            grantees=sorted(entry.grantees),
            source=entry.source,
            template_key=entry.template_key,
            per_template=entry.per_template,
        )


@strawberry.input(description="Grant a permission (administer_permissions).")
class SetPermissionInput:
    permission: Permission = strawberry.field(description="The permission.")
    grantees: list[str] | None = strawberry.field(
        description="Who holds it from now on: role names, `*`, `@requester` (item "
        "permissions); empty grants it to nobody; null removes the grant set here, so the "
        "tenant's grant (for a template) or the default (for the tenant) applies again."
    )
    template_key: str | None = strawberry.field(
        default=None,
        description="Only for this template's items (item permissions); omitted: the tenant.",
    )
    reason: str | None = strawberry.field(default=None, description="Why, for the audit trail.")
    guards: GuardsInput | None = guards_field(versioned=False)


@strawberry.type(description="Result of setPermission.")
class SetPermissionPayload:
    grant: PermissionGrant | None = strawberry.field(
        description="The permission as it applies afterwards."
    )
    errors: list[UserError] = strawberry.field(description="Empty on success.")


@strawberry.type
class PermissionQueries:
    @strawberry.field(
        description="Every permission and who holds it in the caller's tenant; with a template "
        "key, as it applies to that template's items (administer_permissions)."
    )
    async def permissions(
        self,
        info: Info[SignoffContext, Any],
        template_key: Annotated[
            str | None, strawberry.argument(description="A template's key.")
        ] = None,
    ) -> list[PermissionGrant]:
        try:
            entries = await permission_services.permission_table(
                actor_of(info), services_of(info), template_key
            )
        except DomainError as exc:
            raise CodedError(exc) from None
        return [PermissionGrant.from_entry(e) for e in entries]


@strawberry.type
class PermissionMutations:
    @strawberry.mutation(
        description="Grant a permission to roles, for the tenant or one template's items "
        "(administer_permissions; audited as `permission.set`)."
    )
    async def set_permission(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[SetPermissionInput, strawberry.argument(description="The grant.")],
    ) -> SetPermissionPayload:
        try:
            entry = await permission_services.set_permission(
                actor_of(info),
                services_of(info),
                permission_services.SetPermissionInput(
                    permission=Permission(input.permission),
                    grantees=None if input.grantees is None else tuple(input.grantees),
                    template_key=input.template_key,
                    reason=input.reason,
                    idempotency_key=key_guards(input.guards).idempotency_key,
                ),
            )
        except DomainError as exc:
            return SetPermissionPayload(grant=None, errors=[user_error(exc)])
        return SetPermissionPayload(grant=PermissionGrant.from_entry(entry), errors=[])

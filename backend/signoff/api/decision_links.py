"""Decide from a link: the preview a confirmation page shows, and the confirmation.

Both are usable without a bearer token: the link's token is the credential (and the
person it names is the one who decides). Requests without a bearer token are charged to
the caller's address in the cost budget, like every anonymous request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from signoff.api import ids
from signoff.api.context import SignoffContext, request_meta, services_of
from signoff.api.errors import CodedError, UserError, user_error
from signoff.api.mutations.actions import GuardsInput
from signoff.domain.errors import DomainError
from signoff.domain.events import DecisionChoice
from signoff.domain.states import ItemState, StepState
from signoff.services import decision_links
from signoff.services.actions import Guards


@strawberry.type(description="What a decision link would decide, for whom, and whether it can.")
class DecisionLinkPreview:
    item_id: strawberry.ID = strawberry.field(description="Global id of the item.")
    item_title: str = strawberry.field(description="The item's title.")
    item_state: ItemState = strawberry.field(description="The item's state now.")
    step_id: strawberry.ID = strawberry.field(description="Global id of the step.")
    step_key: str = strawberry.field(description="The step's key in its template.")
    step_name: str = strawberry.field(description="The step's name.")
    step_state: StepState = strawberry.field(description="The step's state now.")
    outcome: DecisionChoice = strawberry.field(description="What confirming decides.")
    recipient_id: str = strawberry.field(description="The person the link was made for.")
    recipient_name: str | None = strawberry.field(
        description="Their display name, when the user directory has one."
    )
    expires_at: datetime = strawberry.field(description="When the link stops working.")
    expired: bool = strawberry.field(description="Whether it has expired.")
    used: bool = strawberry.field(
        description="Whether it (or its sibling with the other outcome) already decided."
    )
    used_at: datetime | None = strawberry.field(description="When it was used.")
    usable: bool = strawberry.field(
        description="Whether confirming can decide now: not expired, not used, the step "
        "still open. (The rules are checked again on confirmation.)"
    )
    reason_required: bool = strawberry.field(
        description="Whether confirming needs a reason (a rejection, or a step that asks for "
        "a justification)."
    )

    @classmethod
    def from_preview(cls, p: decision_links.LinkPreview) -> DecisionLinkPreview:
        """The GraphQL view of a preview."""
        return cls(
            item_id=strawberry.ID(ids.encode("WorkflowItem", p.item.id)),
            item_title=p.item.item.title,
            item_state=p.item.state,
            step_id=strawberry.ID(ids.encode("Step", p.step.id)),
            step_key=p.step.key,
            step_name=p.step.name,
            step_state=p.step.state,
            outcome=p.link.outcome,
            recipient_id=p.link.user_id,
            recipient_name=p.display_name or None,
            expires_at=p.link.expires_at,
            expired=p.expired,
            used=p.used_at is not None,
            used_at=p.used_at,
            usable=p.usable,
            reason_required=p.reason_required,
        )


@strawberry.input(description="Confirm a decision link: decide as it says.")
class ConfirmDecisionLinkInput:
    token: str = strawberry.field(description="The token of the link.")
    reason: str | None = strawberry.field(
        default=None, description="Why; required to reject and where the step asks for it."
    )
    guards: GuardsInput | None = strawberry.field(default=None, description="Guards.")


@strawberry.type(description="Result of confirming a decision link.")
class ConfirmDecisionLinkPayload:
    item_id: strawberry.ID | None = strawberry.field(description="Global id of the item.")
    item_state: ItemState | None = strawberry.field(description="The item's state after it.")
    step_state: StepState | None = strawberry.field(description="The step's state after it.")
    errors: list[UserError] = strawberry.field(
        description="Why nothing was decided (LINK_INVALID, LINK_EXPIRED, LINK_USED, "
        "FORBIDDEN, ...); empty on success."
    )


@strawberry.type
class DecisionLinkQueries:
    @strawberry.field(
        description="What a decision link would decide; decides nothing. No bearer token "
        "needed: the link's token is the credential. Errors: LINK_INVALID, FORBIDDEN (its "
        "recipient may no longer see the item)."
    )
    async def decision_link(
        self,
        info: Info[SignoffContext, Any],
        token: Annotated[str, strawberry.argument(description="The token of the link.")],
    ) -> DecisionLinkPreview:
        try:
            found = await decision_links.preview(
                services_of(info), token, request_meta(info.context)
            )
        except DomainError as exc:
            raise CodedError(exc) from None
        return DecisionLinkPreview.from_preview(found)


@strawberry.type
class DecisionLinkMutations:
    @strawberry.mutation(
        description="Decide as a decision link says, as the person it was made for, through "
        "the same rules, idempotency and audit as `approveStep`/`rejectStep`. Single use; no "
        "bearer token needed."
    )
    async def confirm_decision_link(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            ConfirmDecisionLinkInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> ConfirmDecisionLinkPayload:
        g = input.guards or GuardsInput()
        try:
            view, step = await decision_links.confirm(
                services_of(info),
                input.token,
                input.reason,
                Guards(g.idempotency_key, g.expected_version),
                request_meta(info.context),
            )
        except DomainError as exc:
            return ConfirmDecisionLinkPayload(
                item_id=None, item_state=None, step_state=None, errors=[user_error(exc)]
            )
        return ConfirmDecisionLinkPayload(
            item_id=strawberry.ID(ids.encode("WorkflowItem", view.id)),
            item_state=view.state,
            step_state=step.state,
            errors=[],
        )

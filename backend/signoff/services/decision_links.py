"""Decision links: a signed, single-use, expiring link in a notification that lets its
recipient approve or reject one step after confirming on a page (a GET never decides).

A link is a token signed with the URL key (`services/links.py`, never the bearer key) naming
the tenant, the person it was minted for, the item, the step, the outcome, a link id and the
expiry. Nothing is stored when it is minted; using it inserts the link id into
`decision_link_use` in the same transaction as the decision, so a link decides at most once
(concurrent uses: the second waits on the first's row and finds it taken). The approve and
reject links of one message share their link id: using one uses both. The decision itself is
`items.decide_step`, made as the person the link names with the roles and groups their
profile gives them now, so a link whose recipient lost access is refused like any vote.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from signoff.db import decision_links as links_repo
from signoff.db import notifications as profile_repo
from signoff.domain.actors import Actor, Principal, RequestMeta
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.events import DecisionChoice
from signoff.domain.records import Step
from signoff.domain.review_rules import needs_reason
from signoff.domain.states import StepState
from signoff.domain.templates import StepKind
from signoff.services import items as item_services
from signoff.services import links, scopes
from signoff.services.actions import Guards
from signoff.services.context import ServiceContext
from signoff.services.engine import ItemView, load_view
from signoff.services.uow import remember_result, replayed_result, unit_of_work

AUDIENCE = "signoff:decision-link"
LINKED_KINDS = frozenset({"assignment", "escalation", "reminder", "deadline_risk"})
"""Notifications that ask their recipient to decide a step: the ones that carry links."""
_NAMESPACE = uuid.UUID("5a1d3c52-8d4e-4c1b-9a53-7f1de6a0c0de")


@dataclass(frozen=True)
class DecisionLink:
    """What a link token says."""

    link_id: UUID
    tenant_id: str
    user_id: str
    item_id: UUID
    step_id: UUID
    outcome: DecisionChoice
    expires_at: datetime


@dataclass(frozen=True)
class LinkPreview:
    """What the confirmation page shows before anything is decided."""

    link: DecisionLink
    display_name: str
    item: ItemView
    step: Step
    expired: bool
    used_at: datetime | None

    @property
    def usable(self) -> bool:
        """Whether confirming could decide now (the rules are checked again then)."""
        return not self.expired and self.used_at is None and self.step.state is StepState.ACTIVE

    @property
    def reason_required(self) -> bool:
        """Whether confirming needs a reason: the rule every vote follows."""
        return needs_reason(self.link.outcome.vote, self.item.definition.step(self.step.key))


def link_id_for(delivery_key: str) -> UUID:
    """The link id of the links in one delivery (stable across its retries)."""
    return uuid.uuid5(_NAMESPACE, delivery_key)


def mint(ctx: ServiceContext, link: DecisionLink) -> str:
    """The token of `link`."""
    claims = {
        "sub": link.user_id,
        "ten": link.tenant_id,
        "itm": str(link.item_id),
        "stp": str(link.step_id),
        "out": link.outcome.value,
        "lid": str(link.link_id),
    }
    return links.sign(ctx, AUDIENCE, claims, link.expires_at)


def read(ctx: ServiceContext, token: str) -> tuple[DecisionLink, bool]:
    """The link a token carries and whether it has expired; LINK_INVALID when the token is
    not one this deployment signed (tampered, truncated, a bearer token, another key)."""
    try:
        claims, expired = links.verify(
            ctx, token, AUDIENCE, ("sub", "ten", "itm", "stp", "out", "lid")
        )
        link = DecisionLink(
            link_id=UUID(str(claims["lid"])),
            tenant_id=str(claims["ten"]),
            user_id=str(claims["sub"]),
            item_id=UUID(str(claims["itm"])),
            step_id=UUID(str(claims["stp"])),
            outcome=DecisionChoice(str(claims["out"])),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
    except (links.LinkRefused, ValueError, TypeError, KeyError):
        raise invalid_link() from None
    return link, expired


def invalid_link() -> DomainError:
    """The refusal of a token that is not a decision link of this deployment."""
    return DomainError(ErrorCode.LINK_INVALID, "this decision link is not valid", "token")


def links_for_delivery(ctx: ServiceContext, row: Mapping[str, Any]) -> dict[str, str]:
    """The decision links (outcome → URL) a delivery's message carries for its recipient:
    none unless its channel is enabled for links, it asks the recipient to decide, and its
    step is an approval step. Deterministic, so a retried delivery sends the same links."""
    payload = row["payload"]
    settings = ctx.settings
    if (
        row["channel"] not in settings.decision_link_channels
        or row["event_kind"] not in LINKED_KINDS
        or payload.get("step_kind") != StepKind.APPROVAL.value
        or not payload.get("step_id")
    ):
        return {}
    created: datetime = row["created_at"]
    expires = created + timedelta(seconds=settings.decision_link_ttl_seconds)
    base = settings.effective_decision_link_base_url
    out = {}
    for outcome in DecisionChoice:
        link = DecisionLink(
            link_id=link_id_for(str(row["idempotency_key"])),
            tenant_id=str(row["tenant_id"]),
            user_id=str(row["recipient_id"]),
            item_id=UUID(str(payload["item_id"])),
            step_id=UUID(str(payload["step_id"])),
            outcome=outcome,
            expires_at=expires,
        )
        out[outcome.value] = base + mint(ctx, link)
    return out


async def _actor(link: DecisionLink, meta: RequestMeta | None) -> tuple[Actor, str]:
    """The person a link was minted for, with the roles and groups their profile gives them
    now (none without a profile: a step naming them as a user still counts them); and their
    display name."""
    with scopes.for_tenant(link.tenant_id):
        profile = await profile_repo.get_profile(link.tenant_id, link.user_id) or {}
    principal = Principal(
        link.user_id,
        link.tenant_id,
        roles=frozenset(profile.get("roles") or ()),
        groups=frozenset(profile.get("groups") or ()),
    )
    return Actor(principal, meta or RequestMeta()), str(profile.get("display_name") or "")


async def preview(ctx: ServiceContext, token: str, meta: RequestMeta | None = None) -> LinkPreview:
    """What a link would decide, for whom, and whether it still can; decides nothing. A
    recipient who may no longer read the item gets FORBIDDEN."""
    link, expired = read(ctx, token)
    actor, display_name = await _actor(link, meta)
    with scopes.acting_as(actor):
        try:
            view = await item_services.get_item(actor, ctx, link.item_id)
        except DomainError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                raise DomainError(
                    ErrorCode.FORBIDDEN, "the person this link is for may no longer see the item"
                ) from None
            raise
        used = await links_repo.use_of(link.tenant_id, link.link_id)
    return LinkPreview(
        link=link,
        display_name=display_name,
        item=view,
        step=view.step(link.step_id),
        expired=expired,
        used_at=used["used_at"] if used else None,
    )


async def confirm(
    ctx: ServiceContext,
    token: str,
    reason: str | None,
    guards: Guards,
    meta: RequestMeta | None = None,
) -> tuple[ItemView, Step]:
    """Decide as the link says, once; the item after it, and the step. The decision is
    `items.decide_step` as the person the link names (their access checked again); the
    link's use and a `decision_link.used` audit event commit with it. LINK_EXPIRED after its
    expiry, LINK_USED once it (or its sibling) decided; a refused decision leaves the link
    unused. Replays with the same idempotency key return the first result."""
    link, expired = read(ctx, token)
    if expired:
        raise DomainError(ErrorCode.LINK_EXPIRED, "this decision link has expired", "token")
    actor, _ = await _actor(link, meta)
    with scopes.acting_as(actor):
        async with unit_of_work(actor, ctx) as uow:
            fingerprint = {
                "link": str(link.link_id),
                "outcome": link.outcome.value,
                "reason": reason,
            }
            replay = await replayed_result(
                uow, guards.idempotency_key, "confirmDecisionLink", fingerprint
            )
            if replay is not None:
                view = await load_view(actor, ctx, UUID(replay["item_id"]))
                return view, view.step(link.step_id)
            fresh = await links_repo.claim_use(
                link.tenant_id,
                link.link_id,
                link.step_id,
                link.user_id,
                link.outcome.value,
                ctx.clock.now(),
            )
            if not fresh:
                raise DomainError(
                    ErrorCode.LINK_USED, "this decision link was already used", "token"
                )
            view = await item_services.decide_step(
                actor,
                ctx,
                item_services.DecideStepInput(
                    step_id=link.step_id,
                    outcome=link.outcome.vote,
                    reason=reason,
                    expected_version=guards.expected_version,
                ),
            )
            uow.record(
                "decision_link.used",
                item_id=view.id,
                step_id=link.step_id,
                data={"link_id": str(link.link_id), "outcome": link.outcome.value},
            )
            await remember_result(uow, guards.idempotency_key, {"item_id": str(view.id)})
            return view, view.step(link.step_id)

"""GraphQL of incident reviews: opening one from a trace or a decided item, what it reviews,
and precedent."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from signoff.api import ids
from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.enums import described_enum
from signoff.api.errors import CodedError
from signoff.api.evidence import Evidence
from signoff.api.guards import GuardsInput, guards_field, key_guards, versioned_guards
from signoff.api.mutations.common import ItemPayload, item_payload
from signoff.api.paging import (
    After,
    Before,
    Connection,
    First,
    KeysetOrder,
    Last,
    connection,
    page_args,
    timestamp,
    uuid_part,
)
from signoff.api.types import Decision, WorkflowItem
from signoff.db.incidents import IncidentReviewRecord
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.templates import RiskLevel
from signoff.services import evidence as evidence_services
from signoff.services import incidents as incident_services
from signoff.services.engine import ItemView
from signoff.services.incidents import Precedent


class PrecedentMatch(StrEnum):
    """Why an earlier item is precedent."""

    TEMPLATE = "template"
    SUBJECT = "subject"


PrecedentMatchEnum = described_enum(
    PrecedentMatch,
    "Why an earlier item is shown as precedent.",
    {
        PrecedentMatch.TEMPLATE: "It went through the same template (for a review that "
        "reopened an item: that item's template).",
        PrecedentMatch.SUBJECT: "It is about the same subject: the same external reference, "
        "or an incident review of the same subject.",
    },
)


class SourceKind(StrEnum):
    """What an incident review was opened from."""

    TRACE = "trace"
    DECISION = "decision"
    ITEM = "item"


SourceKindEnum = described_enum(
    SourceKind,
    "What an incident review was opened from.",
    {
        SourceKind.TRACE: "An external trace id.",
        SourceKind.DECISION: "An external decision id (e.g. an agent's or a policy engine's).",
        SourceKind.ITEM: "A decided item of signoff, reopened.",
    },
    name="IncidentSourceKind",
)


@strawberry.type(description="An earlier decided item like this one, and how it was decided.")
class PrecedentEntry:
    item: WorkflowItem = strawberry.field(description="The earlier item, as it is now.")
    matched_by: list[PrecedentMatch] = strawberry.field(description="Why it is precedent.")
    decisions: list[Decision] = strawberry.field(
        description="Its decisions with their reasons, oldest first."
    )


@strawberry.type(description="What an incident review is about.")
class IncidentReview:
    item: WorkflowItem = strawberry.field(description="The review itself (an item).")
    source_ref: str = strawberry.field(
        description="The trace or decision id it was opened from (`item:<uuid>` for a "
        "reopened item)."
    )
    source_kind: SourceKind = strawberry.field(description="What it was opened from.")
    subject: str | None = strawberry.field(description="What precedent is matched on.")
    created_at: datetime = strawberry.field(description="When it was opened.")
    raw: strawberry.Private[IncidentReviewRecord]

    @strawberry.field(
        description="The decided item it reopened (null when opened from a trace or decision, "
        "or when the caller may not read that item). Its full history is in `auditEvents`."
    )
    async def reviewed_item(self, info: Info[SignoffContext, Any]) -> WorkflowItem | None:
        if self.raw.reviewed_item_id is None:
            return None
        try:
            view = await incident_services.item_services.get_item(
                actor_of(info), services_of(info), self.raw.reviewed_item_id
            )
        except DomainError:
            return None
        return WorkflowItem.from_view(view)

    @strawberry.field(description="The snapshot attached when it was opened, if any.")
    async def snapshot(self, info: Info[SignoffContext, Any]) -> Evidence | None:
        if self.raw.snapshot_evidence_id is None:
            return None
        try:
            record = await evidence_services.get_evidence(
                actor_of(info), services_of(info), self.raw.snapshot_evidence_id
            )
        except DomainError:
            return None
        return Evidence.from_record(record)


MAX_PRECEDENT_PAGE = 50
DEFAULT_PRECEDENT_PAGE = 10
PRECEDENT_ORDER: KeysetOrder[Precedent] = KeysetOrder(
    "Precedent", (timestamp, uuid_part), lambda e: (e.view.item.created_at, e.view.id)
)
"""Precedent's cursors: the key of `db.incidents.PRECEDENT_KEY` (submission time, item id)."""


def _precedent_entry(entry: Precedent) -> PrecedentEntry:
    return PrecedentEntry(
        item=WorkflowItem.from_view(entry.view),
        matched_by=[
            m
            for m, on in (
                (PrecedentMatch.TEMPLATE, entry.same_template),
                (PrecedentMatch.SUBJECT, entry.same_subject),
            )
            if on
        ],
        decisions=[Decision.from_record(d) for d in entry.decisions],
    )


def _review(view: ItemView, record: IncidentReviewRecord) -> IncidentReview:
    return IncidentReview(
        item=WorkflowItem.from_view(view),
        source_ref=record.source_ref,
        source_kind=SourceKind(record.source_kind),
        subject=record.subject,
        created_at=record.created_at,
        raw=record,
    )


@strawberry.input(description="Open an incident review of an external trace or decision.")
class OpenIncidentReviewInput:
    source_ref: str = strawberry.field(
        description="The trace or decision id, up to 500 characters."
    )
    title: str = strawberry.field(description="Short title shown in inboxes.")
    source_kind: SourceKind = strawberry.field(
        default=SourceKind.TRACE, description="`TRACE` or `DECISION`."
    )
    subject: str | None = strawberry.field(
        default=None,
        description="What the incident is about (a system, an agent, a policy), for precedent.",
    )
    summary: str | None = strawberry.field(default=None, description="What happened.")
    severity: RiskLevel | None = strawberry.field(
        default=None, description="How severe the incident is."
    )
    snapshot: JSON | None = strawberry.field(
        default=None,
        description="The payload as it was (any JSON), attached to the review as evidence.",
    )
    template_key: str = strawberry.field(
        default=incident_services.DEFAULT_TEMPLATE,
        description="A published incident_review template.",
    )
    guards: GuardsInput | None = guards_field(versioned=False)


@strawberry.input(description="Reopen a decided item as an incident review.")
class ReopenAsIncidentReviewInput:
    item_id: strawberry.ID = strawberry.field(description="The decided item.")
    title: str | None = strawberry.field(
        default=None, description="Title of the review (default: `Review: <item title>`)."
    )
    summary: str | None = strawberry.field(default=None, description="Why it is reviewed.")
    severity: RiskLevel | None = strawberry.field(
        default=None, description="How severe the incident is."
    )
    template_key: str = strawberry.field(
        default=incident_services.DEFAULT_TEMPLATE,
        description="A published incident_review template.",
    )
    guards: GuardsInput | None = guards_field(versioned=True)


@strawberry.type
class IncidentQueries:
    @strawberry.field(
        description="What an item reviews, when it is an incident review; null otherwise, or "
        "when absent or not visible."
    )
    async def incident_review(
        self,
        info: Info[SignoffContext, Any],
        item_id: Annotated[strawberry.ID, strawberry.argument(description="The item.")],
    ) -> IncidentReview | None:
        actor = actor_of(info)
        services = services_of(info)
        try:
            raw_id = ids.decode_uuid(item_id, "WorkflowItem", "itemId")
            record = await incident_services.get_review(actor, services, raw_id)
            if record is None:
                return None
            view = await incident_services.item_services.get_item(actor, services, raw_id)
        except DomainError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                return None
            raise CodedError(exc) from None
        return _review(view, record)

    @strawberry.field(description="Incident reviews that reopened an item (those visible).")
    async def incident_reviews_of(
        self,
        info: Info[SignoffContext, Any],
        item_id: Annotated[strawberry.ID, strawberry.argument(description="The item.")],
    ) -> list[WorkflowItem]:
        try:
            views = await incident_services.reviews_of(
                actor_of(info),
                services_of(info),
                ids.decode_uuid(item_id, "WorkflowItem", "itemId"),
            )
        except DomainError as exc:
            raise CodedError(exc) from None
        return [WorkflowItem.from_view(v) for v in views]

    @strawberry.field(
        description="Earlier decided items like this one, newest first, with how they were "
        "decided and why: same template or same subject. Only items the caller may read. "
        f"Pages of up to {MAX_PRECEDENT_PAGE} (default {DEFAULT_PRECEDENT_PAGE})."
    )
    async def precedent(
        self,
        info: Info[SignoffContext, Any],
        item_id: Annotated[strawberry.ID, strawberry.argument(description="The item.")],
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[PrecedentEntry]:
        try:
            page = page_args(first, after, last, before, MAX_PRECEDENT_PAGE, DEFAULT_PRECEDENT_PAGE)
            entries = await incident_services.precedent(
                actor_of(info),
                services_of(info),
                ids.decode_uuid(item_id, "WorkflowItem", "itemId"),
                PRECEDENT_ORDER.window(page),
            )
        except DomainError as exc:
            raise CodedError(exc) from None
        return connection(page, PRECEDENT_ORDER, entries, _precedent_entry)


@strawberry.type
class IncidentMutations:
    @strawberry.mutation(
        description="Open an incident review from an external trace or decision id; the "
        "snapshot, when given, is attached as evidence."
    )
    async def open_incident_review(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            OpenIncidentReviewInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> ItemPayload:
        actor = actor_of(info)

        async def call() -> ItemView:
            guards = key_guards(input.guards)
            return await incident_services.open_incident_review(
                actor,
                services_of(info),
                incident_services.OpenReviewInput(
                    source_ref=input.source_ref,
                    title=input.title,
                    source_kind=input.source_kind.value,
                    subject=input.subject,
                    summary=input.summary,
                    severity=input.severity.value if input.severity else None,
                    snapshot=input.snapshot,
                    template_key=input.template_key,
                    idempotency_key=guards.idempotency_key,
                ),
            )

        return await item_payload(call)

    @strawberry.mutation(
        description="Reopen a decided item as an incident review, its whole history linked "
        "and attached as a snapshot."
    )
    async def reopen_as_incident_review(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            ReopenAsIncidentReviewInput,
            strawberry.argument(description="The input of the mutation."),
        ],
    ) -> ItemPayload:
        actor = actor_of(info)

        async def call() -> ItemView:
            guards = versioned_guards(input.guards)
            return await incident_services.reopen_as_incident_review(
                actor,
                services_of(info),
                incident_services.ReopenInput(
                    item_id=ids.decode_uuid(input.item_id, "WorkflowItem", "itemId"),
                    title=input.title,
                    summary=input.summary,
                    severity=input.severity.value if input.severity else None,
                    template_key=input.template_key,
                    expected_version=guards.expected_version,
                    idempotency_key=guards.idempotency_key,
                ),
            )

        return await item_payload(call)

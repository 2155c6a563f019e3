"""GraphQL object types. They map rows and views; they hold no business rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from signoff.api import ids
from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.enums import (
    HoldOptionEnum,
    ImpactOutcome,
    ItemKindEnum,
    ItemStateEnum,
    RiskLevelEnum,
    SeatVoteEnum,
    StepKindEnum,
    StepStateEnum,
)
from signoff.api.errors import CodedError
from signoff.api.loaders import loaders_of
from signoff.api.node import Node, Person, person
from signoff.api.paging import (
    After,
    Before,
    Connection,
    First,
    KeysetOrder,
    Last,
    bigint,
    connection,
    page_args,
)
from signoff.api.template_types import Template, TemplateField
from signoff.domain import diagram_svg, progression, records
from signoff.domain.calendar import WALL_CLOCK
from signoff.domain.diagram_svg import DiagramFormat
from signoff.domain.errors import DomainError
from signoff.domain.records import DecisionOutcome, SeatVote
from signoff.domain.redaction import Redactor, redactor_for
from signoff.domain.snapshot import HoldOption
from signoff.domain.states import ItemState, StepState
from signoff.domain.templates import (
    DependencyEffect,
    QuorumMode,
    Resolution,
    RiskLevel,
    StepKind,
    TemplateDefinition,
    TemplateKind,
)
from signoff.services import audit as audit_services
from signoff.services.engine import ItemView

__all__ = [
    "HoldOptionEnum",
    "ItemKindEnum",
    "ItemStateEnum",
    "Node",
    "Person",
    "RiskLevelEnum",
    "SeatVoteEnum",
    "StepKindEnum",
    "StepStateEnum",
    "Template",
    "TemplateField",
    "person",
]

MAX_AUDIT_PAGE = 500
DEFAULT_AUDIT_PAGE = 100
AUDIT_ORDER: KeysetOrder[dict[str, Any]] = KeysetOrder(
    "AuditEvent", (bigint,), lambda row: (row["seq"],)
)


@strawberry.type(description="Who may act on a step: named users, groups and roles.")
class Assignees:
    users: list[str] = strawberry.field(description="User ids.")
    groups: list[str] = strawberry.field(description="Group names.")
    roles: list[str] = strawberry.field(description="Role names.")


@strawberry.type(description="How many approvals a step needs.")
class Quorum:
    mode: QuorumMode = strawberry.field(description="How approvals are counted.")
    n: int | None = strawberry.field(description="Approvals needed for `n_of_m`.")


@strawberry.type(description="One person's (or a policy's) decision on a step.")
class Decision:
    actor_id: str = strawberry.field(description="Who decided (`system` for policies).")
    acting_for: str | None = strawberry.field(description="Whom a delegate acted for.")
    outcome: DecisionOutcome = strawberry.field(description="What was decided.")
    reason: str | None = strawberry.field(description="The reason given.")
    rule: str | None = strawberry.field(description="The policy rule that decided, if any.")
    revision: int = strawberry.field(description="Item revision the decision belongs to.")
    created_at: datetime = strawberry.field(description="When it was made.")

    @strawberry.field(description="Who decided, with their display name.")
    async def actor(self, info: Info[SignoffContext, Any]) -> Person:
        return await person(info, self.actor_id)

    @classmethod
    def from_record(cls, decision: records.Decision) -> Decision:
        """Map a decision record."""
        return cls(
            actor_id=decision.actor_id,
            acting_for=decision.acting_for,
            outcome=decision.outcome,
            reason=decision.reason,
            rule=decision.rule,
            revision=decision.revision,
            created_at=decision.created_at,
        )


@strawberry.type(description="How a change to one step would affect a dependent step.")
class DependencyImpact:
    step: str = strawberry.field(description="The dependent step's key.")
    effect: DependencyEffect = strawberry.field(description="How much it needs the upstream.")
    resolution: Resolution = strawberry.field(
        description="What the template says happens when the upstream does not succeed."
    )
    outcome: ImpactOutcome = strawberry.field(description="What would happen to it.")
    fallback: JSON | None = strawberry.field(description="The fallback value that would be used.")
    via: str = strawberry.field(description="The step whose change propagates.")

    @classmethod
    def from_impact(cls, impact: progression.Impact) -> DependencyImpact:
        """Map a domain impact."""
        return cls(
            step=impact.step,
            effect=impact.effect,
            resolution=impact.resolution,
            outcome=ImpactOutcome(impact.outcome),
            fallback=impact.fallback,
            via=impact.via,
        )


@strawberry.type(description="One parameter changed by a reviewer.")
class ParamChange:
    key: str = strawberry.field(description="Parameter name.")
    before: JSON | None = strawberry.field(description="Submitted value (null if added).")
    after: JSON | None = strawberry.field(description="Current value (null if removed).")


def _json(document: Mapping[str, Any] | None) -> JSON | None:
    return JSON(dict(document)) if document is not None else None


def params_diff(
    original: Mapping[str, Any] | None, current: Mapping[str, Any]
) -> list[ParamChange]:
    """The changed parameters, by name."""
    if original is None:
        return []
    keys = sorted(set(original) | set(current))
    return [
        ParamChange(key=k, before=original.get(k), after=current.get(k))
        for k in keys
        if original.get(k) != current.get(k)
    ]


@strawberry.type(description="One seat of a step's quorum, fixed when the step activates.")
class Seat:
    holder: str | None = strawberry.field(
        description="The person holding it; null while it is open to a group or role."
    )
    group: str | None = strawberry.field(description="The group whose members may fill it.")
    role: str | None = strawberry.field(description="The role whose holders may fill it.")
    delegate: str | None = strawberry.field(description="Who may fill it for its holder.")
    vote: SeatVote | None = strawberry.field(description="The vote that filled it, if any.")
    filled_by: str | None = strawberry.field(description="Who filled it.")
    acting_for: str | None = strawberry.field(description="Whom a delegate filled it for.")

    @classmethod
    def from_record(cls, seat: records.Seat) -> Seat:
        """Map a seat."""
        return cls(
            holder=seat.holder,
            group=seat.group,
            role=seat.role,
            delegate=seat.delegate,
            vote=seat.vote,
            filled_by=seat.filled_by,
            acting_for=seat.acting_for,
        )


@strawberry.type(description="Why a step is held for a person, and what may be done about it.")
class StepHold:
    upstreams: list[str] = strawberry.field(
        description="Keys of the upstream steps that did not succeed."
    )
    since: datetime = strawberry.field(description="When the step was held.")
    options: list[HoldOption] = strawberry.field(
        description="What the requester (or a holder of manage_items) may choose with "
        "`resolveHeldStep`."
    )


@strawberry.type(description="One step of an item, with its own state machine.")
class Step(Node):
    id: strawberry.ID = strawberry.field(description="Global id.")
    key: str = strawberry.field(description="The step's key in its template.")
    name: str = strawberry.field(description="Display name.")
    step_kind: StepKind = strawberry.field(
        description="What kind of step (named apart from `WorkflowItem.kind`, whose type differs)."
    )
    step_state: StepState = strawberry.field(
        description="Current state (named apart from `WorkflowItem.state`, whose type differs)."
    )
    assignees: Assignees = strawberry.field(description="Who may act on it.")
    quorum: Quorum = strawberry.field(description="Approvals it needs.")
    risk: RiskLevel = strawberry.field(
        description="Risk assessed by signoff: the template's risk for the step's action (an "
        "action it does not list is high), raised by the declared risk, never lowered."
    )
    declared_risk: RiskLevel | None = strawberry.field(
        description="Risk the submitter (an agent) declared for a plan step."
    )
    needed: int = strawberry.field(
        description="Approvals that decide the step (fixed when it activates)."
    )
    seats: list[Seat] = strawberry.field(
        description="The seats of its quorum, fixed when it activates; votes fill them."
    )
    hold: StepHold | None = strawberry.field(
        description="Set while the step is held for a person (state HELD)."
    )
    expected_outcome: str | None = strawberry.field(
        description="What the plan step is expected to achieve (seed 003 plan metadata)."
    )
    estimated_time: str | None = strawberry.field(
        description="How long the plan step is expected to take, as the agent said."
    )
    required_permissions: list[str] = strawberry.field(
        description="Permissions the plan step needs, as the agent said."
    )
    sensitive: bool = strawberry.field(
        description="Four-eyes step: overrides need a second person."
    )
    action: str | None = strawberry.field(description="What an agent-plan step will do.")
    params: JSON = strawberry.field(description="Parameters of the step (as modified).")
    original_params: JSON | None = strawberry.field(
        description="Parameters as submitted, when they were modified."
    )
    claimed_by: str | None = strawberry.field(description="Reviewer who claimed it.")
    decision_value: str | None = strawberry.field(description="Value chosen on a decision step.")
    activated_at: datetime | None = strawberry.field(description="When it opened for review.")
    due_at: datetime | None = strawberry.field(description="SLA deadline.")
    decided_at: datetime | None = strawberry.field(description="When it was resolved.")
    version: int = strawberry.field(description="Bumped on every change of the step.")
    execution_attempts: int = strawberry.field(description="Execution attempts so far.")
    result: JSON | None = strawberry.field(description="Execution result, once completed.")
    error: str | None = strawberry.field(description="Execution error, when failed.")
    params_diff: list[ParamChange] = strawberry.field(
        description="Parameters a reviewer changed, submitted value against current."
    )
    raw_id: strawberry.Private[UUID]
    item_id: strawberry.Private[UUID]
    snapshot: strawberry.Private[progression.Snapshot]
    definition: strawberry.Private[TemplateDefinition]

    def _impacts(self, modified: bool) -> list[DependencyImpact]:
        # The progression itself, run on a copy of the item: a prediction cannot differ from
        # what the engine then does.
        context = progression.Context(self.snapshot.item.updated_at, WALL_CLOCK)
        found = progression.impacts(
            self.snapshot, self.definition, self.key, context, modified=modified
        )
        return [DependencyImpact.from_impact(i) for i in found]

    @strawberry.field(
        description="What rejecting this step now would do to the steps that depend on it."
    )
    def impact_if_rejected(self) -> list[DependencyImpact]:
        return self._impacts(modified=False)

    @strawberry.field(
        description="What modifying this step now would do to the steps that depend on it."
    )
    def impact_if_modified(self) -> list[DependencyImpact]:
        return self._impacts(modified=True)

    @strawberry.field(description="The item this step belongs to.")
    def item(self) -> WorkflowItem:
        # The step was read with its item: the snapshot holds both, no read needed.
        return WorkflowItem.from_parts(self.snapshot.item, self.snapshot.steps, self.definition)

    @strawberry.field(description="The reviewer who claimed it, with their display name.")
    async def claimant(self, info: Info[SignoffContext, Any]) -> Person | None:
        return await person(info, self.claimed_by) if self.claimed_by else None

    @strawberry.field(description="Decisions on this step, oldest first.")
    async def decisions(self, info: Info[SignoffContext, Any]) -> list[Decision]:
        actor_of(info)
        # One statement per request for all items' decisions (see api/loaders.py).
        decisions = await loaders_of(info).decisions_by_item.load(self.item_id)
        return [Decision.from_record(d) for d in decisions if d.step_id == self.raw_id]

    @classmethod
    def from_record(
        cls, step: records.Step, definition: TemplateDefinition, snapshot: progression.Snapshot
    ) -> Step:
        """Map a step record of the item in `snapshot`, which runs `definition`."""
        planned = definition.step(step.key)
        hold = None
        if step.hold is not None:
            upstreams = list(step.hold.upstreams)
            hold = StepHold(upstreams=upstreams, since=step.hold.since, options=list(HoldOption))
        return cls(
            execution_attempts=step.attempts,
            result=_json(step.result),
            error=step.error,
            params_diff=params_diff(step.original_params, step.params),
            declared_risk=step.declared_risk,
            needed=step.needed,
            seats=[Seat.from_record(s) for s in step.seats],
            hold=hold,
            expected_outcome=planned.expected_outcome or None,
            estimated_time=planned.estimated_time or None,
            required_permissions=list(planned.required_permissions),
            snapshot=snapshot,
            definition=definition,
            id=strawberry.ID(ids.encode("Step", step.id)),
            key=step.key,
            name=step.name,
            step_kind=step.kind,
            step_state=step.state,
            assignees=Assignees(
                users=list(step.assignees.users),
                groups=list(step.assignees.groups),
                roles=list(step.assignees.roles),
            ),
            quorum=Quorum(mode=step.quorum.mode, n=step.quorum.n),
            risk=step.risk,
            sensitive=step.sensitive,
            action=step.action,
            params=JSON(dict(step.params)),
            original_params=_json(step.original_params),
            claimed_by=step.claimed_by,
            decision_value=step.decision_value,
            activated_at=step.activated_at,
            due_at=step.due_at,
            decided_at=step.decided_at,
            version=step.version,
            raw_id=step.id,
            item_id=step.item_id,
        )


@strawberry.type(description="An append-only, hash-chained record of one change.")
class AuditEvent:
    seq: int = strawberry.field(description="Position in the tenant's audit chain (gapless).")
    action: str = strawberry.field(description="What happened, e.g. `step.approve`.")
    actor_id: str = strawberry.field(description="Who did it.")
    acting_for: str | None = strawberry.field(description="Whom a delegate acted for.")
    reason: str | None = strawberry.field(description="The reason given.")
    request_id: str | None = strawberry.field(description="Request that made the change.")
    client_addr: str | None = strawberry.field(
        description="Client address of that request; null unless the caller holds "
        "read_audit_details."
    )
    user_agent: str | None = strawberry.field(
        description="User agent of that request; null unless the caller holds read_audit_details."
    )
    environment: str | None = strawberry.field(
        description="Environment of the principal who made the change (null on events written "
        "before it was recorded)."
    )
    redacted_at: datetime | None = strawberry.field(
        description="When the event's content was redacted (its chain links still verify)."
    )
    step_id: strawberry.ID | None = strawberry.field(description="Step concerned, if any.")
    data: JSON = strawberry.field(description="Details of the change.")
    occurred_at: datetime = strawberry.field(description="When it happened.")
    hash: str = strawberry.field(description="sha256 chaining this event to the previous one.")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AuditEvent:
        """Map an audit row."""
        step = row["step_id"]
        return cls(
            seq=row["seq"],
            action=row["action"],
            actor_id=row["actor_id"],
            acting_for=row["acting_for"],
            reason=row["reason"],
            request_id=row["request_id"],
            client_addr=row["client_addr"],
            user_agent=row["user_agent"],
            environment=row.get("environment"),
            redacted_at=row.get("redacted_at"),
            step_id=strawberry.ID(ids.encode("Step", step)) if step else None,
            data=row["data"],
            occurred_at=row["occurred_at"],
            hash=row["hash"],
        )


@strawberry.type(description="One thing to be signed off, with its steps.")
class WorkflowItem(Node):
    id: strawberry.ID = strawberry.field(description="Global id.")
    kind: TemplateKind = strawberry.field(description="What kind of item.")
    title: str = strawberry.field(description="Short title shown in inboxes.")
    state: ItemState = strawberry.field(description="Current state.")
    priority: int = strawberry.field(description="Higher is more urgent.")
    risk: RiskLevel = strawberry.field(description="Highest risk of its steps.")
    requester_id: str = strawberry.field(description="Who submitted it.")
    environment: str = strawberry.field(description="Environment it belongs to.")
    external_ref: str | None = strawberry.field(description="External trace or decision id.")
    revision: int = strawberry.field(description="Bumped on every resubmission.")
    version: int = strawberry.field(
        description="Bumped on every change; pass as `expectedVersion` to guard a mutation."
    )
    created_at: datetime = strawberry.field(description="When it was submitted.")
    updated_at: datetime = strawberry.field(description="When it last changed.")
    summary: str | None = strawberry.field(
        description="What the plan does, in the submitter's words (seed 003 plan summary)."
    )
    event_cursor: str | None = strawberry.field(
        default=None,
        description="Read on its own (`item`, `node`): the event cursor of the snapshot it was "
        "read from; subscribe to `itemEvents` with `after: eventCursor` to miss no change "
        "after this read (docs/realtime.md). Null elsewhere: in a list, which carries the "
        "cursor of its page, and where the item is reached from another object (`Step.item`, "
        "a pushed change).",
    )
    raw_id: strawberry.Private[UUID]
    tenant_id: strawberry.Private[str]
    template_id: strawberry.Private[UUID]
    template_definition: strawberry.Private[TemplateDefinition]
    item_record: strawberry.Private[records.Item]
    # None when the item was read without its steps (a page of items): they are read, in one
    # statement for the whole page, only when the operation asks for them
    step_records: strawberry.Private[tuple[records.Step, ...] | None]

    async def _steps(self, info: Info[SignoffContext, Any]) -> tuple[records.Step, ...]:
        if self.step_records is None:
            loaded = await loaders_of(info).steps_by_item.load(self.raw_id)
            self.step_records = tuple(loaded)
        return self.step_records

    @strawberry.field(description="Its steps, in template order.")
    async def steps(self, info: Info[SignoffContext, Any]) -> list[Step]:
        steps = await self._steps(info)
        snapshot = progression.Snapshot(self.item_record, steps)
        return [Step.from_record(s, self.template_definition, snapshot) for s in steps]

    @strawberry.field(
        description="Its step graph as Mermaid flowchart text or as SVG laid out on the "
        "server, each step labelled and coloured by its state (docs/reference/diagrams.md)."
    )
    async def diagram(
        self,
        info: Info[SignoffContext, Any],
        fmt: Annotated[
            DiagramFormat,
            strawberry.argument(name="format", description="Mermaid text (default) or SVG."),
        ] = DiagramFormat.MERMAID,
    ) -> str:
        states = {s.key: s.state.value for s in await self._steps(info)}
        return diagram_svg.draw(self.template_definition, states, fmt)

    template_key: strawberry.Private[str]
    stored_payload: strawberry.Private[Mapping[str, Any]]

    @strawberry.field(
        description="Submitted data, validated by the template. Fields that a redaction rule "
        "shows only to roles the caller lacks are absent."
    )
    async def payload(self, info: Info[SignoffContext, Any]) -> JSON:
        return JSON((await self._redactor(info)).payload(self.stored_payload))

    async def _redactor(self, info: Info[SignoffContext, Any]) -> Redactor:
        actor = actor_of(info)
        rules = await loaders_of(info).redaction_rules.load(self.tenant_id)
        return redactor_for(rules, self.template_key, actor.principal)

    @strawberry.field(
        description="The audit events of this item, oldest first; pages of up to "
        f"{MAX_AUDIT_PAGE} (default {DEFAULT_AUDIT_PAGE})."
    )
    async def audit_events(
        self,
        info: Info[SignoffContext, Any],
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[AuditEvent]:
        try:
            page = page_args(first, after, last, before, MAX_AUDIT_PAGE, DEFAULT_AUDIT_PAGE)
            rows = await audit_services.item_events(
                actor_of(info), services_of(info), self.raw_id, AUDIT_ORDER.window(page)
            )
        except DomainError as exc:
            raise CodedError(exc) from None
        redactor = await self._redactor(info)
        return connection(
            page,
            AUDIT_ORDER,
            rows,
            lambda r: AuditEvent.from_row({**r, "data": redactor.event_data(r["data"])}),
        )

    @strawberry.field(description="Who submitted it, with their display name.")
    async def requester(self, info: Info[SignoffContext, Any]) -> Person:
        return await person(info, self.requester_id)

    @strawberry.field(
        description="The template version it runs (its field definitions render `payload`)."
    )
    async def template(self, info: Info[SignoffContext, Any]) -> Template:
        version = await loaders_of(info).templates.load(self.template_id)
        if version is None:
            raise LookupError(f"template {self.template_id} of item {self.raw_id} not found")
        return Template.from_record(version)

    @strawberry.field(description="The latest decision on any of its steps, if any.")
    async def last_decision(self, info: Info[SignoffContext, Any]) -> Decision | None:
        actor_of(info)
        decisions = await loaders_of(info).decisions_by_item.load(self.raw_id)
        return Decision.from_record(decisions[-1]) if decisions else None

    @classmethod
    def from_view(cls, view: ItemView) -> WorkflowItem:
        """Map an item with its steps."""
        return cls.from_parts(view.item, view.steps, view.definition)

    @classmethod
    def from_parts(
        cls,
        item: records.Item,
        steps: Sequence[records.Step] | None,
        definition: TemplateDefinition,
    ) -> WorkflowItem:
        """Map an item record with its steps (in template order; None: read them if asked
        for) and its definition."""
        return cls(
            id=strawberry.ID(ids.encode("WorkflowItem", item.id)),
            kind=item.kind,
            title=item.title,
            state=item.state,
            priority=item.priority,
            risk=item.risk,
            requester_id=item.requester_id,
            environment=item.environment,
            external_ref=item.external_ref,
            revision=item.revision,
            version=item.version,
            created_at=item.created_at,
            updated_at=item.updated_at,
            summary=definition.summary or None,
            raw_id=item.id,
            tenant_id=item.tenant_id,
            template_id=item.template_id,
            template_definition=definition,
            template_key=definition.key,
            stored_payload=item.payload,
            item_record=item,
            step_records=None if steps is None else tuple(steps),
        )

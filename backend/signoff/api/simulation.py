"""Dry-run queries: simulate a template, replay recent items through a draft."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from signoff.api import ids
from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.enums import NotificationKind, ReplayDifferenceKind, described_enum
from signoff.api.errors import CodedError
from signoff.api.types import Assignees
from signoff.domain import simulation as sim
from signoff.domain.durations import parse_duration
from signoff.domain.errors import DomainError, invalid
from signoff.domain.states import ItemState, StepState
from signoff.domain.templates import Assignees as DomainAssignees
from signoff.domain.timers import TimerKind
from signoff.services import simulation as sim_services


class SimulatedVerdict(StrEnum):
    """How a step is decided in a dry run (`domain/simulation.py::read_decision`)."""

    APPROVE = "approve"
    REJECT = "reject"
    OPTION = "option"
    TIMEOUT = "timeout"


described_enum(
    SimulatedVerdict,
    "How a step is decided in a dry run.",
    {
        SimulatedVerdict.APPROVE: "Approved (a decision step: its first option).",
        SimulatedVerdict.REJECT: "Rejected.",
        SimulatedVerdict.OPTION: "A decision step's option, named by `option`.",
        SimulatedVerdict.TIMEOUT: "Nobody acts: the step's timers (reminders, escalations, "
        "the SLA) decide.",
    },
)


@strawberry.input(
    description="How one step is decided in a dry run; steps without one are approved (a "
    "decision step: its first option) the instant they open."
)
class SimulatedDecisionInput:
    step: str = strawberry.field(description="The step's key.")
    verdict: SimulatedVerdict = strawberry.field(description="How it is decided.")
    option: str | None = strawberry.field(
        default=None, description="With OPTION: the option chosen."
    )
    after: str | None = strawberry.field(
        default=None,
        description="Decided this long after it opened, in counted (calendar) time, as an "
        "ISO-8601 duration (`PT5H`), so deadlines and breaches show; default at once.",
    )


def scenario_decisions(entries: list[SimulatedDecisionInput]) -> dict[str, str]:
    """The typed decisions as the step key -> decision text that `decisions` carries
    (`approve@PT5H`); INVALID_INPUT, naming the entry, for what cannot be one."""
    decisions: dict[str, str] = {}
    for i, entry in enumerate(entries):
        path = f"stepDecisions[{i}]"
        if entry.step in decisions:
            raise invalid(f"step {entry.step!r} is decided twice", f"{path}.step")
        if (entry.verdict is SimulatedVerdict.OPTION) != (entry.option is not None):
            raise invalid("give `option` with OPTION, and only then", f"{path}.option")
        if entry.option is not None and (not entry.option.strip() or "@" in entry.option):
            raise invalid("an option is a non-empty value without `@`", f"{path}.option")
        verdict = entry.option if entry.option is not None else entry.verdict.value
        if entry.after is not None:
            try:
                parse_duration(entry.after)
            except DomainError as exc:
                raise invalid(exc.message, f"{path}.after") from None
            verdict = f"{verdict}@{entry.after}"
        decisions[entry.step] = verdict
    return decisions


def _assignees(a: DomainAssignees) -> Assignees:
    return Assignees(users=list(a.users), groups=list(a.groups), roles=list(a.roles))


@strawberry.type(description="A timer that would be armed for a step.")
class SimulatedTimer:
    kind: TimerKind = strawberry.field(description="Why it would fire.")
    due_at: datetime = strawberry.field(description="When it would fire.")
    level: int | None = strawberry.field(description="Escalation level, for escalations.")


@strawberry.type(description="A step as it would run.")
class SimulatedStep:
    key: str = strawberry.field(description="Step key.")
    name: str = strawberry.field(description="Display name.")
    step_state: StepState = strawberry.field(description="The state it would end in.")
    assignees: Assignees = strawberry.field(description="Who would be assigned.")
    activated_at: datetime | None = strawberry.field(description="When it would open.")
    decided_at: datetime | None = strawberry.field(description="When it would be decided.")
    sla_due: datetime | None = strawberry.field(description="Its SLA deadline.")
    breached: bool = strawberry.field(description="Whether the SLA would be breached.")
    auto_approved_by: str | None = strawberry.field(description="Policy rule that would approve.")
    timers: list[SimulatedTimer] = strawberry.field(description="Timers that would be armed.")


@strawberry.type(description="A notification that would go out.")
class SimulatedNotification:
    kind: NotificationKind = strawberry.field(description="Why it would go out.")
    step: str = strawberry.field(description="Step key.")
    recipients: Assignees = strawberry.field(description="Who would be notified.")
    at: datetime = strawberry.field(description="When.")


@strawberry.type(description="A rule that would fail, with the path to its field.")
class SimulationProblem:
    message: str = strawberry.field(description="What would fail.")
    path: str | None = strawberry.field(description="Where.")


@strawberry.type(description="The result of a dry run; nothing was written.")
class Simulation:
    outcome: ItemState = strawberry.field(description="The item's would-be state.")
    steps: list[SimulatedStep] = strawberry.field(description="Steps in order.")
    notifications: list[SimulatedNotification] = strawberry.field(description="Notifications.")
    problems: list[SimulationProblem] = strawberry.field(description="Rules that would fail.")

    @classmethod
    def from_result(cls, result: sim.SimulationResult) -> Simulation:
        """Map a domain simulation result."""
        return cls(
            outcome=ItemState(result.outcome),
            steps=[
                SimulatedStep(
                    key=s.key,
                    name=s.name,
                    step_state=s.state,
                    assignees=_assignees(s.assignees),
                    activated_at=s.activated_at,
                    decided_at=s.decided_at,
                    sla_due=s.sla_due,
                    breached=s.breached,
                    auto_approved_by=s.auto_approved_by,
                    timers=[
                        SimulatedTimer(kind=t.kind, due_at=t.due_at, level=t.level)
                        for t in s.timers
                    ],
                )
                for s in result.steps
            ],
            notifications=[
                SimulatedNotification(
                    kind=NotificationKind(n.kind),
                    step=n.step,
                    recipients=_assignees(n.recipients),
                    at=n.at,
                )
                for n in result.notifications
            ],
            problems=[SimulationProblem(message=p.message, path=p.path) for p in result.problems],
        )


@strawberry.type(
    description="One side of a replay difference. The field its `kind` names holds the value, "
    "the others are null: STEP_REMOVED, STEP_ADDED and STATE `stepState`; ASSIGNEES "
    "`assignees`; DEADLINE `slaDue` (null: no SLA); BREACH `breached`; AUTO_APPROVAL `rule` "
    "(null: no rule); NOTIFICATIONS `count`; OUTCOME `itemState`."
)
class ReplayValue:
    step_state: StepState | None = strawberry.field(
        default=None, description="The state the step ended (or would end) in."
    )
    item_state: ItemState | None = strawberry.field(
        default=None, description="The state the item ended (or would end) in."
    )
    assignees: Assignees | None = strawberry.field(default=None, description="Who was assigned.")
    sla_due: datetime | None = strawberry.field(default=None, description="The SLA deadline.")
    breached: bool | None = strawberry.field(
        default=None, description="Whether the SLA was breached."
    )
    rule: str | None = strawberry.field(default=None, description="The auto-approval rule.")
    count: int | None = strawberry.field(default=None, description="Notifications about it.")


@strawberry.type(description="One thing that would have been different for a replayed item.")
class ReplayDifference:
    kind: ReplayDifferenceKind = strawberry.field(description="What differs.")
    step: str | None = strawberry.field(description="The step's key; null for the item.")
    before: JSON | None = strawberry.field(
        description="As it went (a state, a time, assignees, a count, ...).",
        deprecation_reason="Untyped; use `beforeValue`, the same value typed.",
    )
    after: JSON | None = strawberry.field(
        description="As it would have gone under the draft.",
        deprecation_reason="Untyped; use `afterValue`, the same value typed.",
    )
    before_value: ReplayValue | None = strawberry.field(
        description="As it went; null for a step the item did not have (STEP_ADDED)."
    )
    after_value: ReplayValue | None = strawberry.field(
        description="As it would have gone under the draft; null for a step the draft does "
        "not have (STEP_REMOVED)."
    )


@strawberry.type(description="How one real item would have gone under the draft.")
class ReplayedItem:
    item_id: strawberry.ID = strawberry.field(description="Global id of the item.")
    title: str = strawberry.field(description="Its title.")
    differences: list[ReplayDifference] = strawberry.field(
        description="What would have been different."
    )


async def _definition(
    info: Info[SignoffContext, Any], key: str | None, version: int | None, definition: JSON | None
) -> Any:
    actor = actor_of(info)
    document = definition if isinstance(definition, dict) else None
    return actor, await sim_services.resolve_definition(
        actor, services_of(info), key=key, version=version, document=document
    )


@strawberry.type
class SimulationQueries:
    @strawberry.field(
        description="Dry-run a published template (by key) or a draft definition "
        "against a payload; writes nothing."
    )
    async def simulate(
        self,
        info: Info[SignoffContext, Any],
        payload: Annotated[JSON, strawberry.argument(description="The would-be item payload.")],
        template_key: Annotated[
            str | None, strawberry.argument(description="A published template.")
        ] = None,
        template_version: Annotated[
            int | None, strawberry.argument(description="Its version (default newest).")
        ] = None,
        definition: Annotated[
            JSON | None, strawberry.argument(description="A draft definition instead of a key.")
        ] = None,
        decisions: Annotated[
            JSON | None,
            strawberry.argument(
                description="Step key -> approve, reject, an option or timeout (optionally @PT5H).",
                deprecation_reason="Untyped; use `stepDecisions`, the same decisions typed.",
            ),
        ] = None,
        step_decisions: Annotated[
            list[SimulatedDecisionInput] | None,
            strawberry.argument(
                description="How steps are decided (default: each approved the instant it "
                "opens); a step the template lacks is reported in `problems`."
            ),
        ] = None,
    ) -> Simulation:
        try:
            scenario: dict[str, str] | None = None
            if step_decisions is not None:
                if decisions is not None:
                    raise invalid("give `stepDecisions` or `decisions`, not both", "decisions")
                scenario = scenario_decisions(step_decisions)
            elif decisions is not None:
                if not (
                    isinstance(decisions, dict)
                    and all(isinstance(v, str) for v in decisions.values())
                ):
                    raise invalid("an object of step key to decision text", "decisions")
                scenario = decisions
            actor, defn = await _definition(info, template_key, template_version, definition)
            result = await sim_services.simulate_template(
                actor,
                services_of(info),
                defn,
                payload if isinstance(payload, dict) else {},
                scenario,
            )
        except DomainError as exc:
            raise CodedError(exc) from None
        return Simulation.from_result(result)

    @strawberry.field(
        description="Replay the last N items of a template through a changed draft "
        "and report what would have been different; writes nothing."
    )
    async def replay_template(
        self,
        info: Info[SignoffContext, Any],
        template_key: Annotated[
            str, strawberry.argument(description="Template whose items to replay.")
        ],
        definition: Annotated[
            JSON, strawberry.argument(description="The changed draft definition.")
        ],
        last: Annotated[
            int, strawberry.argument(description="How many recent items (max 200).")
        ] = 20,
    ) -> list[ReplayedItem]:
        try:
            actor, draft = await _definition(info, None, None, definition)
            replayed = await sim_services.replay_recent(
                actor, services_of(info), template_key, draft, last
            )
        except DomainError as exc:
            raise CodedError(exc) from None
        return [
            ReplayedItem(
                item_id=strawberry.ID(ids.encode("WorkflowItem", r.item_id)),
                title=r.title,
                differences=[_difference(d) for d in r.differences],
            )
            for r in replayed
        ]


def _difference(d: sim.Difference) -> ReplayDifference:
    kind = ReplayDifferenceKind(d.kind)
    return ReplayDifference(
        kind=kind,
        step=d.step,
        before=_plain(d.before),
        after=_plain(d.after),
        before_value=None if kind is ReplayDifferenceKind.STEP_ADDED else _value(kind, d.before),
        after_value=None if kind is ReplayDifferenceKind.STEP_REMOVED else _value(kind, d.after),
    )


def _value(kind: ReplayDifferenceKind, value: Any) -> ReplayValue:
    """One side of a difference, in the field its kind names (`domain/simulation.py::compare`)."""
    match kind:
        case (
            ReplayDifferenceKind.STEP_REMOVED
            | ReplayDifferenceKind.STEP_ADDED
            | ReplayDifferenceKind.STATE
        ):
            return ReplayValue(step_state=StepState(value))
        case ReplayDifferenceKind.ASSIGNEES:
            return ReplayValue(assignees=_assignees(value))
        case ReplayDifferenceKind.DEADLINE:
            return ReplayValue(sla_due=value)
        case ReplayDifferenceKind.BREACH:
            return ReplayValue(breached=value)
        case ReplayDifferenceKind.AUTO_APPROVAL:
            return ReplayValue(rule=value)
        case ReplayDifferenceKind.NOTIFICATIONS:
            return ReplayValue(count=value)
        case ReplayDifferenceKind.OUTCOME:
            return ReplayValue(item_state=ItemState(value))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, DomainAssignees):
        return value.to_dict()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value if isinstance(value, str | int | float | bool | None) else str(value)

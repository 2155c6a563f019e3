"""Operators' view of time: overdue or stuck steps, a step's timers, business calendars."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from signoff.api import ids
from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.errors import CodedError, UserError, user_error
from signoff.api.guards import GuardsInput, guards_field, key_guards
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
from signoff.db.timers import NO_DEADLINE
from signoff.domain import records
from signoff.domain.calendar import BusinessCalendar
from signoff.domain.errors import DomainError
from signoff.domain.records import TimerStatus
from signoff.domain.timers import TimerKind
from signoff.services import timers as timer_services


@strawberry.type(description="A step past its SLA, or holding timers that should have fired.")
class OverdueStep:
    step_id: strawberry.ID = strawberry.field(description="Global id of the step.")
    item_id: strawberry.ID = strawberry.field(description="Global id of its item.")
    key: str = strawberry.field(description="Step key.")
    title: str = strawberry.field(description="Item title.")
    due_at: datetime | None = strawberry.field(description="SLA deadline.")
    next_timer_at: datetime | None = strawberry.field(description="Earliest armed timer.")
    stuck_timers: int = strawberry.field(
        description="Armed timers overdue by more than a minute: run `signoff sweep` (runbook)."
    )

    @classmethod
    def from_record(cls, o: records.OverdueStep) -> OverdueStep:
        return cls(
            step_id=strawberry.ID(ids.encode("Step", o.step_id)),
            item_id=strawberry.ID(ids.encode("WorkflowItem", o.item_id)),
            key=o.key,
            title=o.title,
            due_at=o.due_at,
            next_timer_at=o.next_timer_at,
            stuck_timers=o.stuck_timers,
        )


MAX_OVERDUE_PAGE = 500
OVERDUE_ORDER: KeysetOrder[records.OverdueStep] = KeysetOrder(
    "OverdueStep", (timestamp, uuid_part), lambda o: (o.due_at or NO_DEADLINE, o.step_id)
)


@strawberry.type(description="A stored timer of a step.")
class StepTimer:
    kind: TimerKind = strawberry.field(description="Why it fires.")
    level: int | None = strawberry.field(description="Escalation level.")
    due_at: datetime = strawberry.field(description="When it is due.")
    status: TimerStatus = strawberry.field(description="Where it stands.")
    fired_at: datetime | None = strawberry.field(description="When it acted.")


@strawberry.input(description="Working hours for SLA arithmetic.")
class BusinessCalendarInput:
    timezone: str = strawberry.field(description="IANA time zone, e.g. Europe/Berlin.")
    workdays: list[int] = strawberry.field(description="0 = Monday … 6 = Sunday.")
    start: time = strawberry.field(description="Start of the working day (local).")
    end: time = strawberry.field(description="End of the working day (local).")
    holidays: list[date] = strawberry.field(default_factory=list, description="Days off.")
    guards: GuardsInput | None = guards_field(versioned=False)


@strawberry.type(description="Result of setting the business calendar.")
class BusinessCalendarPayload:
    ok: bool = strawberry.field(description="Whether it was saved.")
    errors: list[UserError] = strawberry.field(description="Empty on success.")


@strawberry.type
class TimerQueries:
    @strawberry.field(
        description="Overdue or stuck steps of the tenant (administer_timers), earliest "
        f"deadline first (steps without one last); pages of up to {MAX_OVERDUE_PAGE} "
        "(default 50)."
    )
    async def overdue_steps(
        self,
        info: Info[SignoffContext, Any],
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[OverdueStep]:
        actor = actor_of(info)
        try:
            page = page_args(first, after, last, before, MAX_OVERDUE_PAGE, 50)
            rows = await timer_services.overdue_steps(
                actor, services_of(info), OVERDUE_ORDER.window(page)
            )
        except DomainError as exc:
            raise CodedError(exc) from None
        return connection(page, OVERDUE_ORDER, rows, OverdueStep.from_record)

    @strawberry.field(description="The timers of one step (administer_timers).")
    async def step_timers(
        self,
        info: Info[SignoffContext, Any],
        step_id: Annotated[
            strawberry.ID, strawberry.argument(description="Global id of the step.")
        ],
    ) -> list[StepTimer]:
        actor = actor_of(info)
        try:
            timers = await timer_services.step_timers(
                actor, services_of(info), ids.decode_uuid(step_id, "Step", "stepId")
            )
        except DomainError as exc:
            raise CodedError(exc) from None
        return [
            StepTimer(
                kind=t.kind,
                level=t.level,
                due_at=t.due_at,
                status=t.status,
                fired_at=t.fired_at,
            )
            for t in timers
        ]


@strawberry.type
class TimerMutations:
    @strawberry.mutation(description="Set the tenant's business calendar (administer_timers).")
    async def set_business_calendar(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            BusinessCalendarInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> BusinessCalendarPayload:
        actor = actor_of(info)
        try:
            guards = key_guards(input.guards)
            calendar = BusinessCalendar(
                timezone=input.timezone,
                workdays=frozenset(input.workdays),
                start=input.start,
                end=input.end,
                holidays=frozenset(input.holidays),
            )
            await timer_services.set_business_calendar(actor, services_of(info), calendar, guards)
        except DomainError as exc:
            return BusinessCalendarPayload(ok=False, errors=[user_error(exc)])
        return BusinessCalendarPayload(ok=True, errors=[])

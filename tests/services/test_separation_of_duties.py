"""The separation-of-duties invariants of docs/reference/separation-of-duties.md, one path at a
time, at the service level on a real database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from signoff.db import sql
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.records import SeatVote
from signoff.domain.states import StepState
from signoff.services import actions, overrides, timers
from signoff.services import items as item_services
from signoff.services.context import ServiceContext
from signoff.services.engine import ItemView
from signoff.services.templates import save_template
from tests.conftest import actor

STRONG = "the vendor is down and customers are blocked, the duty manager agreed"


async def open_item(tenant: str, services: ServiceContext, step: dict[str, Any]) -> ItemView:
    document = {"key": "sod", "name": "sod", "kind": "approval", "steps": [{"key": "s", **step}]}
    await save_template(actor(tenant, "root", "admin"), services, document, publish=True)
    return await item_services.submit_item(
        actor(tenant, "rita"), services, item_services.SubmitItemInput("sod", "t")
    )


async def vote(tenant: str, services: ServiceContext, view: ItemView, user: str, *roles: str,
               groups: tuple[str, ...] = ()) -> ItemView:  # fmt: skip
    return await item_services.decide_step(
        actor(tenant, user, *roles, groups=groups),
        services,
        item_services.DecideStepInput(view.steps[0].id, item_services.Outcome.APPROVE),
    )


async def an_hour_later(
    tenant: str, services: ServiceContext, clock: Any, view: ItemView, kind: str
) -> ItemView:
    """The item after an hour passed and its step's timer of `kind` fired."""
    clock.advance(timedelta(hours=1))
    row = await sql.fetchrow(
        "SELECT id, token FROM timer WHERE step_id = $1 AND kind = $2", view.steps[0].id, kind
    )
    assert row is not None
    await timers.fire_timer(services, row["id"], row["token"])
    return await item_services.get_item(actor(tenant, "root", "admin"), services, view.id)


async def refused(call: Any) -> ErrorCode:
    with pytest.raises(DomainError) as refusal:
        await call
    return refusal.value.code


async def test_a_requester_named_on_an_all_step_leaves_it_short_and_it_escalates(tenant, services):
    view = await open_item(
        tenant, services, {"assignees": {"users": ["rita", "bob"]}, "quorum": "all"}
    )
    step = view.steps[0]
    # no seat for the requester; the override roles join at once, a seat each
    assert [s.holder for s in step.seats] == ["bob", None, None] and step.needed == 2
    assert {s.role for s in step.seats[1:]} == set(services.settings.override_roles)
    assert view.item.priority == 1
    events = await sql.fetch("SELECT action, data::text AS d FROM audit_event WHERE item_id = $1",
                             view.id)  # fmt: skip
    assert any(e["action"] == "step.escalate" and "unfillable_seats" in e["d"] for e in events)
    assert await refused(vote(tenant, services, view, "rita", "admin")) == (
        ErrorCode.SEPARATION_OF_DUTIES
    )
    view = await vote(tenant, services, view, "bob")
    assert view.state.value == "pending"
    view = await vote(tenant, services, view, "olga", "override")
    assert view.state.value == "approved"


async def test_one_person_fills_one_seat_even_when_named_and_in_a_group(tenant, services):
    view = await open_item(
        tenant,
        services,
        {"assignees": {"users": ["bob", "cat"], "groups": ["ops"]}, "quorum": "all"},
    )
    view = await vote(tenant, services, view, "bob", groups=("ops",))
    assert [s.filled_by for s in view.steps[0].seats] == ["bob", None, None]  # his named seat
    code = await refused(vote(tenant, services, view, "bob", groups=("ops",)))
    assert code is ErrorCode.SEPARATION_OF_DUTIES
    view = await vote(tenant, services, view, "cat")
    view = await vote(tenant, services, view, "oli", groups=("ops",))
    assert view.state.value == "approved"


async def test_a_delegate_is_never_someone_already_seated_and_fills_for_the_holder(
    tenant, services
):
    view = await open_item(
        tenant,
        services,
        {"assignees": {"users": ["bob", "cat", "dan"]}, "quorum": {"mode": "n_of_m", "n": 2}},
    )
    step_id = view.steps[0].id
    bob = actor(tenant, "bob")
    for to in ("cat", "rita", "bob"):
        code = await refused(
            actions.reassign_step(
                bob, services, actions.ReassignInput(step_id, delegate_to=to, reason="away")
            )
        )
        assert code in (ErrorCode.SEPARATION_OF_DUTIES, ErrorCode.INVALID_INPUT), to
    view = await actions.reassign_step(
        bob, services, actions.ReassignInput(step_id, delegate_to="erin", reason="away")
    )
    view = await vote(tenant, services, view, "erin")
    seat = view.steps[0].seats[0]
    assert (seat.holder, seat.filled_by, seat.acting_for, seat.vote) == (
        "bob",
        "erin",
        "bob",
        SeatVote.APPROVE,
    )
    assert await refused(vote(tenant, services, view, "bob")) is ErrorCode.SEPARATION_OF_DUTIES


async def test_a_role_the_template_names_may_replace_seats_and_votes_cast_stay(tenant, services):
    view = await open_item(
        tenant,
        services,
        {
            "assignees": {"users": ["bob", "cat", "dan"]},
            "quorum": {"mode": "n_of_m", "n": 2},
            "reassignable_by": ["team-lead"],
        },
    )
    view = await vote(tenant, services, view, "bob")
    lead = actor(tenant, "lea", "team-lead")
    view = await actions.reassign_step(
        lead, services, actions.ReassignInput(view.steps[0].id, users=("eve",), reason="rota")
    )
    seats = view.steps[0].seats
    assert [(s.holder, s.vote) for s in seats] == [("bob", SeatVote.APPROVE), ("eve", None)]
    view = await vote(tenant, services, view, "eve")
    assert view.state.value == "approved"


async def test_the_assignee_of_a_single_seat_step_may_route_it(tenant, services):
    view = await open_item(tenant, services, {"assignees": {"roles": ["ops"]}})
    view = await actions.reassign_step(
        actor(tenant, "oli", "ops"),
        services,
        actions.ReassignInput(view.steps[0].id, users=("eve", "fay"), reason="experts"),
    )
    assert view.steps[0].assignees.users == ("eve", "fay")


async def test_an_override_is_never_by_someone_who_voted_on_the_step(tenant, services):
    view = await open_item(
        tenant,
        services,
        {"assignees": {"users": ["olga", "bob"]}, "quorum": "all", "any_rejection_rejects": False},
    )
    view = await item_services.decide_step(
        actor(tenant, "olga", "override"),
        services,
        item_services.DecideStepInput(view.steps[0].id, item_services.Outcome.REJECT, "no"),
    )
    code = await refused(
        overrides.override_step(
            actor(tenant, "olga", "override"),
            services,
            overrides.OverrideInput(view.steps[0].id, STRONG),
        )
    )
    assert code is ErrorCode.SEPARATION_OF_DUTIES


async def test_escalation_targets_never_seat_the_requester(tenant, services, clock):
    view = await open_item(
        tenant,
        services,
        {
            "assignees": {"users": ["bob"]},
            "sla": "PT2H",
            "escalation": [
                {"after": "PT1H", "action": "add_assignees", "targets": {"users": ["rita", "cat"]}}
            ],
        },
    )
    after = await an_hour_later(tenant, services, clock, view, "escalation")
    assert [s.holder for s in after.steps[0].seats] == ["bob", "cat"]
    assert after.steps[0].state is StepState.ACTIVE


async def test_a_timeout_escalation_never_seats_the_requester_who_holds_an_override_role(
    tenant, services, clock
):
    view = await open_item(
        tenant,
        services,
        {"assignees": {"users": ["bob"]}, "sla": "PT1H", "timeout_action": "escalate"},
    )
    view = await an_hour_later(tenant, services, clock, view, "sla")
    roles = {s.role for s in view.steps[0].seats if s.role}
    assert roles == set(services.settings.override_roles)  # they join with a seat each
    assert await refused(vote(tenant, services, view, "rita", "override")) == (
        ErrorCode.SEPARATION_OF_DUTIES
    )
    view = await vote(tenant, services, view, "olga", "override")
    assert view.state.value == "approved"


@pytest.mark.parametrize(
    "step, fire",
    [
        # activation: the requester is short of an `all` step, and the first escalation
        # level names only users, the requester among them
        (
            {
                "assignees": {"users": ["rita", "ann"]},
                "quorum": "all",
                "escalation": [
                    {"after": "PT1H", "action": "add_assignees", "targets": {"users": ["rita"]}}
                ],
            },
            None,
        ),
        # an escalation level reassigns a 2-of-3 step to two users, one of them the requester
        (
            {
                "assignees": {"users": ["bob", "cat", "dan"]},
                "quorum": {"mode": "n_of_m", "n": 2},
                "escalation": [
                    {"after": "PT1H", "action": "reassign", "targets": {"users": ["rita", "ann"]}}
                ],
            },
            "escalation",
        ),
    ],
)
async def test_seats_the_escalation_targets_cannot_fill_open_to_the_override_roles(
    tenant, services, clock, step, fire
):
    view = await open_item(tenant, services, step)
    if fire is not None:
        view = await an_hour_later(tenant, services, clock, view, fire)
    seats = view.steps[0].seats
    assert len(seats) >= view.steps[0].needed, "a step that can never be decided"
    assert [s.holder for s in seats if s.holder] == ["ann"]
    assert "rita" not in {s.holder for s in seats}
    view = await vote(tenant, services, view, "ann")
    assert view.state.value == "pending"
    assert await refused(vote(tenant, services, view, "rita", "admin")) == (
        ErrorCode.SEPARATION_OF_DUTIES
    )
    view = await vote(tenant, services, view, "root", "admin")
    assert view.state.value == "approved"

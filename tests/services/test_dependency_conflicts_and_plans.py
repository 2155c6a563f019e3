"""Held steps (ask_user), template immutability in the database, and replays with real decision
times: the parts of issue #9 that are not about who decides (through GraphQL:
tests/api/test_rules_as_documented.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from signoff.db import sql
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.snapshot import HoldOption
from signoff.domain.states import StepState
from signoff.domain.templates import parse_template
from signoff.services import actions, notification_admin, simulation, timers
from signoff.services import items as item_services
from signoff.services import notifications as notification_services
from signoff.services.context import ServiceContext
from signoff.services.engine import ItemView
from signoff.services.templates import save_template
from tests.conftest import actor

ADMIN = ("root", "admin")
CHAIN = {
    "key": "lookup-then-mail",
    "name": "lookup then mail",
    "kind": "approval",
    "steps": [
        {"key": "lookup", "assignees": {"users": ["ann"]}},
        {
            "key": "mail",
            "assignees": {"users": ["ben"]},
            "sla": "PT2H",
            "params": {"subject": "hi"},
            "depends_on": [{"step": "lookup", "effect": "blocks", "resolution": "ask_user"}],
        },
    ],
}


async def held_item(tenant: str, services: ServiceContext) -> ItemView:
    await save_template(actor(tenant, *ADMIN), services, CHAIN, publish=True)
    view = await item_services.submit_item(
        actor(tenant, "rita"),
        services,
        item_services.SubmitItemInput(template_key="lookup-then-mail", title="mail john"),
    )
    return await item_services.decide_step(
        actor(tenant, "ann"),
        services,
        item_services.DecideStepInput(
            view.step_by_key("lookup").id, item_services.Outcome.REJECT, reason="no contact"
        ),
    )


async def resolve(tenant: str, services: ServiceContext, view: ItemView, option: HoldOption,
                  value: dict[str, Any] | None = None, user: str = "rita") -> ItemView:  # fmt: skip
    return await actions.resolve_held_step(
        actor(tenant, user),
        services,
        actions.ResolveHeldInput(view.step_by_key("mail").id, option, "decided", value),
    )


async def test_a_held_step_is_announced_to_its_assignees_and_has_a_timer(tenant, services):
    await notification_admin.upsert_user_profile(
        actor(tenant, *ADMIN),
        services,
        notification_admin.ProfileInput("ben", addresses={"fake": "ben@example.com"}),
    )
    view = await held_item(tenant, services)
    mail = view.step_by_key("mail")
    assert (view.state.value, mail.state) == ("pending", StepState.HELD)
    assert mail.hold is not None and mail.hold.upstreams == ("lookup",)
    events = await sql.fetch(
        "SELECT action, data::text AS data FROM audit_event WHERE item_id = $1 ORDER BY seq",
        view.id,
    )
    conflict = [e for e in events if e["action"] == "step.dependency_conflict"]
    assert len(conflict) == 1 and "provide" in conflict[0]["data"]
    timer = await sql.fetchrow("SELECT kind, status, due_at FROM timer WHERE step_id = $1", mail.id)
    assert timer is not None and (timer["kind"], timer["status"]) == ("hold", "armed")
    assert timer["due_at"] == services.clock.now() + timedelta(hours=2)  # the step's SLA
    await notification_services.plan_notifications(services, tenant, channels=["fake"])
    told = await sql.fetch(
        "SELECT recipient_id FROM notification_delivery WHERE tenant_id = $1 "
        "AND event_kind = 'dependency_conflict'",
        tenant,
    )
    assert [r["recipient_id"] for r in told] == ["ben"]


async def test_the_hold_times_out_and_the_item_ends(tenant, services, clock):
    view = await held_item(tenant, services)
    timer = await sql.fetchrow(
        "SELECT id, token FROM timer WHERE step_id = $1 AND kind = 'hold'",
        view.step_by_key("mail").id,
    )
    assert timer is not None
    clock.advance(timedelta(hours=2))
    assert (await timers.fire_timer(services, timer["id"], timer["token"])).outcome == "fired"
    after = await item_services.get_item(actor(tenant, *ADMIN), services, view.id)
    assert after.step_by_key("mail").state is StepState.EXPIRED
    assert after.state.value == "expired"  # nobody chose: the held step, a leaf, expired


async def test_providing_the_value_by_hand_lets_the_step_go_on(tenant, services):
    view = await held_item(tenant, services)
    with pytest.raises(DomainError) as refused:  # only the requester (or an admin) chooses
        await resolve(tenant, services, view, HoldOption.SKIP, user="ben")
    assert refused.value.code is ErrorCode.FORBIDDEN
    view = await resolve(tenant, services, view, HoldOption.PROVIDE, {"to": "john@example.com"})
    mail = view.step_by_key("mail")
    assert mail.state is StepState.ACTIVE
    assert dict(mail.params) == {"subject": "hi", "to": "john@example.com"}
    assert dict(mail.original_params or {}) == {"subject": "hi"}
    view = await item_services.decide_step(
        actor(tenant, "ben"),
        services,
        item_services.DecideStepInput(mail.id, item_services.Outcome.APPROVE),
    )
    assert view.state.value == "approved"


async def test_retry_reviews_the_failed_upstream_again_with_fresh_votes(tenant, services):
    view = await held_item(tenant, services)
    view = await resolve(tenant, services, view, HoldOption.RETRY)
    assert view.item.revision == 2  # a new round of votes
    lookup = view.step_by_key("lookup")
    assert (lookup.state, view.step_by_key("mail").state) == (StepState.ACTIVE, StepState.WAITING)
    assert not any(seat.filled for seat in lookup.seats)
    view = await item_services.decide_step(
        actor(tenant, "ann"),
        services,
        item_services.DecideStepInput(lookup.id, item_services.Outcome.APPROVE),
    )
    assert view.step_by_key("mail").state is StepState.ACTIVE


async def test_cancel_ends_the_item(tenant, services):
    view = await resolve(tenant, services, await held_item(tenant, services), HoldOption.CANCEL)
    assert view.state.value == "cancelled"
    assert {s.state for s in view.steps} == {StepState.REJECTED, StepState.CANCELLED}


async def test_published_templates_cannot_change_in_the_database(tenant, services, demo_templates):
    row = await sql.fetchrow(
        "SELECT id FROM template WHERE tenant_id = $1 AND status = 'published' LIMIT 1", tenant
    )
    assert row is not None
    for statement in (
        "UPDATE template SET definition = '{}'::jsonb WHERE id = $1",
        "UPDATE template SET name = 'renamed' WHERE id = $1",
        "UPDATE template SET status = 'draft' WHERE id = $1",
        "DELETE FROM template WHERE id = $1",
    ):
        with pytest.raises(asyncpg.IntegrityConstraintViolationError):
            await sql.execute(statement, row["id"])
    await sql.execute("UPDATE template SET status = 'retired' WHERE id = $1", row["id"])
    retired = await sql.fetchrow("SELECT status FROM template WHERE id = $1", row["id"])
    assert retired is not None and retired["status"] == "retired"


async def test_replay_uses_the_real_decision_times_so_breaches_show(
    tenant, services, clock, demo_templates
):
    payload = {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy previous"}
    view = await item_services.submit_item(
        actor(tenant, "alice"),
        services,
        item_services.SubmitItemInput(
            template_key="change-approval", title="late", payload=payload
        ),
    )
    clock.advance(timedelta(hours=10))  # the SLA is 8 hours
    await item_services.decide_step(
        actor(tenant, "bob", "change-approver"),
        services,
        item_services.DecideStepInput(view.steps[0].id, item_services.Outcome.APPROVE),
    )
    draft = {**CHANGE_TEMPLATE, "steps": [{**CHANGE_TEMPLATE["steps"][0], "sla": "PT12H"}]}
    [replayed] = await simulation.replay_recent(
        actor(tenant, *ADMIN), services, "change-approval", parse_template(draft), 5
    )
    breach = next(d for d in replayed.differences if d.kind == "breach")
    assert (breach.before, breach.after) == (True, False)
    with pytest.raises(DomainError) as refused:
        await simulation.replay_recent(
            actor(tenant, "alice"), services, "change-approval", parse_template(draft), 5
        )
    assert refused.value.code is ErrorCode.FORBIDDEN


CHANGE_TEMPLATE: dict[str, Any] = {
    "key": "change-approval",
    "name": "Change approval",
    "kind": "approval",
    "steps": [
        {
            "key": "review",
            "assignees": {"roles": ["change-approver"]},
            "sla": "PT8H",
            "timeout_action": "escalate",
        }
    ],
}

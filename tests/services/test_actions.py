"""Reviewer and requester actions at the service level: who may do what, what each leaves in the
audit trail, and what a refusal leaves behind (nothing)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import pytest

from signoff.db import sql
from signoff.domain.actors import Actor, Principal
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.snapshot import HoldOption
from signoff.services import actions, engine, execution, overrides
from signoff.services import items as item_services
from signoff.services.context import ServiceContext
from signoff.services.engine import ItemView
from signoff.services.items import DecideStepInput, Outcome
from signoff.services.uow import Guards

CHANGE = {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy previous"}
EXCEPTION = {"policy": "MFA", "justification": "legacy box", "expires_on": "2026-12-31"}
PARTNER = {"partner": "ACME", "value_eur": 1000}
STRONG = "the vendor is down and customers are blocked, CAB chair agreed by phone"


def actor(tenant: str, user: str, *roles: str, groups: tuple[str, ...] = ()) -> Actor:
    return Actor(Principal(user, tenant, roles=frozenset(roles), groups=frozenset(groups)))


class World:
    """One tenant's people and a few helpers to act as them."""

    def __init__(self, tenant: str, ctx: ServiceContext) -> None:
        self.tenant, self.ctx = tenant, ctx

    def who(self, user: str, *roles: str, groups: tuple[str, ...] = ()) -> Actor:
        return actor(self.tenant, user, *roles, groups=groups)

    async def submit(
        self,
        template: str = "change-approval",
        payload: dict | None = None,
        user: str = "alice",
        **kwargs: Any,
    ) -> ItemView:
        return await item_services.submit_item(
            self.who(user),
            self.ctx,
            item_services.SubmitItemInput(
                template_key=template,
                title="Something",
                payload=CHANGE if payload is None else payload,
                **kwargs,
            ),
        )

    async def view(self, item_id: UUID) -> ItemView:
        return await engine.load_view(self.who("admin", "admin"), self.ctx, item_id)

    async def audit_seq(self) -> int:
        row = await sql.fetchrow(
            "SELECT coalesce(max(seq), 0) AS seq FROM audit_event WHERE tenant_id = $1", self.tenant
        )
        assert row is not None
        return int(row["seq"])

    async def events(self, item_id: UUID) -> list[dict[str, Any]]:
        rows = await sql.fetch(
            "SELECT * FROM audit_event WHERE tenant_id = $1 AND item_id = $2 ORDER BY seq",
            self.tenant,
            item_id,
        )
        return [sql.record_dict(r, ("data",)) for r in rows]

    async def last_event(self, item_id: UUID, action: str) -> dict[str, Any]:
        return [e for e in await self.events(item_id) if e["action"] == action][-1]

    async def decisions(self, item_id: UUID) -> list[dict[str, Any]]:
        rows = await sql.fetch(
            "SELECT * FROM decision WHERE item_id = $1 ORDER BY created_at, revision", item_id
        )
        return [dict(r) for r in rows]

    async def refused(self, item_id: UUID, call: Awaitable[Any]) -> DomainError:
        """Run a call that must be refused; prove it changed nothing."""
        before = await self.fingerprint(item_id)
        with pytest.raises(DomainError) as refusal:
            await call
        assert await self.fingerprint(item_id) == before, "a refused action changed something"
        return refusal.value

    async def fingerprint(self, item_id: UUID) -> tuple:
        view = await self.view(item_id)
        return (
            view.item.version,
            view.item.state,
            tuple((s.state, s.version, str(s.assignees), s.claimed_by) for s in view.steps),
            await self.audit_seq(),
            len(await self.decisions(item_id)),
        )

    async def decide(
        self,
        step_id: UUID,
        who: Actor,
        outcome: Outcome = Outcome.APPROVE,
        reason: str | None = None,
        **kwargs: Any,
    ) -> ItemView:
        return await item_services.decide_step(
            who,
            self.ctx,
            DecideStepInput(step_id=step_id, outcome=outcome, reason=reason, **kwargs),
        )


@pytest.fixture
def world(tenant: str, services: ServiceContext, demo_templates: Any) -> World:
    return World(tenant, services)


# --- claim / unclaim ---------------------------------------------------------------------------


async def test_claim_and_unclaim(world: World):
    view = await world.submit()
    step_id = view.steps[0].id
    bob, carol = world.who("bob", "change-approver"), world.who("carol", "change-approver")

    claimed = await actions.claim_step(bob, world.ctx, step_id, Guards())
    assert claimed.steps[0].claimed_by == "bob"
    assert (await world.last_event(view.id, "step.claim"))["actor_id"] == "bob"

    refusal = await world.refused(view.id, actions.claim_step(carol, world.ctx, step_id, Guards()))
    assert refusal.code == ErrorCode.ALREADY_CLAIMED
    refusal = await world.refused(
        view.id, actions.claim_step(world.who("mallory"), world.ctx, step_id, Guards())
    )
    assert refusal.code == ErrorCode.FORBIDDEN
    refusal = await world.refused(
        view.id, actions.unclaim_step(carol, world.ctx, step_id, Guards())
    )
    assert refusal.code == ErrorCode.FORBIDDEN

    released = await actions.unclaim_step(bob, world.ctx, step_id, Guards())
    assert released.steps[0].claimed_by is None
    unclaim = await world.last_event(view.id, "step.unclaim")
    assert unclaim["data"]["was"] == "bob"
    refusal = await world.refused(view.id, actions.unclaim_step(bob, world.ctx, step_id, Guards()))
    assert refusal.code == ErrorCode.INVALID_INPUT

    # now carol can claim, and an admin can release her claim
    await actions.claim_step(carol, world.ctx, step_id, Guards())
    await actions.unclaim_step(world.who("root", "admin"), world.ctx, step_id, Guards())
    assert (await world.view(view.id)).steps[0].claimed_by is None


async def test_a_decided_step_cannot_be_claimed(world: World):
    view = await world.submit()
    step_id = view.steps[0].id
    await world.decide(step_id, world.who("bob", "change-approver"))
    refusal = await world.refused(
        view.id,
        actions.claim_step(world.who("carol", "change-approver"), world.ctx, step_id, Guards()),
    )
    assert refusal.code == ErrorCode.ILLEGAL_TRANSITION


# --- reassign / delegate -----------------------------------------------------------------------


async def test_reassign_by_assignee_or_admin_with_before_and_after(world: World):
    view = await world.submit()
    step_id = view.steps[0].id
    bob = world.who("bob", "change-approver")
    await actions.claim_step(bob, world.ctx, step_id, Guards())

    refusal = await world.refused(
        view.id,
        actions.reassign_step(
            world.who("mallory"),
            world.ctx,
            actions.ReassignInput(step_id=step_id, users=("mallory",), reason="mine now"),
        ),
    )
    assert refusal.code == ErrorCode.FORBIDDEN
    refusal = await world.refused(
        view.id,
        actions.reassign_step(
            bob,
            world.ctx,
            actions.ReassignInput(step_id=step_id, users=("dave",)),
        ),
    )
    assert refusal.code == ErrorCode.JUSTIFICATION_REQUIRED

    after = await actions.reassign_step(
        bob,
        world.ctx,
        actions.ReassignInput(step_id=step_id, users=("dave",), reason="dave owns payments"),
    )
    step = after.steps[0]
    assert step.assignees.users == ("dave",) and step.assignees.roles == ()
    assert step.claimed_by is None
    event = await world.last_event(view.id, "step.reassign")
    assert event["data"]["before"]["roles"] == ["change-approver"]
    assert event["data"]["after"]["users"] == ["dave"]
    assert event["reason"] == "dave owns payments" and event["actor_id"] == "bob"

    # bob is no longer an assignee; an admin who is not one may still reassign
    refusal = await world.refused(view.id, world.decide(step_id, bob))
    assert refusal.code == ErrorCode.FORBIDDEN
    await actions.reassign_step(
        world.who("root", "admin"),
        world.ctx,
        actions.ReassignInput(step_id=step_id, groups=("release",), reason="release team"),
    )
    assert (await world.view(view.id)).steps[0].assignees.groups == ("release",)
    done = await world.decide(step_id, world.who("erin", groups=("release",)))
    assert done.state.value == "approved"


async def test_delegate_acts_for_the_delegator_and_it_is_recorded(world: World):
    view = await world.submit()
    step_id = view.steps[0].id
    await actions.reassign_step(
        world.who("bob", "change-approver"),
        world.ctx,
        actions.ReassignInput(step_id=step_id, delegate_to="erin", reason="on leave"),
    )
    delegated = await world.last_event(view.id, "step.reassign")
    assert delegated["data"] == {
        "step": "review",
        "from": "active",
        "to": "active",
        "delegate": "erin",
        "delegator": "bob",
    }
    done = await world.decide(step_id, world.who("erin"))
    assert done.state.value == "approved"
    [decision] = await world.decisions(view.id)
    assert (decision["actor_id"], decision["acting_for"]) == ("erin", "bob")
    approve = await world.last_event(view.id, "step.approve")
    assert (approve["actor_id"], approve["acting_for"]) == ("erin", "bob")


async def test_a_requester_cannot_delegate_a_seat_of_their_own_item(world: World):
    # alice is a change approver and the requester: she holds no seat to hand to erin
    view = await world.submit(user="alice")
    step_id = view.steps[0].id
    refusal = await world.refused(
        view.id,
        actions.reassign_step(
            world.who("alice", "change-approver"),
            world.ctx,
            actions.ReassignInput(step_id=step_id, delegate_to="erin", reason="away"),
        ),
    )
    assert refusal.code == ErrorCode.SEPARATION_OF_DUTIES
    refusal = await world.refused(view.id, world.decide(step_id, world.who("erin")))
    assert refusal.code == ErrorCode.FORBIDDEN


async def test_one_person_one_seat_also_through_a_delegation(world: World):
    view = await world.submit("exception-request", EXCEPTION, user="zed")
    step_id = view.steps[0].id
    bob = world.who("bob")
    await world.decide(step_id, bob, reason="compensating control exists")
    refusal = await world.refused(view.id, world.decide(step_id, bob, reason="again"))
    assert refusal.code == ErrorCode.SEPARATION_OF_DUTIES
    # bob's seat is filled: there is nothing left for him to hand to erin
    refusal = await world.refused(
        view.id,
        actions.reassign_step(
            bob,
            world.ctx,
            actions.ReassignInput(step_id=step_id, delegate_to="erin", reason="away"),
        ),
    )
    assert refusal.code == ErrorCode.ILLEGAL_TRANSITION
    # carol's seat is not: erin may fill it for her, once, and never a second seat
    await actions.reassign_step(
        world.who("carol"),
        world.ctx,
        actions.ReassignInput(step_id=step_id, delegate_to="erin", reason="away"),
    )
    refusal = await world.refused(
        view.id,
        actions.reassign_step(
            world.who("alice"),
            world.ctx,
            actions.ReassignInput(step_id=step_id, delegate_to="erin", reason="me too"),
        ),
    )
    assert refusal.code == ErrorCode.SEPARATION_OF_DUTIES
    # a delegate cannot delegate further
    refusal = await world.refused(
        view.id,
        actions.reassign_step(
            world.who("erin"),
            world.ctx,
            actions.ReassignInput(step_id=step_id, delegate_to="fred", reason="me too"),
        ),
    )
    assert refusal.code == ErrorCode.FORBIDDEN
    done = await world.decide(step_id, world.who("erin"), reason="agree")
    assert done.state.value == "approved"
    assert [s.acting_for for s in done.steps[0].seats if s.filled] == [None, "carol"]


async def test_requester_cannot_approve_own_item(world: World):
    view = await world.submit(user="alice")
    refusal = await world.refused(
        view.id, world.decide(view.steps[0].id, world.who("alice", "change-approver"))
    )
    assert refusal.code == ErrorCode.SEPARATION_OF_DUTIES


# --- cancel ------------------------------------------------------------------------------------


async def test_cancel_by_requester_or_admin_with_a_reason(world: World):
    view = await world.submit(user="alice")
    refusal = await world.refused(
        view.id,
        actions.cancel_item(
            world.who("bob", "change-approver"), world.ctx, view.id, "not needed", Guards()
        ),
    )
    assert refusal.code == ErrorCode.FORBIDDEN
    refusal = await world.refused(
        view.id, actions.cancel_item(world.who("alice"), world.ctx, view.id, "  ", Guards())
    )
    assert refusal.code == ErrorCode.JUSTIFICATION_REQUIRED

    cancelled = await actions.cancel_item(
        world.who("alice"), world.ctx, view.id, "change postponed", Guards()
    )
    assert cancelled.state.value == "cancelled"
    assert [s.state for s in cancelled.steps] == ["cancelled"]
    event = await world.last_event(view.id, "item.cancel")
    assert event["reason"] == "change postponed"
    refusal = await world.refused(
        view.id, actions.cancel_item(world.who("alice"), world.ctx, view.id, "again", Guards())
    )
    assert refusal.code == ErrorCode.ILLEGAL_TRANSITION

    other = await world.submit(user="alice")
    by_admin = await actions.cancel_item(
        world.who("root", "admin"), world.ctx, other.id, "duplicate of another change", Guards()
    )
    assert by_admin.state.value == "cancelled"


# --- override ----------------------------------------------------------------------------------


async def test_override_needs_role_justification_and_not_the_requester(world: World):
    view = await world.submit(user="alice")
    step_id = view.steps[0].id

    def override(who: Actor, text: str) -> Any:
        return overrides.override_step(who, world.ctx, overrides.OverrideInput(step_id, text))

    refusal = await world.refused(view.id, override(world.who("bob", "change-approver"), STRONG))
    assert refusal.code == ErrorCode.FORBIDDEN
    short = "x" * (world.ctx.settings.override_min_justification - 1)
    refusal = await world.refused(view.id, override(world.who("oscar", "override"), short))
    assert refusal.code == ErrorCode.JUSTIFICATION_REQUIRED
    refusal = await world.refused(view.id, override(world.who("alice", "override"), STRONG))
    assert refusal.code == ErrorCode.SEPARATION_OF_DUTIES

    done = await override(
        world.who("oscar", "override"), "x" * world.ctx.settings.override_min_justification
    )
    assert done.state.value == "approved"
    assert done.steps[0].state == "approved"
    [decision] = await world.decisions(view.id)
    assert (decision["actor_id"], decision["outcome"]) == ("oscar", "override")
    event = await world.last_event(view.id, "step.override")
    assert event["actor_id"] == "oscar"
    assert event["reason"] == "x" * world.ctx.settings.override_min_justification


async def test_override_of_a_sensitive_step_needs_a_second_person(world: World):
    view = await world.submit("exception-request", EXCEPTION, user="zed")
    step_id = view.steps[0].id
    assert view.steps[0].sensitive is True
    oscar, paula = world.who("oscar", "override"), world.who("paula", "admin")

    requested = await overrides.override_step(
        oscar, world.ctx, overrides.OverrideInput(step_id, STRONG)
    )
    assert requested.state.value == "pending"
    assert requested.steps[0].state == "active"
    assert [d["outcome"] for d in await world.decisions(view.id)] == ["override_requested"]
    assert (await world.last_event(view.id, "step.override_requested"))["actor_id"] == "oscar"

    refusal = await world.refused(
        view.id,
        overrides.override_step(
            oscar, world.ctx, overrides.OverrideInput(step_id, STRONG + " (again)")
        ),
    )
    assert refusal.code == ErrorCode.SEPARATION_OF_DUTIES

    done = await overrides.override_step(
        paula, world.ctx, overrides.OverrideInput(step_id, STRONG + ", confirmed")
    )
    assert done.state.value == "approved"
    assert done.steps[0].state == "approved"
    event = await world.last_event(view.id, "step.override")
    assert event["actor_id"] == "paula"
    assert event["data"]["requested_by"] == "oscar"
    assert event["data"]["confirmed_by"] == "paula"


async def test_override_brings_a_rejected_item_to_approved(world: World):
    view = await world.submit(user="alice")
    step_id = view.steps[0].id
    rejected = await world.decide(
        step_id, world.who("bob", "change-approver"), Outcome.REJECT, "rollback untested"
    )
    assert rejected.state.value == "rejected"
    done = await overrides.override_step(
        world.who("oscar", "override"), world.ctx, overrides.OverrideInput(step_id, STRONG)
    )
    assert done.state.value == "approved"
    assert done.steps[0].state == "approved"
    actions_ = [e["action"] for e in await world.events(view.id)]
    assert actions_[-2:] == ["step.override", "item.override"]
    item_event = await world.last_event(view.id, "item.override")
    assert item_event["data"]["from"] == "rejected" and item_event["data"]["to"] == "approved"


# --- guards: versions, idempotency -------------------------------------------------------------


async def test_stale_expected_version_is_refused_and_changes_nothing(world: World):
    view = await world.submit()
    step_id = view.steps[0].id
    stale = view.item.version
    await actions.claim_step(world.who("bob", "change-approver"), world.ctx, step_id, Guards())
    refusal = await world.refused(
        view.id,
        world.decide(step_id, world.who("carol", "change-approver"), expected_version=stale),
    )
    assert refusal.code == ErrorCode.VERSION_CONFLICT
    assert refusal.details["current_version"] == stale + 1
    refusal = await world.refused(
        view.id,
        actions.cancel_item(
            world.who("alice"), world.ctx, view.id, "stale", Guards(expected_version=stale)
        ),
    )
    assert refusal.code == ErrorCode.VERSION_CONFLICT
    current = (await world.view(view.id)).item.version
    done = await world.decide(
        step_id, world.who("carol", "change-approver"), expected_version=current
    )
    assert done.state.value == "approved"


async def replays_once(
    world: World, item_id: UUID | None, call: Callable[[], Awaitable[ItemView]]
) -> ItemView:
    """Run a keyed call twice: the second returns the first result and writes nothing."""
    first = await call()
    item_id = item_id or first.id
    seq, version = await world.audit_seq(), (await world.view(item_id)).item.version
    decisions = len(await world.decisions(item_id))
    second = await call()
    assert second.id == first.id
    assert second.state == first.state
    assert await world.audit_seq() == seq, "a replay wrote audit events"
    assert (await world.view(item_id)).item.version == version, "a replay changed the item"
    assert len(await world.decisions(item_id)) == decisions
    return second


async def test_every_mutation_replays_by_idempotency_key(world: World):
    ctx = world.ctx
    alice, bob = world.who("alice"), world.who("bob", "change-approver")
    erin = world.who("erin")
    admin, oscar = world.who("root", "admin"), world.who("oscar", "override")

    # submit
    item = await replays_once(world, None, lambda: world.submit(idempotency_key="submit-1"))
    step_id = item.steps[0].id
    # claim, unclaim
    await replays_once(
        world, item.id, lambda: actions.claim_step(bob, ctx, step_id, Guards("claim-1"))
    )
    await replays_once(
        world, item.id, lambda: actions.unclaim_step(bob, ctx, step_id, Guards("unclaim-1"))
    )
    # reassign, delegate
    await replays_once(
        world,
        item.id,
        lambda: actions.reassign_step(
            admin,
            ctx,
            actions.ReassignInput(
                step_id=step_id, roles=("change-approver",), reason="reset", guards=Guards("ra-1")
            ),
        ),
    )
    await replays_once(
        world,
        item.id,
        lambda: actions.reassign_step(
            bob,
            ctx,
            actions.ReassignInput(
                step_id=step_id, delegate_to="erin", reason="away", guards=Guards("dl-1")
            ),
        ),
    )
    # request changes, resubmit
    await replays_once(
        world,
        item.id,
        lambda: world.decide(
            step_id, erin, Outcome.REQUEST_CHANGES, "add a window", idempotency_key="rc-1"
        ),
    )
    await replays_once(
        world,
        item.id,
        lambda: actions.resubmit_item(
            alice,
            ctx,
            actions.ResubmitInput(
                item_id=item.id, payload={**CHANGE, "window": "sat"}, guards=Guards("rs-1")
            ),
        ),
    )
    # approve
    done = await replays_once(
        world, item.id, lambda: world.decide(step_id, bob, idempotency_key="ap-1")
    )
    assert done.state.value == "approved"

    # reject, override
    other = await world.submit()
    other_step = other.steps[0].id
    await replays_once(
        world,
        other.id,
        lambda: world.decide(other_step, bob, Outcome.REJECT, "no", idempotency_key="rj-1"),
    )
    await replays_once(
        world,
        other.id,
        lambda: overrides.override_step(
            oscar, ctx, overrides.OverrideInput(other_step, STRONG, Guards("ov-1"))
        ),
    )
    # cancel
    third = await world.submit()
    await replays_once(
        world,
        third.id,
        lambda: actions.cancel_item(alice, ctx, third.id, "not needed", Guards("cx-1")),
    )
    # a key reused for a different request is refused
    refusal = await world.refused(
        third.id, actions.cancel_item(alice, ctx, third.id, "another reason", Guards("cx-1"))
    )
    assert refusal.code == ErrorCode.IDEMPOTENCY_KEY_REUSED


async def test_plan_mutations_replay_by_idempotency_key(world: World):
    ctx = world.ctx
    agent, sam = world.who("agent"), world.who("sam", "agent-supervisor")
    plan = {
        "steps": [
            {"key": "a", "action": "export", "risk": "medium", "params": {"n": 1}},
            {
                "key": "b",
                "action": "publish",
                "risk": "medium",
                "depends_on": [{"step": "a", "effect": "blocks", "resolution": "ask_user"}],
            },
            {"key": "c", "action": "notify", "risk": "medium"},
            {"key": "d", "action": "archive", "risk": "medium"},
        ]
    }
    item = await world.submit("agent-plan", {}, user="agent", plan=plan)
    steps = {s.key: s.id for s in item.steps}
    await replays_once(
        world,
        item.id,
        lambda: actions.modify_step_params(
            sam, ctx, actions.ModifyParamsInput(steps["a"], {"n": 2}, "two", Guards("md-1"))
        ),
    )
    await world.decide(steps["a"], sam, Outcome.REJECT, "not now")
    await replays_once(
        world,
        item.id,
        lambda: actions.resolve_held_step(
            agent,
            ctx,
            actions.ResolveHeldInput(steps["b"], HoldOption.SKIP, "skip it", guards=Guards("rh-1")),
        ),
    )
    await replays_once(
        world, item.id, lambda: actions.approve_all(sam, ctx, item.id, "fine", Guards("aa-1"))
    )
    assert (await world.view(item.id)).state.value == "approved"
    report = execution.ReportInput
    await replays_once(
        world,
        item.id,
        lambda: execution.report_execution(
            agent, ctx, report(steps["c"], execution.ExecutionStatus.RUNNING, guards=Guards("r-1"))
        ),
    )
    await replays_once(
        world,
        item.id,
        lambda: execution.report_execution(
            agent,
            ctx,
            report(
                steps["c"], execution.ExecutionStatus.FAILED, error="boom", guards=Guards("r-2")
            ),
        ),
    )
    await replays_once(
        world,
        item.id,
        lambda: execution.recover_step(
            agent, ctx, steps["c"], execution.Recovery.RETRY, "again", Guards("rc-1")
        ),
    )
    view = await world.view(item.id)
    assert next(s for s in view.steps if s.key == "c").attempts == 2


# --- limits ------------------------------------------------------------------------------------


async def test_payload_too_large_is_refused_clearly(world: World):
    small = ServiceContext(
        settings=dataclasses.replace(world.ctx.settings, max_payload_bytes=200),
        clock=world.ctx.clock,
    )
    before = await world.audit_seq()
    with pytest.raises(DomainError) as refusal:
        await item_services.submit_item(
            world.who("alice"),
            small,
            item_services.SubmitItemInput(
                template_key="change-approval",
                title="Big",
                payload={**CHANGE, "rollback_plan": "r" * 300},
            ),
        )
    assert refusal.value.code in (ErrorCode.INVALID_INPUT, ErrorCode.LIMIT_EXCEEDED)
    assert any("limit is 200" in p.message and p.path == "payload" for p in refusal.value.problems)
    assert await world.audit_seq() == before


async def test_open_items_per_requester_limit(world: World):
    limited = ServiceContext(
        settings=dataclasses.replace(world.ctx.settings, max_open_items_per_requester=2),
        clock=world.ctx.clock,
    )
    limited_world = World(world.tenant, limited)
    first = await limited_world.submit()
    await limited_world.submit()
    before = await world.audit_seq()
    with pytest.raises(DomainError) as refusal:
        await limited_world.submit()
    assert refusal.value.code == ErrorCode.LIMIT_EXCEEDED
    assert "limit 2" in refusal.value.message
    assert await world.audit_seq() == before
    # somebody else is not limited by alice's open items
    await limited_world.submit(user="bob")
    # once one is decided, alice may submit again
    await limited_world.decide(first.steps[0].id, world.who("carol", "change-approver"))
    await limited_world.submit()


async def test_plan_with_too_many_steps_is_refused(world: World):
    few = ServiceContext(
        settings=dataclasses.replace(world.ctx.settings, max_steps_per_template=3),
        clock=world.ctx.clock,
    )
    plan = {"steps": [{"key": f"s{i}", "action": "noop", "risk": "medium"} for i in range(4)]}
    with pytest.raises(DomainError) as refusal:
        await item_services.submit_item(
            world.who("agent"),
            few,
            item_services.SubmitItemInput(
                template_key="agent-plan", title="Long plan", payload={}, plan=plan
            ),
        )
    assert refusal.value.code in (ErrorCode.TEMPLATE_INVALID, ErrorCode.LIMIT_EXCEEDED)
    assert refusal.value.problems


async def test_override_of_one_step_in_a_pending_chain_only_skips_that_step(world: World):
    view = await world.submit("partner-approval", PARTNER, user="rita")
    manager = view.steps[0].id
    done = await overrides.override_step(
        world.who("oscar", "override"), world.ctx, overrides.OverrideInput(manager, STRONG)
    )
    assert done.state.value == "pending"
    assert [s.state for s in done.steps] == ["approved", "active", "waiting"]


async def test_override_of_a_rejected_chain_never_approves_unreviewed_steps(world: World):
    """Overriding the manager's rejection must not approve an item whose legal and (sensitive,
    four-eyes) executive reviews never happened: an approved item has no cancelled review."""
    view = await world.submit("partner-approval", PARTNER, user="rita")
    manager = view.steps[0].id
    rejected = await world.decide(manager, world.who("mona", "manager"), Outcome.REJECT, "no")
    assert rejected.state.value == "rejected"
    assert [s.state for s in rejected.steps] == ["rejected", "cancelled", "cancelled"]
    try:
        after = await overrides.override_step(
            world.who("oscar", "override"), world.ctx, overrides.OverrideInput(manager, STRONG)
        )
    except DomainError:
        after = await world.view(view.id)
    if after.state.value == "approved":
        assert [s.state for s in after.steps] == ["approved", "approved", "approved"], (
            "item approved by overriding one step while the others were never reviewed"
        )

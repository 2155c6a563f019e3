"""The fan-out judges an event once for every caller its item does not name by user id: that
shared judgement is, for every caller, exactly the one the inbox, read-access and redaction
rules give for that caller alone (every caller of a small world, against real rows: items with
user-named and role-named steps, decisions, a delegation, a reassignment and a claim)."""

from __future__ import annotations

from typing import Any

from signoff.api.live_types import BatchState
from signoff.db import audit as audit_repo
from signoff.domain.actors import Principal
from signoff.realtime.hub import FeedBatch
from signoff.services import actions
from signoff.services.uow import Guards
from tests.conftest import actor
from tests.realtime.conftest import approve, submit

USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "mallory", "trent"]
ROLES = ["change-approver", "ciso", "auditor"]
GROUPS = ["change-managers", "engineering"]


async def _events(tenant: str) -> FeedBatch:
    # as the tenant's reader reads them
    return FeedBatch(await audit_repo.events_after(tenant, 0, 1000))


async def small_world(services: Any, tenant: str) -> None:
    """Items with user-named and role-named steps, decisions, a delegation, a reassignment
    and a claim (the demo templates published)."""
    # user-named steps (exception-request: alice, bob, carol), role-named ones, decisions
    change = await submit(services, tenant, "change-approval", "change")
    await approve(services, tenant, change, "bob", "change-approver")
    exception = await submit(services, tenant, "exception-request", "exception", user="erin")
    await approve(services, tenant, exception, "alice")
    other = await submit(services, tenant, "exception-request", "other")
    step = next(s for s in other.steps if s.state == "active")
    await actions.reassign_step(
        actor(tenant, "carol"),
        services,
        actions.ReassignInput(step_id=step.id, delegate_to="frank", reason="away"),
    )
    moved = await submit(services, tenant, "change-approval", "moved")
    step = next(s for s in moved.steps if s.state == "active")
    await actions.reassign_step(
        actor(tenant, "admin", "admin"),
        services,
        actions.ReassignInput(step_id=step.id, users=("trent",), reason="cover"),
    )
    # a claim by a reviewer the step names by role only: MINE for them, OTHERS for the rest
    claimed = await submit(services, tenant, "change-approval", "claimed")
    step = next(s for s in claimed.steps if s.state == "active")
    await actions.claim_step(actor(tenant, "bob", "change-approver"), services, step.id, Guards())


async def test_a_shared_judgement_is_each_callers_own(
    services: Any, tenant: str, demo_templates: Any
) -> None:
    await small_world(services, tenant)
    batch = await _events(tenant)
    state = await BatchState.of(batch, tenant, services)
    await state.prepare_redaction()
    events = [e for e in batch if e["item_id"] in state.items]
    assert len(events) > 8

    # Every caller of a small world, judged in one order and in the reverse (a wrong sharing
    # between two callers shows in one of them), each against the rules for that caller alone.
    callers = [
        Principal(user, tenant, frozenset(roles), frozenset(groups))
        for user in USERS
        for roles in subsets(ROLES)
        for groups in subsets(GROUPS)
    ] + [Principal("bob", "elsewhere", frozenset(ROLES), frozenset(GROUPS))]
    for order in (callers, callers[::-1]):
        state._judged.clear()
        state._named.clear()
        for principal in order:
            for event in events:
                assert state.judge(event, principal) == state._judge(event, principal), (
                    principal,
                    event["action"],
                )
    # the sharing is real: nobody names mallory, so she is judged with the others of her roles
    assert not any(key[1] == "mallory" for key in state._judged)
    assert len(state._judged) < len(callers) * len(events)


def subsets(names: list[str]) -> list[tuple[str, ...]]:
    return [
        tuple(n for k, n in enumerate(names) if mask >> k & 1) for mask in range(2 ** len(names))
    ]

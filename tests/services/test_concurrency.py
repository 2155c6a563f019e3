"""Concurrent conflicting decisions: each call its own transaction on the pool, really at once.
Exactly the legal number succeed; every other call gets a clear DomainError and no trace."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any
from uuid import UUID

from signoff.db import items as items_repo
from signoff.db import sql
from signoff.domain.actors import Actor, Principal
from signoff.domain.errors import DomainError, ErrorCode
from signoff.services import items as item_services
from signoff.services.items import DecideStepInput, Outcome
from signoff.services.templates import save_template

PAYLOAD = {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy previous"}
VOTERS = [f"voter{i:02d}" for i in range(50)]


def actor(tenant: str, user: str, *roles: str) -> Actor:
    return Actor(Principal(user, tenant, roles=frozenset(roles)))


async def submit(tenant: str, services: Any, template: str, payload: dict[str, Any]) -> Any:
    return await item_services.submit_item(
        actor(tenant, "requester"),
        services,
        item_services.SubmitItemInput(template_key=template, title="Contested", payload=payload),
    )


async def outcome_of(call: Any) -> str:
    """'ok', or the error code of the refusal (anything else propagates and fails the test)."""
    try:
        await call
    except DomainError as exc:
        return exc.code.value
    return "ok"


async def decisions_of(item_id: UUID) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in await sql.fetch(
            "SELECT actor_id, outcome FROM decision WHERE item_id = $1", item_id
        )
    ]


async def audit_actions(tenant: str, item_id: UUID) -> Counter[str]:
    rows = await sql.fetch(
        "SELECT action FROM audit_event WHERE tenant_id = $1 AND item_id = $2", tenant, item_id
    )
    return Counter(r["action"] for r in rows)


class LockProbe:
    """Counts callers waiting for (or holding) the item row lock at the same time."""

    def __init__(self, monkeypatch: Any) -> None:
        self.inside = self.most = 0
        original = items_repo.lock_for_change

        async def lock_for_change(tenant_id: str, **which: Any) -> Any:
            self.inside += 1
            self.most = max(self.most, self.inside)
            try:
                return await original(tenant_id, **which)
            finally:
                self.inside -= 1

        monkeypatch.setattr(items_repo, "lock_for_change", lock_for_change)


async def test_fifty_conflicting_decisions_on_an_any_step_one_wins(
    tenant, services, demo_templates, monkeypatch
):
    view = await submit(tenant, services, "change-approval", PAYLOAD)
    probe = LockProbe(monkeypatch)
    step_id = view.steps[0].id

    def decide(i: int, user: str) -> Any:
        # half approve, half reject: they conflict, not just race
        outcome = Outcome.APPROVE if i % 2 == 0 else Outcome.REJECT
        return item_services.decide_step(
            actor(tenant, user, "change-approver"),
            services,
            DecideStepInput(step_id=step_id, outcome=outcome, reason=f"vote of {user}"),
        )

    results = await asyncio.gather(*(outcome_of(decide(i, u)) for i, u in enumerate(VOTERS)))
    assert Counter(results) == {"ok": 1, "ILLEGAL_TRANSITION": 49}
    # they really overlapped: many transactions queued on the row lock at once
    assert probe.most > 5

    winner = VOTERS[results.index("ok")]
    [decision] = await decisions_of(view.id)
    assert decision["actor_id"] == winner
    won_by_approval = VOTERS.index(winner) % 2 == 0
    assert decision["outcome"] == ("approve" if won_by_approval else "reject")
    final = await item_services.get_item(actor(tenant, "requester"), services, view.id)
    assert final.steps[0].state == ("approved" if won_by_approval else "rejected")
    assert final.state.value == ("approved" if won_by_approval else "rejected")
    actions = await audit_actions(tenant, view.id)
    assert actions["step.approve"] + actions["step.reject"] == 1
    assert actions["item.approve"] + actions["item.reject"] == 1
    assert actions["step.vote"] == 0


async def test_fifty_approvals_on_a_three_of_fifty_step_exactly_three_count(
    tenant, services, demo_templates
):
    await save_template(
        actor(tenant, "admin", "admin"),
        services,
        {
            "key": "board-vote",
            "name": "Board vote",
            "kind": "approval",
            "steps": [
                {
                    "key": "vote",
                    "name": "Vote",
                    "assignees": {"users": VOTERS},
                    "quorum": {"mode": "n_of_m", "n": 3},
                    "risk": "medium",
                }
            ],
        },
        publish=True,
    )
    view = await submit(tenant, services, "board-vote", {})
    step_id = view.steps[0].id
    results = await asyncio.gather(
        *(
            outcome_of(
                item_services.decide_step(
                    actor(tenant, user),
                    services,
                    DecideStepInput(step_id=step_id, outcome=Outcome.APPROVE),
                )
            )
            for user in VOTERS
        )
    )
    assert Counter(results) == {"ok": 3, "ILLEGAL_TRANSITION": 47}
    decisions = await decisions_of(view.id)
    winners = {VOTERS[i] for i, r in enumerate(results) if r == "ok"}
    assert {d["actor_id"] for d in decisions} == winners
    assert [d["outcome"] for d in decisions] == ["approve"] * 3
    final = await item_services.get_item(actor(tenant, "requester"), services, view.id)
    assert final.steps[0].state == "approved"
    assert final.state.value == "approved"
    actions = await audit_actions(tenant, view.id)
    assert actions["step.vote"] == 2
    assert actions["step.approve"] == 1
    assert actions["item.approve"] == 1


async def test_twenty_concurrent_submits_with_one_key_make_one_item(
    tenant, services, demo_templates
):
    requester = actor(tenant, "requester")
    inp = item_services.SubmitItemInput(
        template_key="change-approval", title="Once only", payload=PAYLOAD, idempotency_key="k-1"
    )
    views = await asyncio.gather(
        *(item_services.submit_item(requester, services, inp) for _ in range(20))
    )
    assert len({v.id for v in views}) == 1
    row = await sql.fetchrow("SELECT count(*) AS n FROM workflow_item WHERE tenant_id = $1", tenant)
    assert row is not None and row["n"] == 1
    actions = await audit_actions(tenant, views[0].id)
    assert actions["item.submitted"] == 1


async def test_concurrent_approve_and_reject_one_winner(tenant, services, demo_templates):
    view = await submit(tenant, services, "change-approval", PAYLOAD)
    step_id = view.steps[0].id
    approve = item_services.decide_step(
        actor(tenant, "bob", "change-approver"),
        services,
        DecideStepInput(step_id=step_id, outcome=Outcome.APPROVE),
    )
    reject = item_services.decide_step(
        actor(tenant, "carol", "change-approver"),
        services,
        DecideStepInput(step_id=step_id, outcome=Outcome.REJECT, reason="too risky"),
    )
    results = await asyncio.gather(outcome_of(approve), outcome_of(reject))
    assert sorted(results) == ["ILLEGAL_TRANSITION", "ok"]
    final = await item_services.get_item(actor(tenant, "requester"), services, view.id)
    expected = "approved" if results[0] == "ok" else "rejected"
    assert final.state.value == expected
    assert final.steps[0].state == expected
    assert len(await decisions_of(view.id)) == 1


async def test_concurrent_decisions_with_one_expected_version_one_wins(
    tenant, services, demo_templates
):
    """Two reviewers acting on the same copy of a 2-of-3 step: the second is stale."""
    view = await submit(
        tenant,
        services,
        "exception-request",
        {
            "policy": "MFA",
            "justification": "legacy box",
            "expires_on": "2026-12-31",
        },
    )
    step_id, version = view.steps[0].id, view.item.version
    calls = [
        item_services.decide_step(
            actor(tenant, user),
            services,
            DecideStepInput(
                step_id=step_id, outcome=Outcome.APPROVE, reason="ok", expected_version=version
            ),
        )
        for user in ("alice", "bob")
    ]
    results = await asyncio.gather(*(outcome_of(c) for c in calls))
    assert sorted(results) == [ErrorCode.VERSION_CONFLICT.value, "ok"]
    assert len(await decisions_of(view.id)) == 1

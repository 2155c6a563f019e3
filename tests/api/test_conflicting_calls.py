"""Concurrent conflicting calls of the admin and link mutations, through GraphQL: each set of
calls that cannot all apply has exactly one winner, the others get a typed error and change
nothing; what has no version to conflict on (a permission's grant) is serialised, every
change audited with what it replaced, so the trail tells the same story as the table.

Replays by key (same result, nothing written again) are in test_mutation_guards.py, which
covers every mutation. The claim and release reasons are audited (the last test)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from signoff.db import sql
from tests.api.test_mutation_guards import (
    ADMIN,
    BOB,
    ITEM,
    World,
    _alert_rule,
    _decision_link,
    _open_alert,
)

N = 6
RULE = "alertRule { id threshold version }"


@pytest.fixture
async def world(gql: Any, clock: Any, demo_templates: Any, services: Any) -> World:
    return World(gql, clock, services)


async def call(w: World, name: str, input_type: str, select: str, inp: Any, who: Any) -> Any:
    query = (
        f"mutation($i: {input_type}!) {{ {name}(input: $i) "
        f"{{ {select} errors {{ code field }} }} }}"
    )
    return await w.run(query, {"i": inp}, who)


async def actions(w: World, *names: str) -> list[dict[str, Any]]:
    rows = await sql.fetch(
        "SELECT action, actor_id, reason, data FROM audit_event WHERE tenant_id = $1"
        " AND action = ANY($2::text[]) ORDER BY seq",
        w.gql.tenant,
        list(names),
    )
    return [sql.record_dict(r, ("data",)) for r in rows]


async def save_rule(w: World, inp: dict[str, Any]) -> Any:
    return await call(w, "saveAlertRule", "SaveAlertRuleInput", RULE, inp, ADMIN)


def codes(results: list[dict[str, Any]]) -> list[str]:
    return sorted(r["errors"][0]["code"] if r["errors"] else "OK" for r in results)


async def test_one_of_concurrent_confirmations_of_a_link_decides(world: World) -> None:
    inp = await _decision_link(world)
    before = len(await actions(world, "decision_link.used", "step.approve"))
    results = await asyncio.gather(
        *(
            call(
                world,
                "confirmDecisionLink",
                "ConfirmDecisionLinkInput",
                "itemState",
                {**inp, "reason": f"r{i}", "guards": {"idempotencyKey": f"link-{i}"}},
                BOB,
            )
            for i in range(N)
        )
    )
    assert codes(results) == ["LINK_USED"] * (N - 1) + ["OK"]
    written = await actions(world, "decision_link.used", "step.approve")
    assert len(written) - before == 2  # the link's use and the step's approval, once


async def test_one_of_concurrent_replacements_of_a_rule_at_one_version_wins(world: World) -> None:
    created = await save_rule(world, await _alert_rule(world))
    rule = created["alertRule"]
    base = {"id": rule["id"], "name": "contested", "ruleKind": "BACKLOG", "roles": ["ops"]}
    results = await asyncio.gather(
        *(
            save_rule(world, {**base, "threshold": 10 + i, "guards": {"expectedVersion": 1}})
            for i in range(N)
        )
    )
    assert codes(results) == ["OK"] + ["VERSION_CONFLICT"] * (N - 1)
    (winner,) = [r["alertRule"] for r in results if not r["errors"]]
    assert winner["version"] == 2
    updated = await actions(world, "alert_rule.updated")
    assert len(updated) == 1 and updated[0]["data"]["after"]["threshold"] == winner["threshold"]
    rules = await world.gql.data(
        "query { alertRules { id threshold version } }", as_user=ADMIN[0], roles=ADMIN[1]
    )
    (stored,) = [r for r in rules["alertRules"] if r["id"] == rule["id"]]
    assert stored == {"id": rule["id"], "threshold": winner["threshold"], "version": 2}


async def test_one_of_concurrent_creations_of_one_name_wins(world: World) -> None:
    inp = await _alert_rule(world)
    results = await asyncio.gather(
        *(
            save_rule(world, {**inp, "threshold": i, "guards": {"idempotencyKey": f"create-{i}"}})
            for i in range(N)
        )
    )
    assert codes(results) == ["INVALID_INPUT"] * (N - 1) + ["OK"]
    assert {e["field"] for r in results for e in r["errors"]} == {"name"}
    created = [
        e for e in await actions(world, "alert_rule.created") if e["data"]["name"] == inp["name"]
    ]
    assert len(created) == 1


async def test_one_of_concurrent_acknowledgements_wins(world: World) -> None:
    inp = await _open_alert(world)
    admins = [(f"admin-{i}", ("admin",)) for i in range(N)]
    results = await asyncio.gather(
        *(
            call(
                world,
                "acknowledgeAlert",
                "AcknowledgeAlertInput",
                "alert { acknowledgedBy acknowledgement }",
                {"id": inp["id"], "note": f"mine, {who[0]}"},
                who,
            )
            for who in admins
        )
    )
    assert codes(results) == ["ILLEGAL_TRANSITION"] * (N - 1) + ["OK"]
    (winner,) = [r["alert"] for r in results if not r["errors"]]
    assert winner["acknowledgement"] == f"mine, {winner['acknowledgedBy']}"
    (event,) = await actions(world, "alert.acknowledged")
    assert (event["actor_id"], event["reason"]) == (
        winner["acknowledgedBy"],
        winner["acknowledgement"],
    )


@pytest.mark.parametrize("first", ["from the default", "from a stored grant"])
async def test_concurrent_grants_are_serialised_and_each_audited_with_what_it_replaced(
    world: World, first: str
) -> None:
    grant = "grant { grantees }"
    if first == "from a stored grant":
        inp = {"permission": "LEGAL_HOLD", "grantees": ["legal"], "reason": "start"}
        await call(world, "setPermission", "SetPermissionInput", grant, inp, ADMIN)
    before = await actions(world, "permission.set")
    results = await asyncio.gather(
        *(
            call(
                world,
                "setPermission",
                "SetPermissionInput",
                grant,
                {"permission": "LEGAL_HOLD", "grantees": [f"team-{i}"], "reason": f"r{i}"},
                ADMIN,
            )
            for i in range(N)
        )
    )
    assert codes(results) == ["OK"] * N
    events = (await actions(world, "permission.set"))[len(before) :]
    assert sorted(e["reason"] for e in events) == sorted(f"r{i}" for i in range(N))
    # a serial history: each change replaced what the previous one set
    previous = before[-1]["data"]["after"] if before else None
    for event in events:
        assert event["data"]["before"] == previous, events
        previous = event["data"]["after"]
    table = await world.gql.data(
        "query { permissions { permission grantees templateKey } }",
        as_user=ADMIN[0],
        roles=ADMIN[1],
    )
    (now,) = [g for g in table["permissions"] if g["permission"] == "LEGAL_HOLD"]
    assert now["grantees"] == previous


async def test_claim_and_release_reasons_are_audited(world: World) -> None:
    _, step = await world.item_step()
    claim = {"stepId": step, "reason": "  taking this one  "}
    await world.ok("claimStep", "StepReasonInput", ITEM, claim, BOB)
    release = {"stepId": step, "reason": "out sick"}
    await world.ok("unclaimStep", "StepReasonInput", ITEM, release, BOB)
    await world.ok("claimStep", "StepReasonInput", ITEM, {"stepId": step}, BOB)
    events = await actions(world, "step.claim", "step.unclaim")
    assert [(e["action"], e["reason"]) for e in events] == [
        ("step.claim", "taking this one"),
        ("step.unclaim", "out sick"),
        ("step.claim", None),
    ]
    too_long = {"stepId": step, "reason": "x" * 5000}
    refused = await call(world, "unclaimStep", "StepReasonInput", ITEM, too_long, BOB)
    assert refused["errors"] == [{"code": "INVALID_INPUT", "field": "reason"}]
    assert len(await actions(world, "step.claim", "step.unclaim")) == 3

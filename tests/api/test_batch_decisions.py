"""`decideSteps`: several decisions in one request, each through the same path as
`approveStep`/`rejectStep`, each with its own result; a batch can do nothing the single
mutations refuse."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from signoff.api import ids
from tests.api.conftest import APPROVE, ERRORS, ITEM_FIELDS, REJECT, Desk, Who, approval, step_of

BATCH = f"""mutation($input: DecideStepsInput!) {{
  decideSteps(input: $input) {{
    results {{ stepId outcome item {{ {ITEM_FIELDS} }} {ERRORS} }}
    {ERRORS}
  }} }}"""

RITA: Who = ("rita", (), ())
BOB: Who = ("bob", (), ())
TEMPLATE = approval(
    "batchable",
    {"key": "review", "assignees": {"users": ["bob", "carol"]}, "quorum": {"mode": "any"}},
    {"key": "legal", "assignees": {"users": ["dave"]}},
    {"key": "final", "assignees": {"users": ["bob"]}, "depends_on": ["review"]},
)


async def batch(desk: Desk, decisions: list[dict[str, Any]], who: Who = BOB) -> dict[str, Any]:
    return await desk.call(BATCH, {"input": {"decisions": decisions}}, who)


async def test_each_decision_has_its_own_result_in_order_and_refusals_change_nothing(desk):
    await desk.publish(TEMPLATE)
    first = await desk.submit("batchable", RITA)
    second = await desk.submit("batchable", RITA)
    before_second = await desk.read(second)
    result = await batch(
        desk,
        [
            {"stepId": step_of(first, "review")["id"], "outcome": "APPROVE"},
            {"stepId": step_of(second, "legal")["id"], "outcome": "APPROVE"},  # not bob's
            {"stepId": step_of(first, "final")["id"], "outcome": "REJECT", "reason": "no"},
        ],
    )
    assert result["errors"] == []
    first_ok, forbidden, final = result["results"]
    assert first_ok["errors"] == [] and step_of(first_ok["item"], "review")["stepState"] == (
        "APPROVED"
    )
    assert forbidden["item"] is None and forbidden["errors"][0]["code"] == "FORBIDDEN"
    assert [r["stepId"] for r in result["results"]] == [
        step_of(first, "review")["id"],
        step_of(second, "legal")["id"],
        step_of(first, "final")["id"],
    ]
    # the third decision saw what the first did: `final` became active when `review` passed
    assert final["errors"] == [], final["errors"]
    assert final["item"]["state"] == "REJECTED"
    assert await desk.read(second) == before_second
    stored = await desk.read(first)
    decided = [e for e in stored["auditEvents"]["nodes"] if e["actorId"] == "bob"]
    actions = [e["action"] for e in decided if e["action"].startswith("step.")]
    assert actions.count("step.approve") == 1 and actions.count("step.reject") == 1


async def test_the_whole_batch_is_refused_when_empty_or_too_long_and_then_nothing_changes(
    gql, demo_templates, app_client, settings
):
    desk = Desk(gql)
    await desk.publish(TEMPLATE)
    item = await desk.submit("batchable", RITA)
    review = step_of(item, "review")["id"]
    empty = await batch(desk, [])
    assert empty["results"] == [] and empty["errors"][0]["code"] == "INVALID_INPUT"
    async with app_client(max_batch_decisions=2) as http:
        small = Desk(type(gql)(http, settings, gql.tenant))
        too_long = await batch(small, [{"stepId": review, "outcome": "APPROVE"}] * 3)
        assert too_long["results"] == []
        assert too_long["errors"][0]["code"] == "LIMIT_EXCEEDED"
        assert too_long["errors"][0]["field"] == "decisions"
    assert (await desk.read(item))["state"] == "PENDING"
    assert step_of(await desk.read(item), "review")["stepState"] == "ACTIVE"


async def test_a_malformed_step_id_is_refused_in_its_place(desk):
    await desk.publish(TEMPLATE)
    item = await desk.submit("batchable", RITA)
    result = await batch(
        desk,
        [
            {"stepId": ids.encode("WorkflowItem", uuid.uuid4()), "outcome": "APPROVE"},
            {"stepId": step_of(item, "review")["id"], "outcome": "APPROVE"},
        ],
    )
    wrong, right = result["results"]
    assert wrong["errors"][0]["code"] == "INVALID_INPUT"
    assert wrong["errors"][0]["field"] == "stepId"
    assert right["errors"] == []


async def test_idempotency_keys_are_shared_with_approve_step(desk):
    await desk.publish(TEMPLATE)
    item = await desk.submit("batchable", RITA)
    review = step_of(item, "review")["id"]
    key = f"k-{uuid.uuid4().hex}"
    first = await batch(
        desk, [{"stepId": review, "outcome": "APPROVE", "guards": {"idempotencyKey": key}}]
    )
    assert first["results"][0]["errors"] == []
    events = (await desk.read(item))["auditEvents"]["nodes"]
    # the same key and input through the single mutation replays the batch's decision
    replay = await desk.call(
        APPROVE, {"input": {"stepId": review, "guards": {"idempotencyKey": key}}}, BOB
    )
    assert (
        replay["errors"] == []
        and replay["item"]["version"] == (first["results"][0]["item"]["version"])
    )
    # and the other way round; a different input under the key is refused
    again = await batch(
        desk, [{"stepId": review, "outcome": "APPROVE", "guards": {"idempotencyKey": key}}]
    )
    assert again["results"][0]["errors"] == []
    other = await batch(
        desk,
        [
            {
                "stepId": review,
                "outcome": "APPROVE",
                "reason": "x",
                "guards": {"idempotencyKey": key},
            }
        ],
    )
    assert other["results"][0]["errors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert (await desk.read(item))["auditEvents"]["nodes"] == events


async def test_a_replayed_batch_replays_each_decision_it_made(desk):
    await desk.publish(TEMPLATE)
    first_item = await desk.submit("batchable", RITA)
    second_item = await desk.submit("batchable", RITA)
    decisions = [
        {"stepId": step_of(first_item, "review")["id"], "outcome": "APPROVE"},
        {"stepId": step_of(second_item, "legal")["id"], "outcome": "APPROVE"},  # refused
        {"stepId": step_of(second_item, "review")["id"], "outcome": "REJECT", "reason": "no"},
    ]
    guards = {"idempotencyKey": f"batch-{uuid.uuid4().hex}"}
    call = {"input": {"decisions": decisions, "guards": guards}}
    first = await desk.call(BATCH, call, BOB)
    trails = [(await desk.read(i))["auditEvents"]["nodes"] for i in (first_item, second_item)]
    again = await desk.call(BATCH, call, BOB)
    made = [0, 2]  # a refused decision is not remembered (as with approveStep): tried again
    assert [again["results"][i] for i in made] == [first["results"][i] for i in made]
    assert again["results"][1]["item"] is None and again["results"][1]["errors"]
    assert [
        (await desk.read(i))["auditEvents"]["nodes"] for i in (first_item, second_item)
    ] == trails
    versioned = await desk.call(
        BATCH, {"input": {"decisions": decisions, "guards": {"expectedVersion": 1}}}, BOB
    )
    assert versioned["results"] == [] and versioned["errors"][0]["code"] == "INVALID_INPUT"


async def test_a_batch_is_priced_per_decision_whether_literal_or_variable(desk, gql):
    await desk.publish(TEMPLATE)
    item = await desk.submit("batchable", RITA)
    bogus = step_of(item, "legal")["id"]  # refused (not bob's): the price is the same

    async def price(n: int, literal: bool) -> int:
        decisions = [{"stepId": bogus, "outcome": "APPROVE"}] * n
        if literal:
            entries = ", ".join(f'{{stepId: "{bogus}", outcome: APPROVE}}' for _ in range(n))
            query = (
                f"mutation {{ decideSteps(input: {{decisions: [{entries}]}}) "
                f"{{ results {{ stepId }} errors {{ code }} }} }}"
            )
            response = await gql.run(query, token=gql.token("bob"))
        else:
            query = "mutation($input: DecideStepsInput!) { decideSteps(input: $input) " + (
                "{ results { stepId } errors { code } } }"
            )
            response = await gql.run(
                query, {"input": {"decisions": decisions}}, token=gql.token("bob")
            )
        body = response.json()
        assert "errors" not in body, body
        requested: int = body["extensions"]["cost"]["requested"]
        return requested

    one, three = await price(1, False), await price(3, False)
    assert three - one == 20  # ten (one approveStep) per further decision
    assert await price(3, True) == three
    assert await price(1, False) == one  # the cache keeps lengths apart


async def test_without_a_token_nothing_is_decided(desk, gql):
    await desk.publish(TEMPLATE)
    item = await desk.submit("batchable", RITA)
    response = await gql.run(
        BATCH,
        {"input": {"decisions": [{"stepId": step_of(item, "review")["id"], "outcome": "APPROVE"}]}},
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert step_of(await desk.read(item), "review")["stepState"] == "ACTIVE"


# --- the invariant: a batch does exactly what the same decisions do one by one ---------------

STEPS = ("review", "legal", "final")
entries = st.lists(
    st.fixed_dictionaries(
        {
            "item": st.integers(0, 1),
            "step": st.sampled_from((*STEPS, "garbage")),
            "outcome": st.sampled_from(("APPROVE", "REJECT")),
            "reason": st.sampled_from((None, "because")),
            "stale": st.booleans(),  # expects the version the item had when submitted
            "key": st.sampled_from((None, "a", "b")),
        }
    ),
    min_size=1,
    max_size=8,
)


def _state(item: dict[str, Any]) -> Any:
    steps = sorted(
        (s["key"], s["stepState"], sorted((d["actorId"], d["outcome"]) for d in s["decisions"]))
        for s in item["steps"]
    )
    events = [(e["action"], e["actorId"]) for e in item["auditEvents"]["nodes"]]
    return item["state"], item["version"], steps, events


@pytest.mark.timeout(600)
@hsettings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=entries, reviewer=st.sampled_from(("bob", "dave", "rita")))
async def test_a_batch_does_exactly_what_the_same_decisions_do_one_by_one(desk, plan, reviewer):
    """Random batches mixing allowed, forbidden, duplicate, stale, replayed and malformed
    decisions (by an assignee, another assignee, the requester): each entry gets the result
    the single mutation gives, and the items end exactly alike, audit trail included."""
    await desk.publish(TEMPLATE)
    who: Who = (reviewer, (), ())
    run = uuid.uuid4().hex
    worlds = {w: [await desk.submit("batchable", RITA) for _ in range(2)] for w in "AB"}

    def decision(world: str, entry: dict[str, Any]) -> dict[str, Any]:
        item = worlds[world][entry["item"]]
        step_id = (
            ids.encode("Step", "not-a-uuid")
            if entry["step"] == "garbage"
            else step_of(item, entry["step"])["id"]
        )
        guards: dict[str, Any] = {}
        if entry["stale"]:
            guards["expectedVersion"] = item["version"]
        if entry["key"]:
            guards["idempotencyKey"] = f"{run}-{world}-{entry['key']}"
        return {"stepId": step_id, "outcome": entry["outcome"], "reason": entry["reason"]} | (
            {"guards": guards} if guards else {}
        )

    together = await batch(desk, [decision("A", e) for e in plan], who)
    assert together["errors"] == []
    one_by_one = []
    for entry in plan:
        d = decision("B", entry)
        guards = d.pop("guards", {})
        query = APPROVE if d.pop("outcome") == "APPROVE" else REJECT
        one_by_one.append(await desk.call(query, {"input": d | {"guards": guards}}, who))

    def outcome(result: dict[str, Any]) -> Any:
        errors = [(e["code"], e["field"]) for e in result["errors"]]
        return errors, result["item"]["state"] if result["item"] else None

    assert [outcome(r) for r in together["results"]] == [outcome(r) for r in one_by_one]
    for errors, state in map(outcome, together["results"]):
        event(f"entry {errors[0][0] if errors else 'decided: ' + str(state)}")
    for a, b in zip(worlds["A"], worlds["B"], strict=True):
        assert _state(await desk.read(a)) == _state(await desk.read(b))

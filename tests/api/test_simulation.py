"""Dry runs through GraphQL: `simulate` (published or draft) and `replayTemplate`. Both compute
from the service clock and write nothing."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from signoff.api.enums import ReplayDifferenceKind
from signoff.db import sql

DEMO = Path(__file__).resolve().parents[2] / "backend" / "signoff" / "demo"

SIMULATE = """
query($payload: JSON!, $key: String, $definition: JSON, $decisions: JSON) {
  simulate(payload: $payload, templateKey: $key, definition: $definition, decisions: $decisions) {
    outcome
    steps {
      key name stepState activatedAt decidedAt slaDue breached autoApprovedBy
      assignees { users groups roles }
      timers { kind dueAt level }
    }
    notifications { kind step at recipients { users groups roles } }
    problems { message path }
  }
}"""

REPLAY = """
query($key: String!, $definition: JSON!, $last: Int!) {
  replayTemplate(templateKey: $key, definition: $definition, last: $last) {
    itemId title differences { kind step before after }
  }
}"""

SUBMIT = """
mutation($input: SubmitItemInput!) {
  submitItem(input: $input) { item { id steps { id } } errors { code message } }
}"""

APPROVE = """
mutation($input: DecideStepInput!) {
  approveStep(input: $input) { item { state } errors { code message } }
}"""

PARTNER = {"partner": "ACME", "value_eur": 250000}
ADMIN: dict[str, Any] = {"as_user": "root", "roles": ("admin",)}
CHANGE = {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy previous"}
TABLES = ("workflow_item", "step", "decision", "audit_event", "template", "idempotency_key")


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def demo(key: str) -> dict[str, Any]:
    for path in DEMO.glob("*.yaml"):
        document = yaml.safe_load(path.read_text())
        if document["key"] == key:
            return document
    raise KeyError(key)


async def row_counts(tenant: str) -> dict[str, int]:
    counts = {}
    for table in TABLES:
        row = await sql.fetchrow(f"SELECT count(*) AS n FROM {table} WHERE tenant_id = $1", tenant)
        assert row is not None
        counts[table] = row["n"]
    return counts


async def test_simulate_a_published_template(gql, tenant, clock, demo_templates):
    clock.advance(timedelta(hours=3))
    now = clock.now()
    before = await row_counts(tenant)
    data = await gql.data(SIMULATE, {"payload": PARTNER, "key": "partner-approval"}, **ADMIN)
    result = data["simulate"]
    assert await row_counts(tenant) == before, "simulate wrote something"

    assert result["outcome"] == "APPROVED"
    assert result["problems"] == []
    steps = result["steps"]
    assert [s["key"] for s in steps] == ["manager", "legal", "executive"]
    assert [s["stepState"] for s in steps] == ["APPROVED", "APPROVED", "APPROVED"]
    assert steps[0]["assignees"] == {"users": [], "groups": [], "roles": ["manager"]}
    assert steps[1]["assignees"] == {"users": [], "groups": ["legal"], "roles": []}
    assert steps[2]["assignees"] == {"users": [], "groups": [], "roles": ["executive"]}

    manager = steps[0]
    assert at(manager["activatedAt"]) == now
    assert at(manager["slaDue"]) == now + timedelta(days=1)
    assert manager["breached"] is False
    timers = {(t["kind"], t["level"]): at(t["dueAt"]) for t in manager["timers"]}
    assert timers[("REMINDER", None)] == now + timedelta(hours=8)
    assert timers[("ESCALATION", 1)] == now + timedelta(hours=20)
    assert timers[("SLA", None)] == now + timedelta(days=1)
    legal = {(t["kind"], t["level"]): at(t["dueAt"]) for t in steps[1]["timers"]}
    assert legal[("ESCALATION", 1)] == at(steps[1]["activatedAt"]) + timedelta(days=2)
    assert legal[("ESCALATION", 2)] == at(steps[1]["activatedAt"]) + timedelta(days=2, hours=12)
    assert at(steps[1]["slaDue"]) == at(steps[1]["activatedAt"]) + timedelta(days=3)
    assert at(steps[2]["slaDue"]) == at(steps[2]["activatedAt"]) + timedelta(days=2)

    assignments = [n for n in result["notifications"] if n["kind"] == "ASSIGNMENT"]
    assert sorted(n["step"] for n in assignments) == ["executive", "legal", "manager"]
    by_key = {s["key"]: s for s in steps}
    for note in assignments:
        assert note["at"] == by_key[note["step"]]["activatedAt"]
        assert note["recipients"] == by_key[note["step"]]["assignees"]


async def test_simulate_with_slow_decisions_shows_breaches_and_escalations(
    gql, tenant, clock, demo_templates
):
    now = clock.now()
    data = await gql.data(
        SIMULATE,
        {
            "payload": PARTNER,
            "key": "partner-approval",
            "decisions": {"manager": "approve@P1DT2H", "legal": "approve@PT1H"},
        },
        **ADMIN,
    )
    steps = {s["key"]: s for s in data["simulate"]["steps"]}
    assert steps["manager"]["breached"] is True
    assert at(steps["manager"]["decidedAt"]) == now + timedelta(days=1, hours=2)
    assert at(steps["legal"]["activatedAt"]) == now + timedelta(days=1, hours=2)
    assert steps["legal"]["breached"] is False
    kinds = {(n["kind"], n["step"]) for n in data["simulate"]["notifications"]}
    assert ("ESCALATION", "manager") in kinds
    assert ("REMINDER", "manager") in kinds
    assert ("ESCALATION", "legal") not in kinds


async def test_simulate_a_draft_definition_inline(gql, tenant, clock, demo_templates):
    draft = demo("change-approval")
    draft["key"] = "change-approval-v2"
    draft["steps"][0]["sla"] = "PT2H"
    draft["steps"][0]["assignees"] = {"users": ["ops-lead"]}
    draft["steps"][0]["reminders"] = []
    draft["steps"][0]["escalation"] = []
    draft["steps"][0]["timeout_action"] = "expire"
    before = await row_counts(tenant)
    data = await gql.data(SIMULATE, {"payload": CHANGE, "definition": draft}, as_user="alice")
    assert await row_counts(tenant) == before
    [step] = data["simulate"]["steps"]
    assert step["assignees"]["users"] == ["ops-lead"]
    assert at(step["slaDue"]) == clock.now() + timedelta(hours=2)
    # the draft was not saved: no such template exists
    response = await gql.run(
        SIMULATE,
        {"payload": CHANGE, "key": "change-approval-v2"},
        token=gql.token("root", "admin"),
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "TEMPLATE_NOT_PUBLISHED"


async def test_simulate_reports_problems_of_a_bad_payload(gql, tenant, demo_templates):
    before = await row_counts(tenant)
    data = await gql.data(
        SIMULATE,
        {"payload": {"value_eur": "lots", "surprise": 1}, "key": "partner-approval"},
        **ADMIN,
    )
    assert await row_counts(tenant) == before
    paths = {p["path"] for p in data["simulate"]["problems"]}
    assert {"payload.partner", "payload.value_eur", "payload.surprise"} <= paths


async def test_simulate_flags_a_requester_who_is_the_only_approver(gql, tenant, demo_templates):
    draft = demo("change-approval")
    draft["steps"][0]["assignees"] = {"users": ["alice"]}
    data = await gql.data(SIMULATE, {"payload": CHANGE, "definition": draft}, as_user="alice")
    assert data["simulate"]["problems"], "the requester cannot approve their own item"


async def test_simulate_an_invalid_draft_is_a_coded_error(gql, tenant, demo_templates):
    draft = demo("partner-approval")
    draft["steps"][0]["depends_on"] = ["executive"]  # a cycle
    response = await gql.run(
        SIMULATE, {"payload": PARTNER, "definition": draft}, token=gql.token("rita")
    )
    body = response.json()
    assert body["data"] is None or body["data"]["simulate"] is None
    assert body["errors"][0]["extensions"]["code"] == "TEMPLATE_INVALID"


async def test_replay_recent_items_through_a_changed_draft(gql, tenant, clock, demo_templates):
    ids = []
    for n in range(3):
        clock.advance(timedelta(minutes=10))
        data = await gql.data(
            SUBMIT,
            {
                "input": {
                    "templateKey": "change-approval",
                    "title": f"change {n}",
                    "payload": CHANGE,
                }
            },
            as_user="alice",
        )
        assert data["submitItem"]["errors"] == []
        ids.append(data["submitItem"]["item"]["id"])
        if n < 2:
            step_id = data["submitItem"]["item"]["steps"][0]["id"]
            approved = await gql.data(
                APPROVE, {"input": {"stepId": step_id}}, as_user="bob", roles=("change-approver",)
            )
            assert approved["approveStep"]["item"]["state"] == "APPROVED"

    draft = copy.deepcopy(demo("change-approval"))
    draft["steps"][0]["assignees"] = {"roles": ["release-manager"]}
    draft["steps"][0]["sla"] = "PT2H"
    before = await row_counts(tenant)
    data = await gql.data(
        REPLAY,
        {"key": "change-approval", "definition": draft, "last": 5},
        as_user="root",
        roles=("admin",),
    )
    assert await row_counts(tenant) == before, "replay wrote something"
    replayed = data["replayTemplate"]
    assert [r["itemId"] for r in replayed] == list(reversed(ids))  # newest first
    for item in replayed:
        kinds = {d["kind"] for d in item["differences"]}
        assert {"ASSIGNEES", "DEADLINE"} <= kinds
        assignees = next(d for d in item["differences"] if d["kind"] == "ASSIGNEES")
        assert assignees["step"] == "review"
        assert assignees["before"]["roles"] == ["change-approver"]
        assert assignees["after"]["roles"] == ["release-manager"]

    # last limits how many items are replayed; an unchanged draft differs in nothing
    data = await gql.data(
        REPLAY,
        {"key": "change-approval", "definition": demo("change-approval"), "last": 2},
        as_user="root",
        roles=("admin",),
    )
    assert len(data["replayTemplate"]) == 2
    assert all(r["differences"] == [] for r in data["replayTemplate"])


REPLAY_TYPED = """
query($key: String!, $definition: JSON!) {
  replayTemplate(templateKey: $key, definition: $definition, last: 10) {
    differences {
      kind step before after
      beforeValue { ...side } afterValue { ...side }
    }
  }
}
fragment side on ReplayValue {
  stepState itemState assignees { users groups roles } slaDue breached rule count
}"""

SIDE_FIELD = {
    "STEP_REMOVED": "stepState",
    "STEP_ADDED": "stepState",
    "STATE": "stepState",
    "ASSIGNEES": "assignees",
    "DEADLINE": "slaDue",
    "BREACH": "breached",
    "AUTO_APPROVAL": "rule",
    "NOTIFICATIONS": "count",
    "OUTCOME": "itemState",
}


def as_json(kind: str, side: dict[str, Any] | None) -> Any:
    """A typed side of a difference in the form of the deprecated JSON `before`/`after`."""
    if side is None:
        return None
    field = SIDE_FIELD[kind]
    assert all(v is None for k, v in side.items() if k != field), (kind, side)
    value = side[field]
    if field in ("stepState", "itemState"):
        return value.lower()
    if field == "slaDue" and value is not None:
        return at(value).isoformat()
    return value


async def test_typed_replay_values_say_what_the_json_ones_say(gql, tenant, clock, demo_templates):
    # three real items: approved after 3 hours, rejected at once, still waiting
    for n, verdict in enumerate(["approve", "reject", None]):
        clock.advance(timedelta(minutes=10))
        data = await gql.data(
            SUBMIT,
            {"input": {"templateKey": "change-approval", "title": f"c{n}", "payload": CHANGE}},
            as_user="alice",
        )
        step_id = data["submitItem"]["item"]["steps"][0]["id"]
        if verdict is None:
            continue
        clock.advance(timedelta(hours=3 if verdict == "approve" else 0))
        mutation = APPROVE if verdict == "approve" else APPROVE.replace("approveStep", "rejectStep")
        await gql.data(
            mutation,
            {"input": {"stepId": step_id, "reason": "no"}},
            as_user="bob",
            roles=("change-approver",),
        )
    base = demo("change-approval")
    tighter = copy.deepcopy(base)  # other people, a 2-hour SLA the approval breaches
    tighter["steps"][0].update(assignees={"roles": ["release-manager"]}, sla="PT2H")
    tighter["steps"][0]["escalation"] = []
    longer = copy.deepcopy(base)  # a second step after the review
    longer["steps"].append(
        {"key": "cab", "name": "CAB", "assignees": {"groups": ["cab"]}, "depends_on": ["review"]}
    )
    renamed = copy.deepcopy(base)  # the review under another key
    renamed["steps"][0]["key"] = "check"
    automatic = copy.deepcopy(base)  # the review approved by policy
    automatic["auto_approval"] = {"name": "everything", "below_risk": "critical"}
    seen: set[str] = set()
    for draft in (tighter, longer, renamed, automatic):
        data = await gql.data(
            REPLAY_TYPED, {"key": "change-approval", "definition": draft}, **ADMIN
        )
        for item in data["replayTemplate"]:
            for d in item["differences"]:
                seen.add(d["kind"])
                assert as_json(d["kind"], d["beforeValue"]) == d["before"], d
                assert as_json(d["kind"], d["afterValue"]) == d["after"], d
    assert seen == set(SIDE_FIELD) == {k.name for k in ReplayDifferenceKind}  # every kind

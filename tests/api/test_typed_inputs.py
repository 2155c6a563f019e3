"""Typed inputs beside the deprecated JSON ones: `SubmitItemInput.agentPlan` (for `plan`),
`simulate(stepDecisions:)` (for `decisions`), `KindChannelsInput.notificationKind` and
`digestNotificationKinds` (for the strings `kind` and `digestKinds`).

What must always hold: the same request spelled either way has the same outcome — the same
steps, the same dry run, the same preferences, or the same typed error — for any plan or
scenario; an input that is bad only in its typed spelling (both spellings at once, an option
without OPTION, a malformed duration, a kind twice) is a typed INVALID_INPUT naming the field,
and changes nothing.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from signoff.api.enums import NotificationPreferenceKind
from signoff.db import sql
from signoff.db import tenants as tenant_repo
from signoff.domain.notification_policy import NOTIFIABLE_KINDS
from signoff.notify.model import EVENT_KINDS
from tests.api.test_pagination import insert_dead_letter
from tests.api.test_simulation import CHANGE, PARTNER, demo

SETTINGS = hsettings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
AGENT = "agent-7"

SUBMIT = """
mutation($input: SubmitItemInput!) {
  submitItem(input: $input) {
    item {
      title summary state risk
      steps {
        key name stepKind stepState risk declaredRisk action params expectedOutcome
        estimatedTime requiredPermissions dueAt assignees { users groups roles }
        impactIfRejected { step effect resolution outcome via fallback }
        decisions { outcome rule }
      }
    }
    errors { code field message }
  }
}"""


async def item_count(tenant: str) -> int:
    row = await sql.fetchrow("SELECT count(*) AS n FROM workflow_item WHERE tenant_id = $1", tenant)
    assert row is not None
    return int(row["n"])


# -- agent plans ------------------------------------------------------------------------------

ACTIONS = ["search_contacts", "list_events", "create_draft", "send_email", "made_up_action"]
RISKS = ["low", "medium", "high", "critical"]
EFFECTS = ["blocks", "enhances", "optional"]
RESOLUTIONS = ["wait", "skip", "fallback", "ask_user"]
words = st.text("abcdefgh ", min_size=1, max_size=12)


@st.composite
def plans(draw: Any) -> dict[str, Any]:
    """A plan in the untyped spelling: valid mostly, sometimes not (a dependency on a later or
    unknown step, a fallback without resolution `fallback`, a condition on an approval step)."""
    keys = draw(st.lists(st.sampled_from("abcdef"), min_size=1, max_size=4, unique=True))
    steps = []
    for i, key in enumerate(keys):
        step: dict[str, Any] = {"key": key, "action": draw(st.sampled_from(ACTIONS))}
        for name in ("name", "description", "expected_outcome", "estimated_time"):
            if draw(st.booleans()):
                step[name] = draw(words)
        if draw(st.booleans()):
            step["risk"] = draw(st.sampled_from(RISKS))
        if draw(st.booleans()):
            step["params"] = draw(
                st.dictionaries(st.sampled_from("xyz"), st.integers(0, 9) | words, max_size=3)
            )
        if draw(st.booleans()):
            step["required_permissions"] = draw(st.lists(words, max_size=2))
        upstreams = [*keys[:i], *draw(st.lists(st.sampled_from(["zz", *keys]), max_size=1))]
        deps: list[Any] = []
        chosen = (
            draw(st.lists(st.sampled_from(upstreams), max_size=2, unique=True)) if upstreams else []
        )
        for upstream in chosen:
            if draw(st.booleans()):
                deps.append(upstream)  # the shorthand: a blocking dependency
                continue
            dep: dict[str, Any] = {
                "step": upstream,
                "effect": draw(st.sampled_from(EFFECTS)),
                "resolution": draw(st.sampled_from(RESOLUTIONS)),
            }
            if draw(st.booleans()):
                dep["fallback"] = {"x": draw(st.integers(0, 9))}
            if draw(st.integers(0, 5)) == 0:
                dep["when"] = "yes"
            deps.append(dep)
        if deps:
            step["depends_on"] = deps
        steps.append(step)
    plan: dict[str, Any] = {"steps": steps}
    if draw(st.booleans()):
        plan["title"] = draw(words)
    if draw(st.booleans()):
        plan["summary"] = draw(words)
    return plan


CAMEL = {
    "expected_outcome": "expectedOutcome",
    "estimated_time": "estimatedTime",
    "required_permissions": "requiredPermissions",
    "depends_on": "dependsOn",
}


def typed_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """The same plan in the typed spelling (`AgentPlanInput`)."""

    def dependency(dep: Any) -> dict[str, Any]:
        if isinstance(dep, str):
            return {"step": dep}
        typed = {**dep, "effect": dep["effect"].upper(), "resolution": dep["resolution"].upper()}
        return typed

    def step(raw: dict[str, Any]) -> dict[str, Any]:
        typed = {CAMEL.get(k, k): v for k, v in raw.items()}
        if "risk" in typed:
            typed["risk"] = typed["risk"].upper()
        if "dependsOn" in typed:
            typed["dependsOn"] = [dependency(d) for d in typed["dependsOn"]]
        return typed

    return {**plan, "steps": [step(s) for s in plan["steps"]]}


async def submit(gql: Any, **plan: Any) -> dict[str, Any]:
    variables = {"input": {"templateKey": "agent-plan", "title": "a plan", **plan}}
    return (await gql.data(SUBMIT, variables, as_user=AGENT))["submitItem"]


@SETTINGS
@given(plan=plans())
async def test_a_typed_plan_makes_what_the_json_plan_makes(gql, demo_templates, plan):
    untyped = await submit(gql, plan=plan)
    typed = await submit(gql, agentPlan=typed_plan(plan))
    assert typed == untyped
    if untyped["item"] is not None:
        assert [s["key"] for s in typed["item"]["steps"]] == [s["key"] for s in plan["steps"]]


async def test_the_demo_plan_typed(gql, demo_templates):
    plan = {
        "title": "Service credit for INC-2291",
        "steps": [
            {
                "key": "lookup",
                "action": "search_contacts",
                "risk": "LOW",
                "params": {"query": "accounts affected by INC-2291"},
            },
            {
                "key": "send",
                "action": "send_email",
                "risk": "HIGH",
                "params": {"batch": "INC-2291-affected"},
                "dependsOn": [{"step": "lookup", "resolution": "ASK_USER"}],
            },
        ],
    }
    answer = await submit(gql, agentPlan=plan)
    assert answer["errors"] == []
    steps = {s["key"]: s for s in answer["item"]["steps"]}
    assert steps["lookup"]["stepState"] == "APPROVED"  # low risk, on the auto-approval list
    assert steps["lookup"]["decisions"][0]["rule"]
    assert steps["send"]["risk"] == "HIGH" and steps["send"]["stepState"] == "ACTIVE"
    assert steps["send"]["params"] == {"batch": "INC-2291-affected"}
    assert answer["item"]["title"] == "a plan"


async def test_bad_typed_plans_are_typed_errors_and_submit_nothing(gql, tenant, demo_templates):
    before = await item_count(tenant)
    plan = {"steps": [{"key": "a", "action": "list_events"}]}
    both = await submit(gql, plan=plan, agentPlan=typed_plan(plan))
    assert both["item"] is None
    assert [(e["code"], e["field"]) for e in both["errors"]] == [("INVALID_INPUT", "plan")]
    # an unknown enum value is refused before anything runs
    response = await gql.run(
        SUBMIT,
        {
            "input": {
                "templateKey": "agent-plan",
                "title": "x",
                "agentPlan": {"steps": [{"key": "a", "action": "b", "risk": "EXTREME"}]},
            }
        },
        token=gql.token(AGENT),
    )
    body = response.json()
    assert body["data"] is None and "EXTREME" in body["errors"][0]["message"]
    # a dependency on no step is the same refusal either way, with the path into the plan
    dangling = {"steps": [{"key": "a", "action": "b", "depends_on": ["nope"]}]}
    typed = await submit(gql, agentPlan=typed_plan(dangling))
    assert typed == await submit(gql, plan=dangling)
    assert typed["item"] is None and typed["errors"][0]["code"] == "TEMPLATE_INVALID"
    # a plan on a template that is not a plan template
    wrong = await gql.data(
        SUBMIT,
        {
            "input": {
                "templateKey": "change-approval",
                "title": "x",
                "payload": CHANGE,
                "agentPlan": typed_plan(plan),
            }
        },
        as_user=AGENT,
    )
    assert wrong["submitItem"]["errors"][0]["field"] == "plan"
    assert await item_count(tenant) == before


# -- dry runs ---------------------------------------------------------------------------------

SIMULATE = """
query($payload: JSON!, $definition: JSON, $decisions: JSON,
      $stepDecisions: [SimulatedDecisionInput!]) {
  simulate(payload: $payload, definition: $definition, decisions: $decisions,
           stepDecisions: $stepDecisions) {
    outcome
    steps { key stepState activatedAt decidedAt slaDue breached autoApprovedBy
            timers { kind dueAt level } }
    notifications { kind step at recipients { users groups roles } }
    problems { message path }
  }
}"""


def routed() -> dict[str, Any]:
    """partner-approval with its legal review turned into a decision between two options."""
    draft = copy.deepcopy(demo("partner-approval"))
    legal = next(s for s in draft["steps"] if s["key"] == "legal")
    legal.update({"kind": "decision", "options": ["standard", "high-value"]})
    legal.pop("quorum", None)
    return draft


STEPS = ["manager", "legal", "executive"]
verdicts = st.sampled_from(["approve", "reject", "timeout", "standard", "high-value", "maybe"])
delays = st.sampled_from([None, "PT1H", "P1DT2H", "PT0S", "P3D"])


def typed_decisions(scenario: dict[str, str]) -> list[dict[str, Any]]:
    entries = []
    for key, text in scenario.items():
        verdict, _, after = text.partition("@")
        entry: dict[str, Any] = {"step": key}
        if verdict in ("approve", "reject", "timeout"):
            entry["verdict"] = verdict.upper()
        else:
            entry.update(verdict="OPTION", option=verdict)
        if after:
            entry["after"] = after
        entries.append(entry)
    return entries


@SETTINGS
@given(
    picks=st.dictionaries(st.sampled_from([*STEPS, "nosuch"]), st.tuples(verdicts, delays)),
)
async def test_typed_decisions_run_the_same_dry_run(gql, picks):
    scenario = {k: v + (f"@{d}" if d else "") for k, (v, d) in picks.items()}
    variables = {"payload": PARTNER, "definition": routed()}
    untyped = await gql.data(SIMULATE, {**variables, "decisions": scenario}, as_user="alice")
    typed = await gql.data(
        SIMULATE, {**variables, "stepDecisions": typed_decisions(scenario)}, as_user="alice"
    )
    assert typed == untyped


async def test_typed_decisions_decide_as_asked(gql, clock):
    variables = {
        "payload": PARTNER,
        "definition": routed(),
        "stepDecisions": [
            {"step": "manager", "verdict": "APPROVE", "after": "PT5H"},
            {"step": "legal", "verdict": "OPTION", "option": "high-value"},
            {"step": "executive", "verdict": "REJECT"},
        ],
    }
    result = (await gql.data(SIMULATE, variables, as_user="alice"))["simulate"]
    states = {s["key"]: s["stepState"] for s in result["steps"]}
    assert states == {"manager": "APPROVED", "legal": "APPROVED", "executive": "REJECTED"}
    assert result["outcome"] == "REJECTED" and result["problems"] == []
    manager = next(s for s in result["steps"] if s["key"] == "manager")
    assert manager["decidedAt"] != manager["activatedAt"]


async def test_bad_typed_decisions_are_typed_errors(gql):
    def run(entries: list[dict[str, Any]], **extra: Any) -> Any:
        variables = {"payload": PARTNER, "definition": routed(), "stepDecisions": entries}
        return gql.run(SIMULATE, {**variables, **extra}, token=gql.token("alice"))

    cases = [
        ([{"step": "legal", "verdict": "OPTION"}], "stepDecisions[0].option"),
        (
            [{"step": "legal", "verdict": "APPROVE", "option": "standard"}],
            "stepDecisions[0].option",
        ),
        ([{"step": "legal", "verdict": "OPTION", "option": "a@PT1H"}], "stepDecisions[0].option"),
        ([{"step": "manager", "verdict": "APPROVE", "after": "5 hours"}], "stepDecisions[0].after"),
        ([{"step": "manager", "verdict": "APPROVE", "after": "-PT1H"}], "stepDecisions[0].after"),
        (
            [{"step": "manager", "verdict": "APPROVE"}, {"step": "manager", "verdict": "REJECT"}],
            "stepDecisions[1].step",
        ),
    ]
    for entries, field in cases:
        body = (await run(entries)).json()
        assert body["data"] is None, entries
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "INVALID_INPUT", entries
        assert error["extensions"]["field"] == field, entries
    body = (await run([], decisions={"manager": "approve"})).json()
    assert body["errors"][0]["extensions"]["field"] == "decisions"
    body = (await run([{"step": "manager", "verdict": "SOMETIMES"}])).json()
    assert body["data"] is None and "SOMETIMES" in body["errors"][0]["message"]


# -- notification preferences ---------------------------------------------------------------

PREFS = """mutation($input: NotificationPreferencesInput!) {
  updateNotificationPreferences(input: $input) {
    preferences { channels { kind notificationKind channels } digestKinds
                  digestNotificationKinds }
    errors { code field message } } }"""
MINE = """{ myNotificationPreferences { channels { kind notificationKind channels } digestKinds
  digestNotificationKinds } }"""

KINDS = sorted(k.value for k in NotificationPreferenceKind)


def test_the_preference_kinds_are_the_notifiable_kinds_and_default():
    assert set(KINDS) == set(NOTIFIABLE_KINDS) | {"default"}


@SETTINGS
@given(
    channels=st.dictionaries(
        st.sampled_from(KINDS), st.lists(st.sampled_from(["email", "slack"]), unique=True)
    ),
    digest=st.lists(st.sampled_from(sorted(NOTIFIABLE_KINDS)), unique=True),
)
async def test_typed_preferences_are_the_string_ones(gql, channels, digest):
    untyped = {
        "channels": [{"kind": k, "channels": v} for k, v in channels.items()],
        "digestKinds": digest,
    }
    typed = {
        "channels": [{"notificationKind": k.upper(), "channels": v} for k, v in channels.items()],
        "digestNotificationKinds": [k.upper() for k in digest],
    }
    first = await gql.data(PREFS, {"input": untyped}, as_user="alice")
    second = await gql.data(PREFS, {"input": typed}, as_user="bob")
    assert first == second
    prefs = second["updateNotificationPreferences"]["preferences"]
    for entry in prefs["channels"]:
        assert entry["notificationKind"] == entry["kind"].upper()
    assert prefs["digestNotificationKinds"] == [k.upper() for k in prefs["digestKinds"]]
    assert sorted(prefs["digestKinds"]) == sorted(digest)
    assert {e["kind"]: e["channels"] for e in prefs["channels"]} == channels


async def test_bad_typed_preferences_are_typed_errors_and_change_nothing(gql):
    good = {"channels": [{"notificationKind": "ALERT", "channels": ["email"]}]}
    assert (await gql.data(PREFS, {"input": good}, as_user="alice"))[
        "updateNotificationPreferences"
    ]["errors"] == []
    before = await gql.data(MINE, as_user="alice")
    cases = [
        ({"channels": [{"channels": ["email"]}]}, "channels[0].notificationKind"),
        (
            {"channels": [{"kind": "mention", "notificationKind": "MENTION", "channels": []}]},
            "channels[0].notificationKind",
        ),
        (
            {
                "channels": [
                    {"notificationKind": "DEFAULT", "channels": ["email"]},
                    {"kind": "default", "channels": []},
                ]
            },
            "channels[1].notificationKind",
        ),
        (
            {"digestKinds": ["reminder"], "digestNotificationKinds": ["REMINDER"]},
            "digestKinds",
        ),
        ({"digestNotificationKinds": ["DIGEST"]}, "digest_kinds"),
    ]
    for value, field in cases:
        answer = (await gql.data(PREFS, {"input": value}, as_user="alice"))[
            "updateNotificationPreferences"
        ]
        assert answer["preferences"] is None, value
        assert [(e["code"], e["field"]) for e in answer["errors"]] == [("INVALID_INPUT", field)]
    response = await gql.run(
        PREFS,
        {"input": {"channels": [{"notificationKind": "SOMETIMES", "channels": []}]}},
        token=gql.token("alice"),
    )
    assert response.json()["data"] is None
    assert await gql.data(MINE, as_user="alice") == before


DEAD_LETTERS = "{ deadLetters(first: 10) { nodes { eventKind deliveryStatus } } }"


async def test_every_kind_the_core_notifies_of_is_listed_with_its_kind(gql, tenant):
    """A dead letter of every kind the core emits reads back with its enum value (an `alert`
    delivery once failed the whole list: the enum had no ALERT)."""
    await tenant_repo.ensure_tenant(tenant)
    at = datetime(2026, 11, 1, tzinfo=UTC)
    for n, kind in enumerate([*EVENT_KINDS, "digest"]):
        await insert_dead_letter(tenant, n, at, kind)
    data = await gql.data(DEAD_LETTERS, as_user="root", roles=("admin",))
    listed = sorted(n["eventKind"] for n in data["deadLetters"]["nodes"])
    assert listed == sorted(k.upper() for k in [*EVENT_KINDS, "digest"])

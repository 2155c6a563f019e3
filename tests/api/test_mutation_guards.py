"""Every mutation takes the same guards, with the same replay semantics.

The cases are looked up from the exported schema's `Mutation` type, so a new mutation without
`input.guards`, or without a case here, fails. For each mutation, through GraphQL:

- the same key and the same input answer the first result again and write no audit event;
- the same key with another input is IDEMPOTENCY_KEY_REUSED and writes nothing;
- concurrent calls with one key all answer the first result, and only one of them changes
  anything (the audit trail grows by what one call writes);
- `guards.expectedVersion` on a mutation of something without a version is INVALID_INPUT.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from graphql import GraphQLInputObjectType, build_schema, get_named_type, is_non_null_type

from signoff.api import ids
from signoff.api.schema import schema as live_schema
from signoff.db import notifications as notification_repo
from signoff.db.audit import chain_head
from signoff.domain.alerts import Move
from signoff.domain.events import DecisionChoice
from signoff.services import alerts, decision_links

PAYLOAD = {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy previous"}
ADMIN = ("root", ("admin",))
ALICE = ("alice", ())
BOB = ("bob", ("change-approver",))
SAM = ("sam", ("agent-supervisor",))
AGENT = ("agent-7", ())
LEGAL = ("lena", ("legal",))
SCHEMA = build_schema(live_schema.as_str())
MUTATIONS = sorted(SCHEMA.mutation_type.fields) if SCHEMA.mutation_type else []
VERSIONED = {
    "approveStep",
    "rejectStep",
    "requestChanges",
    "claimStep",
    "unclaimStep",
    "reassignStep",
    "delegateStep",
    "modifyStepParams",
    "resubmitItem",
    "cancelItem",
    "approveAll",
    "resolveHeldStep",
    "overrideStep",
    "reportExecution",
    "recoverStep",
    "reopenAsIncidentReview",
    "editComment",
    "deleteComment",
    "confirmDecisionLink",
    "saveAlertRule",
}


# Mutations whose replay cases are still to be written (none).
async def _decision_link(w: World) -> dict[str, Any]:
    """A token for bob (a change approver, by his profile) to approve a new item's step."""
    _, step = await w.item_step()
    await w.ok(
        "upsertUserProfile",
        "UserProfileInput",
        "profile { userId }",
        {"userId": BOB[0], "displayName": "Bob", "roles": list(BOB[1])},
        ADMIN,
    )
    item = await w.run(
        f'query {{ node(id: "{step}") {{ ... on Step {{ item {{ id }} }} }} }}', {}, BOB
    )
    token = decision_links.mint(
        w.services,
        decision_links.DecisionLink(
            link_id=uuid.uuid4(),
            tenant_id=w.gql.tenant,
            user_id=BOB[0],
            item_id=ids.decode_uuid(item["item"]["id"], "WorkflowItem"),
            step_id=ids.decode_uuid(step, "Step"),
            outcome=DecisionChoice.APPROVE,
            expires_at=w.clock.now() + timedelta(hours=1),
        ),
    )
    return {"token": token, "reason": "fine"}


async def _alert_rule(w: World) -> dict[str, Any]:
    return {
        "name": f"backlog {next(_unique)}",
        "ruleKind": "BACKLOG",
        "threshold": 0,
        "roles": ["ops"],
    }


async def _open_alert(w: World) -> dict[str, Any]:
    """An alert of a new backlog rule, fired by an evaluation."""
    inp = await _alert_rule(w)
    saved = await w.ok("saveAlertRule", "SaveAlertRuleInput", "alertRule { id }", inp, ADMIN)
    await w.submit()
    rule_id = ids.decode_uuid(saved["alertRule"]["id"], "AlertRule")
    assert await alerts.evaluate_rule(w.services, w.gql.tenant, rule_id) is Move.FIRE
    found = await w.run(
        "query { alerts(first: 100, open: true) { edges { node { id ruleName } } } }", {}, ADMIN
    )
    (edge,) = [e for e in found["edges"] if e["node"]["ruleName"] == inp["name"]]
    return {"id": edge["node"]["id"], "note": "on it"}


async def _permission(w: World) -> dict[str, Any]:
    return {
        "permission": "LEGAL_HOLD",
        "grantees": ["legal", f"team-{next(_unique)}"],
        "reason": "audit",
    }


PENDING_CASES: set[str] = set()
# Changes audited later: an upload slot is audited when its bytes arrive (as evidence).
UNAUDITED = {"requestEvidenceUpload"}
_unique = itertools.count()

Who = tuple[str, tuple[str, ...]]


class World:
    """One tenant driven through GraphQL, with the demo templates published; `services`
    for what only the system does (mint a decision link, evaluate alert rules)."""

    def __init__(self, gql: Any, clock: Any, services: Any) -> None:
        self.gql, self.clock, self.services = gql, clock, services

    async def run(self, query: str, variables: dict[str, Any], who: Who) -> dict[str, Any]:
        user, roles = who
        response = await self.gql.run(query, variables, token=self.gql.token(user, *roles))
        body: dict[str, Any] = response.json()
        assert response.status_code == 200 and "errors" not in body, body
        (result,) = body["data"].values()
        return dict(result)

    async def ok(self, name: str, input_type: str, select: str, inp: Any, who: Who) -> Any:
        query = (
            f"mutation($i: {input_type}!) {{ {name}(input: $i) "
            f"{{ {select} errors {{ code message }} }} }}"
        )
        result = await self.run(query, {"i": inp}, who)
        assert result["errors"] == [], (name, result["errors"])
        return result

    async def submit(self, key: str = "change-approval", **extra: Any) -> dict[str, Any]:
        inp = {"templateKey": key, "title": f"t{next(_unique)}", "payload": PAYLOAD, **extra}
        who = AGENT if key.endswith("plan") else ALICE
        result = await self.ok("submitItem", "SubmitItemInput", ITEM, inp, who)
        return dict(result["item"])

    async def plan(self, *steps: dict[str, Any]) -> dict[str, Any]:
        plan = {"title": "plan", "steps": list(steps)}
        return await self.submit("agent-plan", payload={"summary": "s"}, plan=plan)

    async def item_step(self, who: Who = ALICE) -> tuple[dict[str, Any], str]:
        item = await self.submit()
        return item, item["steps"][0]["id"]

    async def approved_plan(self) -> dict[str, Any]:
        item = await self.plan({"key": "a", "action": "export", "risk": "medium"})
        done = await self.ok(
            "approveAll", "ItemReasonInput", ITEM, {"itemId": item["id"], "reason": "go"}, SAM
        )
        return dict(done["item"])

    async def comment(self) -> dict[str, Any]:
        item = await self.submit()
        result = await self.ok(
            "addComment",
            "AddCommentInput",
            "comment { id version }",
            {"itemId": item["id"], "body": "first"},
            ALICE,
        )
        return dict(result["comment"])

    async def audit_head(self) -> int:
        return (await chain_head(self.gql.tenant))[0]


ITEM = "item { id state version steps { id key stepState } }"


@dataclass(frozen=True)
class Case:
    """How to call one mutation: the input type, what to compare, who calls, an input made
    ready by `setup` (which builds whatever the mutation needs) and another input."""

    input_type: str
    select: str
    who: Who
    setup: Callable[[World], Awaitable[dict[str, Any]]]
    vary: Callable[[dict[str, Any]], dict[str, Any]]
    # where the payload's typed errors are (a batch has some per entry too)
    errors_of: Callable[[dict[str, Any]], list[Any]] = lambda payload: payload["errors"]


def other(field: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda inp: {**inp, field: value}


async def _submit(w: World) -> dict[str, Any]:
    return {"templateKey": "change-approval", "title": f"t{next(_unique)}", "payload": PAYLOAD}


def _on_step(
    reason: str = "ok", before: Callable[[World, str], Awaitable[None]] | None = None, **extra: Any
) -> Callable[[World], Awaitable[dict[str, Any]]]:
    async def setup(w: World) -> dict[str, Any]:
        _, step = await w.item_step()
        if before is not None:
            await before(w, step)
        return {"stepId": step, "reason": reason, **extra}

    return setup


async def _claimed(w: World, step: str) -> None:
    await w.ok("claimStep", "StepReasonInput", ITEM, {"stepId": step}, BOB)


async def _changes_requested(w: World) -> dict[str, Any]:
    item, step = await w.item_step()
    await w.ok(
        "requestChanges", "DecideStepInput", ITEM, {"stepId": step, "reason": "window?"}, BOB
    )
    return {"itemId": item["id"], "title": "with a window", "reason": "added"}


async def _item_reason(w: World) -> dict[str, Any]:
    item = await w.submit()
    return {"itemId": item["id"], "reason": "not needed"}


async def _plan_item(w: World) -> dict[str, Any]:
    item = await w.plan(
        {"key": "a", "action": "export", "risk": "medium"},
        {"key": "b", "action": "notify", "risk": "medium"},
    )
    return {"itemId": item["id"], "reason": "go"}


async def _plan_step(w: World) -> dict[str, Any]:
    item = await w.plan({"key": "a", "action": "export", "risk": "medium", "params": {"n": 1}})
    return {"stepId": item["steps"][0]["id"], "params": {"n": 2}, "reason": "fewer"}


async def _held(w: World) -> dict[str, Any]:
    item = await w.plan(
        {"key": "a", "action": "export", "risk": "medium"},
        {
            "key": "b",
            "action": "notify",
            "risk": "medium",
            "depends_on": [{"step": "a", "effect": "blocks", "resolution": "ask_user"}],
        },
    )
    a, b = (s["id"] for s in item["steps"])
    await w.ok("rejectStep", "DecideStepInput", ITEM, {"stepId": a, "reason": "no"}, SAM)
    return {"stepId": b, "option": "SKIP", "reason": "not without a"}


async def _batch(w: World) -> dict[str, Any]:
    _, step = await w.item_step()
    return {"decisions": [{"stepId": step, "outcome": "APPROVE", "reason": "ok"}]}


def _batch_errors(payload: dict[str, Any]) -> list[Any]:
    return [*payload["errors"], *(e for r in payload["results"] for e in r["errors"])]


async def _override(w: World) -> dict[str, Any]:
    _, step = await w.item_step()
    return {"stepId": step, "justification": "the outage needs this change right now, sorry"}


async def _report(w: World) -> dict[str, Any]:
    item = await w.approved_plan()
    return {"stepId": item["steps"][0]["id"], "status": "RUNNING"}


async def _recover(w: World) -> dict[str, Any]:
    item = await w.approved_plan()
    step = item["steps"][0]["id"]
    report = {"stepId": step, "status": "RUNNING"}
    await w.ok("reportExecution", "ReportExecutionInput", ITEM, report, AGENT)
    failed = {"stepId": step, "status": "FAILED", "error": "timeout"}
    await w.ok("reportExecution", "ReportExecutionInput", ITEM, failed, AGENT)
    return {"stepId": step, "recovery": "SKIP", "reason": "not needed"}


def _template(name: str) -> dict[str, Any]:
    return {
        "key": f"tpl-{next(_unique)}",
        "name": name,
        "kind": "approval",
        "steps": [{"key": "s", "name": "s", "assignees": {"roles": ["change-approver"]}}],
    }


async def _save(w: World) -> dict[str, Any]:
    return {"definition": _template("first")}


async def _draft(w: World) -> dict[str, Any]:
    saved = await w.ok(
        "saveTemplate",
        "SaveTemplateInput",
        "template { id }",
        {"definition": _template("d")},
        ADMIN,
    )
    return {"id": saved["template"]["id"]}


async def _calendar(w: World) -> dict[str, Any]:
    return {"timezone": "Europe/Berlin", "workdays": [0, 1, 2, 3, 4], "start": "09:00:00",
            "end": "17:00:00"}  # fmt: skip


async def _dead_letter(w: World) -> dict[str, Any]:
    await w.submit()
    now = w.clock.now()
    row = await notification_repo.insert_delivery(
        {
            "tenant_id": w.gql.tenant,
            "event_seq": await w.audit_head(),
            "event_kind": "assignment",
            "channel": "webhook",
            "recipient_id": "bob",
            "address": "http://127.0.0.1:9/hook",
            "idempotency_key": f"dead-{next(_unique)}",
            "status": "dead",
            "priority": "normal",
            "max_attempts": 1,
            "next_attempt_at": now,
            "payload": {},
            "now": now,
        }
    )
    assert row is not None
    return {"id": ids.encode("NotificationDelivery", row["id"])}


async def _preferences(w: World) -> dict[str, Any]:
    return {"channels": [{"kind": "default", "channels": ["email"]}], "digestKinds": []}


async def _profile(w: World) -> dict[str, Any]:
    return {"userId": f"u{next(_unique)}", "displayName": "Una", "roles": ["reviewer"]}


async def _add_comment(w: World) -> dict[str, Any]:
    item = await w.submit()
    return {"itemId": item["id"], "body": "looks fine"}


async def _edit_comment(w: World) -> dict[str, Any]:
    return {"commentId": (await w.comment())["id"], "body": "looks fine now"}


async def _delete_comment(w: World) -> dict[str, Any]:
    return {"commentId": (await w.comment())["id"], "reason": "duplicate"}


async def _evidence(w: World) -> dict[str, Any]:
    item = await w.submit()
    return {"itemId": item["id"], "fileName": "a.txt", "contentType": "text/plain", "size": 3}


async def _incident(w: World) -> dict[str, Any]:
    return {"sourceRef": f"tr-{next(_unique)}", "title": "Mailer sent 300 mails"}


async def _reopen(w: World) -> dict[str, Any]:
    item = await w.submit()
    cancel = {"itemId": item["id"], "reason": "not needed"}
    await w.ok("cancelItem", "ItemReasonInput", ITEM, cancel, ALICE)
    return {"itemId": item["id"], "summary": "why was this cancelled?"}


async def _policy(w: World) -> dict[str, Any]:
    return {"days": 30, "action": "REDACT", "templateKey": f"k{next(_unique)}"}


async def _set_policy(w: World) -> dict[str, Any]:
    inp = await _policy(w)
    await w.ok("setRetentionPolicy", "SetRetentionPolicyInput", "policy { days }", inp, ADMIN)
    return {"templateKey": inp["templateKey"], "reason": "obsolete"}


async def _hold(w: World) -> dict[str, Any]:
    item = await w.submit()
    return {"itemId": item["id"], "reason": "case 7"}


async def _held_item(w: World) -> dict[str, Any]:
    inp = await _hold(w)
    await w.ok("placeLegalHold", "LegalHoldInput", "hold { reason }", inp, LEGAL)
    return {**inp, "reason": "case closed"}


async def _rule(w: World) -> dict[str, Any]:
    return {"path": "customer.iban", "visibleTo": ["finance"], "templateKey": f"k{next(_unique)}"}


async def _set_rule(w: World) -> dict[str, Any]:
    inp = await _rule(w)
    await w.ok("setRedactionRule", "SetRedactionRuleInput", "rule { path }", inp, ADMIN)
    return {"path": inp["path"], "templateKey": inp["templateKey"], "reason": "not secret"}


CASES: dict[str, Case] = {
    "submitItem": Case("SubmitItemInput", ITEM, ALICE, _submit, other("priority", 3)),
    "approveStep": Case("DecideStepInput", ITEM, BOB, _on_step(), other("reason", "fine")),
    "rejectStep": Case("DecideStepInput", ITEM, BOB, _on_step("no"), other("reason", "never")),
    "requestChanges": Case(
        "DecideStepInput", ITEM, BOB, _on_step("window?"), other("reason", "rollback?")
    ),
    "decideSteps": Case(
        "DecideStepsInput",
        "results { stepId item { id version } errors { code field } }",
        BOB,
        _batch,
        lambda inp: {"decisions": [{**inp["decisions"][0], "reason": "fine"}]},
        _batch_errors,
    ),
    "claimStep": Case("StepReasonInput", ITEM, BOB, _on_step(), other("reason", "mine")),
    "unclaimStep": Case(
        "StepReasonInput", ITEM, BOB, _on_step("done", _claimed), other("reason", "away")
    ),
    "reassignStep": Case(
        "ReassignStepInput",
        ITEM,
        ADMIN,
        _on_step("holiday", users=["carol"]),
        other("users", ["dave"]),
    ),
    "delegateStep": Case(
        "DelegateStepInput",
        ITEM,
        BOB,
        _on_step("holiday", delegateTo="carol"),
        other("delegateTo", "dave"),
    ),
    "modifyStepParams": Case(
        "ModifyStepParamsInput", ITEM, SAM, _plan_step, other("params", {"n": 3})
    ),
    "resubmitItem": Case(
        "ResubmitItemInput", ITEM, ALICE, _changes_requested, other("title", "another")
    ),
    "cancelItem": Case("ItemReasonInput", ITEM, ALICE, _item_reason, other("reason", "later")),
    "approveAll": Case("ItemReasonInput", ITEM, SAM, _plan_item, other("reason", "all good")),
    "resolveHeldStep": Case("ResolveHeldStepInput", ITEM, AGENT, _held, other("reason", "skip it")),
    "overrideStep": Case(
        "OverrideStepInput",
        ITEM,
        ADMIN,
        _override,
        other("justification", "a different but equally long justification"),
    ),
    "reportExecution": Case(
        "ReportExecutionInput", ITEM, AGENT, _report, other("status", "COMPLETED")
    ),
    "recoverStep": Case("RecoverStepInput", ITEM, AGENT, _recover, other("recovery", "RETRY")),
    "saveTemplate": Case(
        "SaveTemplateInput",
        "template { id version status }",
        ADMIN,
        _save,
        lambda inp: {**inp, "publish": True},
    ),
    "publishTemplate": Case(
        "PublishTemplateInput",
        "template { id version status }",
        ADMIN,
        _draft,
        lambda inp: {"id": ids.encode("Template", "00000000-0000-0000-0000-000000000001")},
    ),
    "setBusinessCalendar": Case(
        "BusinessCalendarInput", "ok", ADMIN, _calendar, other("timezone", "UTC")
    ),
    "retryDeadLetter": Case(
        "RetryDeadLetterInput",
        "delivery { id deliveryStatus maxAttempts }",
        ADMIN,
        _dead_letter,
        lambda inp: {"id": ids.encode("NotificationDelivery", 999_999)},
    ),
    "updateNotificationPreferences": Case(
        "NotificationPreferencesInput",
        "preferences { channels { kind channels } digestKinds }",
        ALICE,
        _preferences,
        other("digestKinds", ["reminder"]),
    ),
    "upsertUserProfile": Case(
        "UserProfileInput",
        "profile { userId displayName roles }",
        ADMIN,
        _profile,
        other("displayName", "Ursula"),
    ),
    "addComment": Case(
        "AddCommentInput", "comment { id version body }", ALICE, _add_comment, other("body", "no")
    ),
    "editComment": Case(
        "EditCommentInput", "comment { id version body }", ALICE, _edit_comment, other("body", "x")
    ),
    "deleteComment": Case(
        "DeleteCommentInput",
        "comment { id version deleted }",
        ALICE,
        _delete_comment,
        other("reason", "wrong thread"),
    ),  # fmt: skip
    "requestEvidenceUpload": Case(
        "RequestEvidenceUploadInput",
        "upload { evidenceId }",
        ALICE,
        _evidence,
        other("fileName", "b.txt"),
    ),
    "openIncidentReview": Case(
        "OpenIncidentReviewInput", ITEM, ALICE, _incident, other("title", "Mailer again")
    ),
    "reopenAsIncidentReview": Case(
        "ReopenAsIncidentReviewInput", ITEM, ALICE, _reopen, other("summary", "another look")
    ),
    "setRetentionPolicy": Case(
        "SetRetentionPolicyInput",
        "policy { templateKey days action }",
        ADMIN,
        _policy,
        other("days", 60),
    ),
    "removeRetentionPolicy": Case(
        "RemoveRetentionPolicyInput",
        "policy { templateKey days action }",
        ADMIN,
        _set_policy,
        other("reason", "changed my mind"),
    ),
    "placeLegalHold": Case(
        "LegalHoldInput", "hold { itemId reason }", LEGAL, _hold, other("reason", "case 8")
    ),
    "releaseLegalHold": Case(
        "LegalHoldInput", "hold { itemId reason }", LEGAL, _held_item, other("reason", "other")
    ),
    "requestAuditExport": Case(
        "RequestAuditExportInput",
        "export { id }",
        ("audrey", ("auditor",)),
        lambda w: _format(),
        other("format", "NDJSON"),
    ),
    "confirmDecisionLink": Case(
        "ConfirmDecisionLinkInput",
        "itemId itemState stepState",
        BOB,
        _decision_link,
        other("reason", "changed my words"),
    ),
    "saveAlertRule": Case(
        "SaveAlertRuleInput",
        "alertRule { id name threshold version }",
        ADMIN,
        _alert_rule,
        other("threshold", 7),
    ),
    "acknowledgeAlert": Case(
        "AcknowledgeAlertInput",
        "alert { id acknowledgedBy acknowledgement }",
        ADMIN,
        _open_alert,
        other("note", "someone else's words"),
    ),
    "setPermission": Case(
        "SetPermissionInput",
        "grant { permission grantees source }",
        ADMIN,
        _permission,
        other("grantees", ["legal"]),
    ),
    "setRedactionRule": Case(
        "SetRedactionRuleInput",
        "rule { templateKey path visibleTo }",
        ADMIN,
        _rule,
        other("visibleTo", ["legal"]),
    ),
    "removeRedactionRule": Case(
        "RemoveRedactionRuleInput",
        "rule { templateKey path visibleTo }",
        ADMIN,
        _set_rule,
        other("reason", "changed my mind"),
    ),
}


async def _format() -> dict[str, Any]:
    return {"format": "CSV"}


def test_every_mutation_takes_one_input_with_guards() -> None:
    """The shape: one argument `input`, a non-null input object with a nullable `guards:
    GuardsInput`, and no flat key or version beside it."""
    assert MUTATIONS, "the schema has no mutations?"
    for name in MUTATIONS:
        field = SCHEMA.mutation_type.fields[name]  # type: ignore[union-attr]
        assert list(field.args) == ["input"], f"{name} takes {list(field.args)}, not `input`"
        arg_type = field.args["input"].type
        assert is_non_null_type(arg_type), name
        input_type = get_named_type(arg_type)
        assert isinstance(input_type, GraphQLInputObjectType), name
        assert "guards" in input_type.fields, f"{name}: {input_type.name} has no guards"
        guards = input_type.fields["guards"].type
        assert not is_non_null_type(guards) and get_named_type(guards).name == "GuardsInput"
        flat = {"idempotencyKey", "expectedVersion"} & set(input_type.fields)
        assert not flat, f"{name}: {sorted(flat)} belong in guards"
    assert set(CASES) | PENDING_CASES == set(MUTATIONS), "every mutation needs a case"
    assert set(VERSIONED) <= set(MUTATIONS)


def _call(w: World, name: str, case: Case, inp: dict[str, Any]) -> Awaitable[dict[str, Any]]:
    query = (
        f"mutation($i: {case.input_type}!) {{ {name}(input: $i) "
        f"{{ {case.select} errors {{ code field }} }} }}"
    )
    return w.run(query, {"i": inp}, case.who)


@pytest.fixture
async def world(gql: Any, clock: Any, demo_templates: Any, services: Any) -> World:
    return World(gql, clock, services)


@pytest.mark.parametrize("name", sorted(set(MUTATIONS) - PENDING_CASES))
async def test_replay_returns_the_first_result_and_writes_nothing(world: World, name: str) -> None:
    case = CASES[name]
    inp = await case.setup(world)
    key = f"{name}-{next(_unique)}"
    keyed = {**inp, "guards": {"idempotencyKey": key}}

    before = await world.audit_head()
    first = await _call(world, name, case, keyed)
    assert case.errors_of(first) == [], first
    after_first = await world.audit_head()
    assert after_first > before or name in UNAUDITED, "a change without an audit event"

    world.clock.advance(timedelta(seconds=5))
    again = await _call(world, name, case, keyed)
    assert again == first
    assert await world.audit_head() == after_first, "a replay wrote an audit event"

    reused = await _call(world, name, case, {**case.vary(inp), "guards": {"idempotencyKey": key}})
    assert case.errors_of(reused) == [
        {"code": "IDEMPOTENCY_KEY_REUSED", "field": "guards.idempotencyKey"}
    ]
    assert await world.audit_head() == after_first


@pytest.mark.parametrize("name", sorted(set(MUTATIONS) - PENDING_CASES))
async def test_concurrent_replays_have_one_winner(world: World, name: str) -> None:
    case = CASES[name]
    # what one call writes, measured on its own
    alone = await case.setup(world)
    before = await world.audit_head()
    single = await _call(world, name, case, alone)
    assert case.errors_of(single) == [], single
    written = await world.audit_head() - before

    inp = await case.setup(world)
    keyed = {**inp, "guards": {"idempotencyKey": f"{name}-{next(_unique)}"}}
    before = await world.audit_head()
    results = await asyncio.gather(*(_call(world, name, case, keyed) for _ in range(4)))
    assert all(r == results[0] for r in results), results
    assert case.errors_of(results[0]) == []
    assert await world.audit_head() - before == written


@pytest.mark.parametrize("name", sorted(set(MUTATIONS) - VERSIONED - PENDING_CASES))
async def test_expected_version_where_there_is_none_is_invalid(world: World, name: str) -> None:
    case = CASES[name]
    inp = await case.setup(world)
    before = await world.audit_head()
    result = await _call(world, name, case, {**inp, "guards": {"expectedVersion": 1}})
    assert case.errors_of(result) == [{"code": "INVALID_INPUT", "field": "guards.expectedVersion"}]
    assert await world.audit_head() == before

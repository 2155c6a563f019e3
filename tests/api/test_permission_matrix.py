"""Every sensitive action, through GraphQL (and the websocket for subscriptions), by every kind
of caller: no role, a self-claimed role nobody granted, each role the defaults name, a role
granted only by the tenant's table, the item's requester, and another tenant's admin. Each is
allowed or refused exactly as the permission table says — first with the defaults, then with a
table the tenant's admin changed through `setPermission` (tenant-wide and per template).

Expectations come from a table written out in this file (not from the checker): the checker is
compared with the API on random tables in tests/api/test_permission_properties.py.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import websockets

from signoff.api import ids
from signoff.api.auth import mint_token
from signoff.domain.actors import Actor, Principal
from signoff.domain.permissions import Permission
from signoff.services import actions as action_services
from signoff.services import comments as comment_services
from signoff.services import items as item_services
from signoff.services import templates as template_services
from signoff.services.actions import Guards
from signoff.services.permissions import defaults_of
from tests.conftest import served

STAFF = ("staff",)
REQUESTER = "rita"


@dataclass(frozen=True)
class Caller:
    """Someone calling the API: a user with the roles their token claims, in a tenant (the
    test's, unless `foreign`)."""

    user: str
    roles: tuple[str, ...] = ()
    foreign: bool = False


CALLERS = {
    "no role": Caller("nina"),
    "self-claimed executor": Caller("mallory", ("executor",)),
    "self-claimed superuser": Caller("sam", ("superuser", "root")),
    "admin": Caller("ada", ("admin",)),
    "override": Caller("olga", ("override",)),
    "auditor": Caller("aud", ("auditor",)),
    "legal": Caller("lee", ("legal",)),
    "deployer": Caller("dee", ("deployer",)),
    "requester": Caller(REQUESTER),
    "another tenant's admin": Caller("ada", ("admin",), foreign=True),
}

# What the documented defaults grant (docs/reference/permissions.md), written out.
ADMIN = {"admin"}
DEFAULTS: dict[Permission, set[str]] = {
    Permission.SUBMIT: {"*"},
    Permission.DECIDE: {"*"},
    Permission.OVERRIDE: {"admin", "override"},
    Permission.EXECUTE: {"@requester"},
    Permission.MANAGE_ITEMS: ADMIN,
    Permission.READ_ALL_ITEMS: ADMIN,
    Permission.MODERATE_COMMENTS: ADMIN,
    Permission.ADMINISTER_TEMPLATES: ADMIN,
    Permission.ADMINISTER_TIMERS: ADMIN,
    Permission.ADMINISTER_NOTIFICATIONS: ADMIN,
    Permission.ADMINISTER_RETENTION: ADMIN,
    Permission.ADMINISTER_REDACTION: ADMIN,
    Permission.LEGAL_HOLD: {"admin", "legal"},
    Permission.EXPORT_AUDIT: {"admin", "auditor"},
    Permission.READ_AUDIT_DETAILS: {"admin", "auditor"},
    Permission.ADMINISTER_PERMISSIONS: ADMIN,
    Permission.READ_ANALYTICS: {"admin", "auditor"},
    Permission.ADMINISTER_ALERTS: ADMIN,
}

# A table an admin sets: (template key or None, permission) -> grantees.
CONFIGURED: dict[tuple[str | None, Permission], set[str]] = {
    ("matrix", Permission.EXECUTE): {"deployer"},  # replaces @requester for this template
    (None, Permission.EXECUTE): {"@requester", "executor"},  # tenant-wide, widened
    (None, Permission.OVERRIDE): {"override"},  # admins lose it
    ("matrix", Permission.DECIDE): {"override", "deployer"},
    ("matrix", Permission.SUBMIT): {"deployer"},  # only deployers open matrix items
    (None, Permission.READ_ALL_ITEMS): {"auditor"},
    (None, Permission.EXPORT_AUDIT): set(),  # nobody
    (None, Permission.LEGAL_HOLD): {"legal"},
    (None, Permission.ADMINISTER_TEMPLATES): {"admin", "deployer"},
    (None, Permission.ADMINISTER_TIMERS): {"deployer"},
    (None, Permission.ADMINISTER_REDACTION): {"legal"},
    (None, Permission.MANAGE_ITEMS): {"admin", "override"},
    (None, Permission.MODERATE_COMMENTS): {"auditor"},
    (None, Permission.READ_AUDIT_DETAILS): {"legal"},
    (None, Permission.READ_ANALYTICS): {"deployer"},
}


def grantees(table: str, permission: Permission, template: str | None) -> set[str]:
    """Who holds `permission` (for `template`'s items) under the named table: the template's
    grant, else the tenant's, else the default."""
    if table == "configured":
        if template is not None and (template, permission) in CONFIGURED:
            return CONFIGURED[(template, permission)]
        if (None, permission) in CONFIGURED:
            return CONFIGURED[(None, permission)]
    return DEFAULTS[permission]


def holds(table: str, permission: Permission, template: str | None, who: Caller) -> bool:
    granted = grantees(table, permission, template)
    return (
        "*" in granted
        or ("@requester" in granted and who.user == REQUESTER)
        or bool(granted & set(who.roles))
    )


class Env:
    """The test's tenant, a foreign tenant, and the API."""

    def __init__(self, gql: Any, services: Any, settings: Any, tenant: str) -> None:
        self.gql, self.services, self.settings, self.tenant = gql, services, settings, tenant
        self.foreign = f"f{uuid.uuid4().hex[:12]}"
        self.ws_url = ""

    def actor(self, user: str, *roles: str) -> Actor:
        """An actor of the setup (services called directly). The setup's people hold
        `deployer`, which both tables let submit and decide."""
        return Actor(Principal(user, self.tenant, frozenset(roles), frozenset(STAFF)))

    def token(self, who: Caller) -> str:
        return mint_token(
            self.settings,
            user_id=who.user,
            tenant_id=self.foreign if who.foreign else self.tenant,
            roles=who.roles,
            groups=STAFF,
        )

    async def call(self, who: Caller, query: str, variables: dict[str, Any] | None = None) -> Any:
        response = await self.gql.run(query, variables or {}, token=self.token(who))
        assert response.status_code == 200, response.text
        return response.json()

    async def submit(self, key: str = "matrix") -> item_services.ItemView:
        return await item_services.submit_item(
            self.actor(REQUESTER, "deployer"),
            self.services,
            item_services.SubmitItemInput(template_key=key, title="t", payload={}),
        )

    async def approved(self) -> item_services.ItemView:
        view = await self.submit()
        return await item_services.decide_step(
            self.actor("carl", "deployer"),
            self.services,
            item_services.DecideStepInput(view.steps[0].id, item_services.Outcome.APPROVE),
        )


def outcome(body: dict[str, Any]) -> str:
    """`ok`, or the code of the first error (top-level or in the payload's typed errors)."""
    if body.get("errors"):
        return str(body["errors"][0]["extensions"]["code"])
    for value in (body.get("data") or {}).values():
        if isinstance(value, dict) and value.get("errors"):
            return str(value["errors"][0]["code"])
    return "ok"


def item_gid(view: item_services.ItemView) -> str:
    return ids.encode("WorkflowItem", view.id)


def step_gid(view: item_services.ItemView) -> str:
    return ids.encode("Step", view.steps[0].id)


ERRS = "errors { code }"
ITEM_PAYLOAD = f"item {{ id }} {ERRS}"
JUSTIFICATION = "the change window closes tonight and the approver is away"

Attempt = Callable[[Env, Caller], Awaitable[str]]


@dataclass(frozen=True)
class Action:
    """A sensitive action: the permission it needs (for `template`'s items) and how to try it."""

    name: str
    permission: Permission
    attempt: Attempt
    template: str | None = None
    # what refuses this caller before the permission is looked at (None: nothing does)
    precondition: Callable[[Caller], str | None] = lambda who: None
    # the code of a refusal for lack of the permission (reads answer as if nothing were there)
    refusal: str = "FORBIDDEN"


def _own_item_refused(code: str) -> Callable[[Caller], str | None]:
    def check(who: Caller) -> str | None:
        if who.foreign:
            return "NOT_FOUND"
        return code if who.user == REQUESTER else None

    return check


def _foreign_not_found(who: Caller) -> str | None:
    return "NOT_FOUND" if who.foreign else None


async def _submit(env: Env, who: Caller) -> str:
    body = await env.call(
        who,
        f"mutation($i: SubmitItemInput!) {{ submitItem(input: $i) {{ {ITEM_PAYLOAD} }} }}",
        {"i": {"templateKey": "matrix", "title": "t"}},
    )
    return outcome(body)


async def _approve(env: Env, who: Caller) -> str:
    view = await env.submit()
    body = await env.call(
        who,
        f"mutation($i: DecideStepInput!) {{ approveStep(input: $i) {{ {ITEM_PAYLOAD} }} }}",
        {"i": {"stepId": step_gid(view)}},
    )
    return outcome(body)


async def _override(env: Env, who: Caller) -> str:
    view = await env.submit()
    body = await env.call(
        who,
        f"mutation($i: OverrideStepInput!) {{ overrideStep(input: $i) {{ {ITEM_PAYLOAD} }} }}",
        {"i": {"stepId": step_gid(view), "justification": JUSTIFICATION}},
    )
    return outcome(body)


async def _report(env: Env, who: Caller) -> str:
    view = await env.approved()
    body = await env.call(
        who,
        "mutation($i: ReportExecutionInput!) { reportExecution(input: $i) "
        f"{{ {ITEM_PAYLOAD} }} }}",
        {"i": {"stepId": step_gid(view), "status": "RUNNING"}},
    )
    return outcome(body)


async def _cancel(env: Env, who: Caller) -> str:
    view = await env.submit()
    body = await env.call(
        who,
        f"mutation($i: ItemReasonInput!) {{ cancelItem(input: $i) {{ {ITEM_PAYLOAD} }} }}",
        {"i": {"itemId": item_gid(view), "reason": "no longer needed"}},
    )
    return outcome(body)


async def _unclaim(env: Env, who: Caller) -> str:
    view = await env.submit()
    await action_services.claim_step(
        env.actor("carl", "deployer"), env.services, view.steps[0].id, Guards()
    )
    body = await env.call(
        who,
        f"mutation($i: StepReasonInput!) {{ unclaimStep(input: $i) {{ {ITEM_PAYLOAD} }} }}",
        {"i": {"stepId": step_gid(view), "reason": "carl is away"}},
    )
    return outcome(body)


async def _read_item(env: Env, who: Caller) -> str:
    view = await env.submit("private")
    body = await env.call(who, "query($id: ID!) { item(id: $id) { id } }", {"id": item_gid(view)})
    return outcome(body) if body.get("errors") else ("ok" if body["data"]["item"] else "NOT_FOUND")


async def _item_events(env: Env, who: Caller) -> str:
    """Subscribe to a private item's events on a real websocket; an allowed subscriber receives
    the comment added after the cursor it gives, a refused one an error at once."""
    view = await env.submit("private")
    cursor = (
        await env.call(
            CALLERS["requester"],
            "query($id: ID!) { item(id: $id) { eventCursor } }",
            {"id": item_gid(view)},
        )
    )["data"]["item"]["eventCursor"]
    await comment_services.add_comment(
        env.actor(REQUESTER),
        env.services,
        comment_services.AddCommentInput(body="news", item_id=view.id),
    )
    async with websockets.connect(env.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        init = {"Authorization": f"Bearer {env.token(who)}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        query = (
            "subscription($id: ID!, $after: String) { itemEvents(itemId: $id, after: $after) "
            "{ __typename } }"
        )
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {
                        "query": query,
                        "variables": {"id": item_gid(view), "after": cursor},
                    },
                }
            )
        )
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
    if message["type"] == "error":
        return str(message["payload"][0]["extensions"]["code"])
    assert message["type"] == "next", message
    return outcome(message["payload"])


async def _delete_comment(env: Env, who: Caller) -> str:
    view = await env.submit()
    comment = await comment_services.add_comment(
        env.actor("carl", "deployer"),
        env.services,
        comment_services.AddCommentInput(body="mine", item_id=view.id),
    )
    body = await env.call(
        who,
        "mutation($i: DeleteCommentInput!) { deleteComment(input: $i) { errors { code } } }",
        {"i": {"commentId": ids.encode("Comment", comment.id), "reason": "off topic"}},
    )
    return outcome(body)


async def _audit_details(env: Env, who: Caller) -> str:
    # submitted over HTTP, so that its event records a client address; every caller may read
    # it (its step is assigned to the group they are all in)
    submitted = await env.call(
        Caller(REQUESTER, ("deployer",)),
        f"mutation($i: SubmitItemInput!) {{ submitItem(input: $i) {{ {ITEM_PAYLOAD} }} }}",
        {"i": {"templateKey": "matrix", "title": "t"}},
    )
    body = await env.call(
        who,
        "query($id: ID!) { item(id: $id) { auditEvents { nodes { clientAddr } } } }",
        {"id": submitted["data"]["submitItem"]["item"]["id"]},
    )
    if body.get("errors"):
        return outcome(body)
    item = body["data"]["item"]
    if item is None:
        return "NOT_FOUND"
    return "ok" if any(e["clientAddr"] for e in item["auditEvents"]["nodes"]) else "HIDDEN"


async def _legal_hold(env: Env, who: Caller) -> str:
    view = await env.submit()
    body = await env.call(
        who,
        "mutation($i: LegalHoldInput!) { placeLegalHold(input: $i) { errors { code } } }",
        {"i": {"itemId": item_gid(view), "reason": "litigation"}},
    )
    return outcome(body)


def _query(text: str) -> Attempt:
    async def attempt(env: Env, who: Caller) -> str:
        return outcome(await env.call(who, text))

    return attempt


async def _save_template(env: Env, who: Caller) -> str:
    document = {
        "key": f"new-{uuid.uuid4().hex[:6]}",
        "name": "n",
        "kind": "approval",
        "steps": [{"key": "s", "assignees": {"users": ["carl"]}}],
    }
    body = await env.call(
        who,
        "mutation($i: SaveTemplateInput!) { saveTemplate(input: $i) { errors { code } } }",
        {"i": {"definition": document}},
    )
    return outcome(body)


async def _set_permission(env: Env, who: Caller) -> str:
    body = await env.call(
        who,
        "mutation($i: SetPermissionInput!) { setPermission(input: $i) { errors { code } } }",
        {"i": {"permission": "ADMINISTER_RETENTION", "grantees": ["admin"]}},
    )
    return outcome(body)


ACTIONS = [
    Action(
        "submitItem",
        Permission.SUBMIT,
        _submit,
        "matrix",
        lambda who: "TEMPLATE_NOT_PUBLISHED" if who.foreign else None,
    ),
    Action(
        "approveStep",
        Permission.DECIDE,
        _approve,
        "matrix",
        _own_item_refused("SEPARATION_OF_DUTIES"),
    ),
    Action(
        "overrideStep",
        Permission.OVERRIDE,
        _override,
        "matrix",
        _own_item_refused("SEPARATION_OF_DUTIES"),
    ),
    Action("reportExecution", Permission.EXECUTE, _report, "matrix", _foreign_not_found),
    # the requester may always cancel their own item and release nothing of others
    Action(
        "cancelItem",
        Permission.MANAGE_ITEMS,
        _cancel,
        "matrix",
        lambda who: "NOT_FOUND" if who.foreign else ("ok" if who.user == REQUESTER else None),
    ),
    Action("unclaimStep", Permission.MANAGE_ITEMS, _unclaim, "matrix", _foreign_not_found),
    Action(
        "item",
        Permission.READ_ALL_ITEMS,
        _read_item,
        precondition=lambda who: (
            "NOT_FOUND" if who.foreign else ("ok" if who.user == REQUESTER else None)
        ),
        refusal="NOT_FOUND",
    ),
    Action(
        "itemEvents (websocket)",
        Permission.READ_ALL_ITEMS,
        _item_events,
        precondition=lambda who: (
            "NOT_FOUND" if who.foreign else ("ok" if who.user == REQUESTER else None)
        ),
        refusal="NOT_FOUND",
    ),
    Action(
        "deleteComment",
        Permission.MODERATE_COMMENTS,
        _delete_comment,
        precondition=_foreign_not_found,
    ),
    Action(
        "AuditEvent.clientAddr",
        Permission.READ_AUDIT_DETAILS,
        _audit_details,
        precondition=_foreign_not_found,
        refusal="HIDDEN",
    ),
    Action("placeLegalHold", Permission.LEGAL_HOLD, _legal_hold, precondition=_foreign_not_found),
    Action("saveTemplate", Permission.ADMINISTER_TEMPLATES, _save_template),
    Action(
        "overdueSteps",
        Permission.ADMINISTER_TIMERS,
        _query("{ overdueSteps { nodes { stepId } } }"),
    ),
    Action(
        "deadLetters",
        Permission.ADMINISTER_NOTIFICATIONS,
        _query("{ deadLetters { nodes { id } } }"),
    ),
    Action(
        "retentionPolicies",
        Permission.ADMINISTER_RETENTION,
        _query("{ retentionPolicies { days } }"),
    ),
    Action(
        "redactionRules", Permission.ADMINISTER_REDACTION, _query("{ redactionRules { path } }")
    ),
    Action(
        "verifyAuditChain",
        Permission.EXPORT_AUDIT,
        _query("{ verifyAuditChain { ok } }"),
    ),
    Action(
        "permissions",
        Permission.ADMINISTER_PERMISSIONS,
        _query("{ permissions { permission grantees } }"),
    ),
    Action("setPermission", Permission.ADMINISTER_PERMISSIONS, _set_permission),
    Action(
        "approvalAnalytics",
        Permission.READ_ANALYTICS,
        _query(
            '{ approvalAnalytics(input: {from: "2026-01-01T00:00:00Z", '
            'to: "2026-01-02T00:00:00Z"}) { submitted } }'
        ),
    ),
    Action("alertRules", Permission.READ_ANALYTICS, _query("{ alertRules { id } }")),
]


def expected(action: Action, table: str, who: Caller) -> str:
    """What the table says the API answers."""
    before = action.precondition(who)
    if before is not None:
        return before
    if who.foreign:
        # another tenant's admin acts in their own tenant, where the defaults apply; nothing
        # of this tenant is reachable (the item actions above say NOT_FOUND)
        return "ok" if holds("defaults", action.permission, None, who) else action.refusal
    if holds(table, action.permission, action.template, who):
        return "ok"
    return action.refusal


async def _configure(env: Env) -> None:
    admin = Caller("ada", ("admin",))
    for (template, permission), granted in CONFIGURED.items():
        body = await env.call(
            admin,
            "mutation($i: SetPermissionInput!) { setPermission(input: $i) { errors { code } } }",
            {
                "i": {
                    "permission": permission.name,
                    "grantees": sorted(granted),
                    "templateKey": template,
                }
            },
        )
        assert outcome(body) == "ok", body


def test_the_matrix_defaults_are_the_documented_ones(settings):
    assert {p: set(g) for p, g in defaults_of(settings).items()} == DEFAULTS


@pytest.mark.timeout(900)
@pytest.mark.parametrize("table", ["defaults", "configured"])
async def test_every_sensitive_action_by_every_caller_is_allowed_exactly_as_the_table_says(
    app, gql, services, settings, tenant, table
):
    env = Env(gql, services, settings, tenant)
    admin = env.actor("ada", "admin")
    for key, assignees in (("matrix", {"groups": ["staff"]}), ("private", {"users": ["carl"]})):
        await template_services.save_template(
            admin,
            services,
            {
                "key": key,
                "name": key,
                "kind": "approval",
                "steps": [{"key": "review", "assignees": assignees}],
            },
            publish=True,
        )
    if table == "configured":
        await _configure(env)
    answers: dict[tuple[str, str], tuple[str, str]] = {}
    async with served(app) as address:
        env.ws_url = f"ws://{address}/graphql"
        for action in ACTIONS:
            for label, who in CALLERS.items():
                got = await action.attempt(env, who)
                answers[(action.name, label)] = (got, expected(action, table, who))
    wrong = {cell: pair for cell, pair in answers.items() if pair[0] != pair[1]}
    assert not wrong, "\n".join(
        f"{a} by {w}: got {g}, table says {e}" for (a, w), (g, e) in wrong.items()
    )
    # the matrix is not vacuous: every action is both allowed and refused to someone
    for action in ACTIONS:
        seen = {answers[(action.name, label)][0] for label in CALLERS}
        assert "ok" in seen and len(seen) > 1, (action.name, seen)

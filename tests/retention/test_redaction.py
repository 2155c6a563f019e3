"""Redaction rules: one function hides a payload field from the roles without access, on every
path the payload leaves by — a GraphQL read, an inbox push, an item's event stream, a requests
list push (`itemsChanged`), its audit events — and hides nothing else; the pushes carry
client details only to holders of `read_audit_details`, and the chain still verifies."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from signoff.api import ids
from signoff.db import audit as audit_repo
from signoff.domain.actors import Principal
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.redaction import RedactionRule, redact_document, redactor_for
from signoff.services import actions
from signoff.services import audit as audit_services
from signoff.services import items as item_services
from signoff.services import redaction as redaction_services
from tests.conftest import actor
from tests.realtime.conftest import Socket, global_id, submit, wait_subscribed

KEYS = st.sampled_from(["a", "b", "c", "iban", "name"])
JSONS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)
PATHS = st.lists(st.lists(KEYS, min_size=1, max_size=3).map(tuple), max_size=3)


def present(document: Any, path: tuple[str, ...]) -> bool:
    """Whether some field at `path` is in `document` (through lists, in any element)."""
    if isinstance(document, list):
        return any(present(d, path) for d in document)
    if not isinstance(document, dict) or path[0] not in document:
        return False
    return len(path) == 1 or present(document[path[0]], path[1:])


def strip(document: Any, paths: list[tuple[str, ...]]) -> Any:
    """A second, naive statement of the rule: rebuild without any key whose path is hidden."""

    def walk(value: Any, at: tuple[str, ...]) -> Any:
        if isinstance(value, list):
            return [walk(v, at) for v in value]
        if isinstance(value, dict):
            return {k: walk(v, (*at, k)) for k, v in value.items() if (*at, k) not in paths}
        return value

    return walk(document, ())


@hsettings(max_examples=200, deadline=None)
@given(st.dictionaries(KEYS, JSONS, max_size=5), PATHS)
def test_redaction_removes_exactly_the_hidden_paths(document, paths):
    before = copy.deepcopy(document)
    redacted = redact_document(document, paths)
    assert document == before  # the stored payload is never changed
    assert not any(present(redacted, p) for p in paths)
    assert redacted == strip(document, paths)
    assert redact_document(redacted, paths) == redacted


def test_the_redactor_applies_a_rule_to_its_template_and_to_roles_without_access():
    rules = [
        RedactionRule("", ("iban",), frozenset({"finance"})),
        RedactionRule("change-approval", ("rollback_plan",), frozenset()),
        RedactionRule("partner-approval", ("value_eur",), frozenset({"sales"})),
    ]
    someone = Principal("dave", "t")
    finance = Principal("fay", "t", roles=frozenset({"finance"}))
    assert redactor_for(rules, "change-approval", someone).hidden == (
        ("iban",),
        ("rollback_plan",),
    )
    assert redactor_for(rules, "change-approval", finance).hidden == (("rollback_plan",),)
    assert redactor_for(rules, "exception-request", finance).hidden == ()
    data = {"revision": 2, "previous_payload": {"iban": "DE44", "x": 1}}
    assert redactor_for(rules, "x", someone).event_data(data) == {
        "revision": 2,
        "previous_payload": {"x": 1},
    }


async def hide(services, tenant, path, *roles, template="change-approval"):
    return await redaction_services.set_rule(
        actor(tenant, "ada", "admin"),
        services,
        redaction_services.SetRuleInput(path=path, visible_to=roles, template_key=template),
    )


ITEM = """query($id: ID!) {
  item(id: $id) { payload auditEvents { nodes { action data } } }
}"""


async def test_a_hidden_field_is_absent_from_reads_for_a_role_without_access(
    gql, services, tenant, demo_templates
):
    await hide(services, tenant, "rollback_plan", "change-approver")
    view = await submit(services, tenant, "change-approval", "Deploy")
    item_id = global_id("WorkflowItem", view.id)
    requester = (await gql.data(ITEM, {"id": item_id}, as_user="dave"))["item"]
    assert "rollback_plan" not in requester["payload"]
    assert requester["payload"]["system"] == "payments"
    approver = await gql.data(ITEM, {"id": item_id}, as_user="bob", roles=("change-approver",))
    assert approver["item"]["payload"]["rollback_plan"] == "redeploy"

    # A resubmission keeps the payload it replaced in its audit event: hidden there too.
    step = view.steps[0]
    await item_services.decide_step(
        actor(tenant, "bob", "change-approver"),
        services,
        item_services.DecideStepInput(
            step.id, item_services.Outcome.REQUEST_CHANGES, reason="add a window"
        ),
    )
    new = {"title": "Deploy", "system": "payments", "rollback_plan": "v2", "window": "sat"}
    await actions.resubmit_item(
        actor(tenant, "dave"), services, actions.ResubmitInput(view.id, payload=new)
    )
    events = (await gql.data(ITEM, {"id": item_id}, as_user="dave"))["item"]["auditEvents"]["nodes"]
    resubmitted = next(e for e in events if e["action"] == "item.resubmit")
    assert resubmitted["data"]["previous_payload"] == {"title": "Deploy", "system": "payments"}
    stored = next(
        e
        for e in await audit_repo.events_for_item(tenant, view.id)
        if e["action"] == "item.resubmit"
    )
    assert stored["data"]["previous_payload"]["rollback_plan"] == "redeploy"  # kept, hidden
    assert await audit_repo.verify_chain(tenant) is None


INBOX = """subscription { inboxChanged { ... on InboxChange { kind action item { payload } } } }"""
EVENTS = """subscription($itemId: ID!) {
  itemEvents(itemId: $itemId) { ... on ItemEvent { action data } }
}"""


async def test_a_hidden_field_is_absent_from_websocket_pushes(
    ws_url, hub, gql, services, tenant, demo_templates
):
    await hide(services, tenant, "system", "auditor")
    bob = Socket(ws_url, gql.token("bob", "change-approver"))
    ann = Socket(ws_url, gql.token("ann", "change-approver", "auditor"))
    dave = Socket(ws_url, gql.token("dave"))
    async with bob, ann, dave:
        await bob.subscribe(INBOX)
        await ann.subscribe(INBOX)
        await wait_subscribed(hub, 2)
        view = await submit(services, tenant, "change-approval", "Deploy")
        pushed = (await bob.next())["inboxChanged"]
        assert pushed["kind"] == "ENTERED"
        assert "system" not in pushed["item"]["payload"]
        assert pushed["item"]["payload"]["rollback_plan"] == "redeploy"
        # The same push, shared between subscribers, never shares a payload across access.
        seen_by_auditor = (await ann.next())["inboxChanged"]
        assert seen_by_auditor["item"]["payload"]["system"] == "payments"

        await dave.subscribe(EVENTS, {"itemId": global_id("WorkflowItem", view.id)})
        await wait_subscribed(hub, 3)
        await item_services.decide_step(
            actor(tenant, "bob", "change-approver"),
            services,
            item_services.DecideStepInput(
                view.steps[0].id, item_services.Outcome.REQUEST_CHANGES, reason="window?"
            ),
        )
        await actions.resubmit_item(
            actor(tenant, "dave"),
            services,
            actions.ResubmitInput(view.id, payload={**view.item.payload, "window": "sat"}),
        )
        seen = []
        while not any(e["action"] == "item.resubmit" for e in seen):
            seen.append((await dave.next())["itemEvents"])
        resubmitted = seen[-1]
        assert "system" not in resubmitted["data"]["previous_payload"]
        assert resubmitted["data"]["previous_payload"]["rollback_plan"] == "redeploy"


async def test_rules_are_admin_only_validated_and_audited(gql, services, tenant):
    Input = redaction_services.SetRuleInput
    refusals = [
        (actor(tenant, "dave"), Input(path="iban", visible_to=()), ErrorCode.FORBIDDEN),
        (actor(tenant, "ada", "admin"), Input(path="", visible_to=()), ErrorCode.INVALID_INPUT),
        (actor(tenant, "ada", "admin"), Input(path="a..b", visible_to=()), ErrorCode.INVALID_INPUT),
        (actor(tenant, "ada", "admin"), Input(path="a b", visible_to=()), ErrorCode.INVALID_INPUT),
        (
            actor(tenant, "ada", "admin"),
            Input(path=".".join("x" * 9), visible_to=()),
            ErrorCode.INVALID_INPUT,
        ),
        (actor(tenant, "ada", "admin"), Input(path="a", visible_to=("",)), ErrorCode.INVALID_INPUT),
    ]
    for who, inp, code in refusals:
        try:
            await redaction_services.set_rule(who, services, inp)
        except DomainError as exc:
            assert exc.code == code
        else:
            raise AssertionError(f"{inp} was accepted")
    assert await redaction_services.rules_of(tenant) == []
    assert await audit_repo.events_after(tenant, 0, 100) == []

    set_rule = """mutation($input: SetRedactionRuleInput!) {
      setRedactionRule(input: $input) { rule { templateKey path visibleTo } errors { code } }
    }"""
    done = await gql.data(
        set_rule,
        {"input": {"path": "customer.iban", "visibleTo": ["finance", "auditor"]}},
        as_user="ada",
        roles=("admin",),
    )
    assert done["setRedactionRule"] == {
        "rule": {"templateKey": None, "path": "customer.iban", "visibleTo": ["auditor", "finance"]},
        "errors": [],
    }
    listed = await gql.data("{ redactionRules { path } }", as_user="ada", roles=("admin",))
    assert listed["redactionRules"] == [{"path": "customer.iban"}]
    removed = await redaction_services.remove_rule(
        actor(tenant, "ada", "admin"), services, "customer.iban"
    )
    assert removed.dotted == "customer.iban"
    actions_ = [e["action"] for e in await audit_repo.events_after(tenant, 0, 100)]
    assert actions_ == ["redaction.rule_set", "redaction.rule_removed"]


ITEMS = """subscription {
  itemsChanged(scope: REQUESTED) {
    ... on ItemListChange {
      kind itemId item { payload auditEvents { nodes { action clientAddr userAgent } } }
    }
  }
}"""
SUBMIT = """mutation($input: SubmitItemInput!) {
  submitItem(input: $input) { item { id } errors { code } }
}"""


async def test_items_changed_pushes_keep_hidden_fields_and_client_details_from_other_roles(
    ws_url, hub, gql, services, tenant, demo_templates
):
    await hide(services, tenant, "system", "auditor")
    payload = {"title": "Deploy", "system": "payments", "rollback_plan": "redeploy"}
    # submitted over HTTP, so that its events record where the change came from
    response = await gql.http.post(
        "/graphql",
        json={
            "query": SUBMIT,
            "variables": {
                "input": {"templateKey": "change-approval", "title": "Deploy", "payload": payload}
            },
        },
        headers={"Authorization": f"Bearer {gql.token('dave')}", "User-Agent": "console/2.0"},
    )
    item_id = response.json()["data"]["submitItem"]["item"]["id"]
    raw_id = ids.decode_uuid(item_id, "WorkflowItem")
    step = (await item_services.get_item(actor(tenant, "dave"), services, raw_id)).steps[0]
    plain = Socket(ws_url, gql.token("dave"))
    audited = Socket(ws_url, gql.token("dave", "auditor"))
    pushed: dict[str, dict[str, Any]] = {}
    async with plain, audited:
        await plain.subscribe(ITEMS)
        await audited.subscribe(ITEMS)
        await wait_subscribed(hub, 2)
        await item_services.decide_step(
            actor(tenant, "bob", "change-approver"),
            services,
            item_services.DecideStepInput(
                step.id, item_services.Outcome.REQUEST_CHANGES, reason="window?"
            ),
        )
        for name, socket in (("plain", plain), ("audited", audited)):
            while name not in pushed:
                change = (await socket.next())["itemsChanged"]
                if change["itemId"] == item_id:
                    pushed[name] = change["item"]
    assert "system" not in pushed["plain"]["payload"]
    assert pushed["plain"]["payload"]["rollback_plan"] == "redeploy"
    assert pushed["audited"]["payload"]["system"] == "payments"
    plain_events = pushed["plain"]["auditEvents"]["nodes"]
    assert plain_events and all(
        e["clientAddr"] is None and e["userAgent"] is None for e in plain_events
    )
    submitted = [
        e for e in pushed["audited"]["auditEvents"]["nodes"] if e["action"] == "item.submitted"
    ]
    assert submitted and all(
        e["clientAddr"] == "127.0.0.1" and e["userAgent"] == "console/2.0" for e in submitted
    )
    assert (await audit_services.verify_tenant_chain(tenant)).ok

"""A redacted field never reaches a role it is redacted for, whatever way it leaves signoff:
a GraphQL read of the item (its payload and audit events), an `itemEvents` push, an audit
export, and the download of an incident review's snapshot (the history of a reopened item, or
the payload sent with a trace). A role that may see the field gets it on every one of them.

The snapshot's redaction is checked as a property too (hypothesis): whatever the history and
the hidden paths, no hidden path is left in the item's payload or in the payload copies of its
audit events, nothing else changes, and redacting again changes nothing.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from signoff.domain.audit_export import ExportFilter, ExportFormat
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.redaction import Redactor, redact_history, redact_value
from signoff.services import actions
from signoff.services import audit_exports as export_services
from signoff.services import incidents as incident_services
from signoff.services import items as item_services
from signoff.services import redaction as redaction_services
from signoff.services.context import ServiceContext
from tests.conftest import actor
from tests.realtime.conftest import Socket, approve, global_id, wait_subscribed
from tests.retention.test_redaction import JSONS, KEYS, PATHS, present, strip

ROLLBACK = "ROLLBACK-SECRET"  # in `rollback_plan`: change approvers only
CUSTOMER = "CUSTOMER-SECRET"  # in `customer.secret` of any template: auditors only

READERS: dict[str, tuple[str, ...]] = {
    "dave": (),  # the requester
    "bob": ("change-approver",),
    "ivy": ("admin",),
    "cara": ("change-approver", "auditor", "admin"),
}

ITEM = """query($id: ID!) {
  item(id: $id) { payload auditEvents { nodes { action data } } }
}"""
EVENTS = """subscription($itemId: ID!) {
  itemEvents(itemId: $itemId) { ... on ItemEvent { action data } }
}"""
EVIDENCE = """query($id: ID!) { evidence(itemId: $id) { id source } }"""


def sees(roles: tuple[str, ...], secret: str) -> bool:
    return ("change-approver" if secret == ROLLBACK else "auditor") in roles


async def hide_secrets(services: ServiceContext, tenant: str) -> None:
    admin = actor(tenant, "ada", "admin")
    for path, roles, template in (
        ("rollback_plan", ("change-approver",), "change-approval"),
        ("customer.secret", ("auditor",), None),
    ):
        await redaction_services.set_rule(
            admin,
            services,
            redaction_services.SetRuleInput(path=path, visible_to=roles, template_key=template),
        )


async def snapshot_bodies(gql: Any, user: str, roles: tuple[str, ...], review_id: Any) -> list[str]:
    """The bodies of the review's snapshot downloads `user` gets (none when they may not read
    the review)."""
    token = gql.token(user, *roles)
    response = await gql.run(EVIDENCE, {"id": global_id("WorkflowItem", review_id)}, token=token)
    body = response.json()
    if body.get("errors"):
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND", body
        return []
    bodies = []
    for node in body["data"]["evidence"]:
        assert node["source"] == "SNAPSHOT"
        served = await gql.http.get(
            f"/evidence/{node['id']}/content", headers={"Authorization": f"Bearer {token}"}
        )
        assert served.status_code == 200, served.text
        assert int(served.headers["content-length"]) == len(served.content)
        bodies.append(served.text)
    return bodies


async def test_a_redacted_field_reaches_no_role_it_is_hidden_from_on_any_path(
    ws_url, hub, gql, services, tenant, demo_templates
):
    await hide_secrets(services, tenant)
    payload = {"title": "Deploy", "system": "payments", "rollback_plan": f"{ROLLBACK}-1"}
    view = await item_services.submit_item(
        actor(tenant, "dave"),
        services,
        item_services.SubmitItemInput("change-approval", "Deploy", payload=payload),
    )
    item_gid = global_id("WorkflowItem", view.id)
    pushed: dict[str, list[dict[str, Any]]] = {}
    sockets = {u: Socket(ws_url, gql.token(u, *roles)) for u, roles in READERS.items()}
    try:
        for socket in sockets.values():
            await socket.open()
            await socket.subscribe(EVENTS, {"itemId": item_gid})
        await wait_subscribed(hub, len(sockets))
        await item_services.decide_step(
            actor(tenant, "bob", "change-approver"),
            services,
            item_services.DecideStepInput(
                view.steps[0].id, item_services.Outcome.REQUEST_CHANGES, reason="a window?"
            ),
        )
        view = await actions.resubmit_item(
            actor(tenant, "dave"),
            services,
            actions.ResubmitInput(view.id, payload={**payload, "rollback_plan": f"{ROLLBACK}-2"}),
        )
        for user, socket in sockets.items():
            seen: list[dict[str, Any]] = []
            while not any(e["action"] == "item.resubmit" for e in seen):
                seen.append((await socket.next())["itemEvents"])
            pushed[user] = seen
    finally:
        for socket in sockets.values():
            await socket.close()
    view = await approve(services, tenant, view, "bob", "change-approver")
    ivy = actor(tenant, "ivy", "admin")
    reopened = await incident_services.reopen_as_incident_review(
        ivy, services, incident_services.ReopenInput(item_id=view.id)
    )
    trace = await incident_services.open_incident_review(
        ivy,
        services,
        incident_services.OpenReviewInput(
            source_ref="trace-1",
            title="Agent sent a refund",
            snapshot={
                "customer": [
                    {"secret": f"{CUSTOMER}-1", "name": "Acme"},
                    {"secret": f"{CUSTOMER}-2"},
                ],
                "amount": 10,
            },
        ),
    )

    reached: dict[tuple[str, str], str] = {}
    for user, roles in READERS.items():
        read = await gql.data(ITEM, {"id": item_gid}, as_user=user, roles=roles)
        reached[(user, "item read")] = str(read)
        reached[(user, "itemEvents")] = str(pushed[user])
        sink = _Sink()
        try:
            await export_services.export_to_sink(
                actor(tenant, user, *roles), services, sink, ExportFilter(), ExportFormat.NDJSON
            )
        except DomainError as exc:  # only auditors and admins export
            assert exc.code is ErrorCode.FORBIDDEN
        else:
            reached[(user, "export")] = b"".join(sink.parts).decode()
        for review in (reopened, trace):
            for n, body in enumerate(await snapshot_bodies(gql, user, roles, review.id)):
                reached[(user, f"snapshot {review.id} {n}")] = body

    for (user, path), text in reached.items():
        for secret in (ROLLBACK, CUSTOMER):
            if not sees(READERS[user], secret):
                assert secret not in text, f"{secret} reached {user} by {path}"
    # Not vacuous: those with access got the secrets on every path, snapshots included.
    cara = {path: text for (user, path), text in reached.items() if user == "cara"}
    assert {"item read", "itemEvents", "export"} <= set(cara)
    assert sum(path.startswith("snapshot") for path in cara) == 2
    assert all(ROLLBACK in text for path, text in cara.items() if path != f"snapshot {trace.id} 0")
    assert CUSTOMER in cara[f"snapshot {trace.id} 0"]
    ivy_paths = {path for (user, path) in reached if user == "ivy"}
    assert sum(path.startswith("snapshot") for path in ivy_paths) == 2


class _Sink:
    """Keeps what an export writes."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    async def __call__(self, chunk: bytes) -> None:
        self.parts.append(chunk)


# -- the snapshot's redaction, as a property -------------------------------------------------

EVENT = st.fixed_dictionaries(
    {"seq": st.integers(1, 100), "action": st.sampled_from(["item.submitted", "item.resubmit"])},
    optional={
        "data": st.fixed_dictionaries(
            {},
            optional={
                "payload": st.dictionaries(KEYS, JSONS, max_size=4),
                "previous_payload": st.dictionaries(KEYS, JSONS, max_size=4),
                "revision": st.integers(0, 3),
                "note": JSONS,
            },
        )
    },
)
HISTORY = st.fixed_dictionaries(
    {
        "item": st.fixed_dictionaries(
            {"id": st.text(max_size=4), "payload": st.dictionaries(KEYS, JSONS, max_size=5)}
        ),
        "audit_events": st.lists(EVENT, max_size=4),
        "comments": st.lists(st.fixed_dictionaries({"body": st.text(max_size=5)}), max_size=2),
        "steps": st.lists(st.dictionaries(KEYS, JSONS, max_size=3), max_size=2),
    }
)


@hsettings(max_examples=200, deadline=None)
@given(HISTORY, PATHS)
def test_a_history_snapshot_keeps_no_hidden_path_and_nothing_else_changes(history, paths):
    before = copy.deepcopy(history)
    seen = redact_history(history, Redactor(tuple(paths)))
    assert history == before  # the stored snapshot is not changed
    assert seen["item"]["payload"] == strip(history["item"]["payload"], paths)
    assert not any(present(seen["item"]["payload"], p) for p in paths)
    for shown, stored in zip(seen["audit_events"], history["audit_events"], strict=True):
        data = shown.get("data", {})
        for key in ("payload", "previous_payload"):
            if key in data:
                assert data[key] == strip(stored["data"][key], paths)
        rest = {k: v for k, v in data.items() if k not in ("payload", "previous_payload")}
        assert rest == {
            k: v
            for k, v in stored.get("data", {}).items()
            if k not in ("payload", "previous_payload")
        }
        assert {k: v for k, v in shown.items() if k != "data"} == {
            k: v for k, v in stored.items() if k != "data"
        }
    for part in ("comments", "steps"):
        assert seen[part] == history[part]
    assert redact_history(seen, Redactor(tuple(paths))) == seen


@hsettings(max_examples=200, deadline=None)
@given(JSONS, PATHS)
def test_a_trace_snapshot_keeps_no_hidden_path(document, paths):
    seen = redact_value(document, paths)
    assert seen == strip(document, paths)
    assert not any(present(seen, p) for p in paths)
    assert redact_value(seen, paths) == seen

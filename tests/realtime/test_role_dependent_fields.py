"""A pushed result is shared only by callers of one judgement class (roles, groups): a field
below a pushed object may answer by the caller's roles (`AuditEvent.clientAddr` and `userAgent`
only for holders of `read_audit_details`), so a reviewer without that permission is never
pushed what was computed for one with it, whoever subscribed first."""

from __future__ import annotations

from typing import Any

from signoff.domain.actors import Actor, Principal, RequestMeta
from signoff.services import items as item_services
from tests.realtime.conftest import PAYLOADS, Socket, wait_subscribed

DETAILS = """
subscription {
  inboxChanged {
    ... on InboxChange { item { title auditEvents { nodes { action clientAddr userAgent } } } }
  }
}"""


async def _events(socket: Socket) -> list[dict[str, Any]]:
    item = (await socket.next())["inboxChanged"]["item"]
    assert item["title"] == "from afar"
    nodes: list[dict[str, Any]] = item["auditEvents"]["nodes"]
    return nodes


async def test_a_role_dependent_field_is_never_shared_across_roles(
    ws_url: str, hub: Any, gql: Any, services: Any, tenant: str, demo_templates: Any
) -> None:
    async with (
        Socket(ws_url, gql.token("cara", "change-approver", "auditor")) as cara,
        Socket(ws_url, gql.token("bob", "change-approver")) as bob,
    ):
        await cara.subscribe(DETAILS)  # she holds read_audit_details and subscribes first
        await wait_subscribed(hub, 1)
        await bob.subscribe(DETAILS)
        await wait_subscribed(hub, 2)
        requester = Actor(Principal("dave", tenant), RequestMeta("r-1", "203.0.113.7", "agent/1.0"))
        await item_services.submit_item(
            requester,
            services,
            item_services.SubmitItemInput(
                template_key="change-approval",
                title="from afar",
                payload=dict(PAYLOADS["change-approval"]),
            ),
        )
        seen_by_cara, seen_by_bob = await _events(cara), await _events(bob)
    assert any(e["clientAddr"] == "203.0.113.7" for e in seen_by_cara)
    assert any(e["userAgent"] == "agent/1.0" for e in seen_by_cara)
    assert seen_by_bob and all(
        e["clientAddr"] is None and e["userAgent"] is None for e in seen_by_bob
    )

"""Decision links: a signed, single-use, expiring link lets the person it names approve or
reject one step after confirming; a GET never decides; the decision goes through the same
rules, idempotency and audit as `approveStep`/`rejectStep`."""

from __future__ import annotations

import asyncio
import dataclasses
import string
import uuid
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from signoff.api import ids
from signoff.api.auth import mint_token
from signoff.db import sql
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.events import DecisionChoice
from signoff.services import decision_links, notification_admin
from tests.api.conftest import Desk, Who, approval, step_of
from tests.conftest import actor

PREVIEW = """query($token: String!) { decisionLink(token: $token) {
  itemId itemTitle itemState stepId stepKey stepName stepState outcome recipientId
  recipientName expiresAt expired used usedAt usable reasonRequired } }"""
CONFIRM = """mutation($input: ConfirmDecisionLinkInput!) { confirmDecisionLink(input: $input) {
  itemId itemState stepState errors { code message field } } }"""
RITA: Who = ("rita", (), ())
TEMPLATE = approval(
    "linked",
    {"key": "review", "name": "Legal review", "assignees": {"groups": ["legal"]}},
)


async def _setup(desk: Desk, services: Any, tenant: str) -> dict[str, Any]:
    await desk.publish(TEMPLATE)
    await _profile(services, tenant, groups=("legal",))
    return await desk.submit("linked", RITA, title="Contract with ACME")


async def _profile(services: Any, tenant: str, groups: tuple[str, ...]) -> None:
    await notification_admin.upsert_user_profile(
        actor(tenant, "admin", "admin"),
        services,
        notification_admin.ProfileInput(user_id="dave", display_name="Dave D.", groups=groups),
    )


def _link(
    services: Any,
    tenant: str,
    item: dict[str, Any],
    outcome: DecisionChoice = DecisionChoice.APPROVE,
    link_id: uuid.UUID | None = None,
    user: str = "dave",
) -> str:
    step = step_of(item, "review")
    return decision_links.mint(
        services,
        decision_links.DecisionLink(
            link_id=link_id or uuid.uuid4(),
            tenant_id=tenant,
            user_id=user,
            item_id=ids.decode_uuid(item["id"], "WorkflowItem"),
            step_id=ids.decode_uuid(step["id"], "Step"),
            outcome=outcome,
            expires_at=services.clock.now() + timedelta(hours=1),
        ),
    )


async def _anonymous(client: Any, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _confirm(client: Any, token: str, **extra: Any) -> dict[str, Any]:
    body = await _anonymous(client, CONFIRM, {"input": {"token": token, **extra}})
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["confirmDecisionLink"]
    return result


async def _decisions(item: dict[str, Any]) -> list[tuple[str, str]]:
    rows = await sql.fetch(
        "SELECT actor_id, outcome FROM decision WHERE item_id = $1 ORDER BY created_at",
        ids.decode_uuid(item["id"], "WorkflowItem"),
    )
    return [(r["actor_id"], r["outcome"]) for r in rows]


async def test_opening_a_link_decides_nothing_and_shows_what_confirming_would_do(
    desk, services, tenant, client
):
    item = await _setup(desk, services, tenant)
    token = _link(services, tenant, item)
    body = await _anonymous(client, PREVIEW, {"token": token})
    preview = body["data"]["decisionLink"]
    assert preview["itemTitle"] == "Contract with ACME"
    assert preview["stepName"] == "Legal review" and preview["stepState"] == "ACTIVE"
    assert preview["outcome"] == "APPROVE" and preview["recipientName"] == "Dave D."
    assert preview["usable"] and not preview["used"] and not preview["expired"]
    assert preview["reasonRequired"] is False
    for _ in range(3):  # a mail scanner, a link preview, the person
        page = await client.get(f"/decide/{token}")
        assert page.status_code == 200
        assert "Legal review" in page.text and 'method="post"' in page.text
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["x-frame-options"] == "DENY"
    assert await _decisions(item) == []
    assert (await desk.read(item))["state"] == "PENDING"


async def test_where_the_console_is_served_a_link_opens_its_page_and_decides_nothing(
    desk, services, tenant, app_client, tmp_path
):
    item = await _setup(desk, services, tenant)
    token = _link(services, tenant, item)
    (tmp_path / "index.html").write_text('<!doctype html><div id="root"></div>')
    async with app_client(console_dir=str(tmp_path)) as http:
        for _ in range(3):  # a mail scanner, a link preview, the person
            opened = await http.get(f"/decide/{token}")
            assert opened.status_code == 303
            assert opened.headers["location"] == f"/console/decide?token={token}"
            assert opened.headers["cache-control"] == "no-store"
            assert opened.headers["referrer-policy"] == "no-referrer"
            page = await http.get(opened.headers["location"])
            assert page.status_code == 200 and 'id="root"' in page.text
    assert await _decisions(item) == []
    assert (await desk.read(item))["state"] == "PENDING"


async def test_confirming_decides_once_as_the_recipient_and_is_audited(
    desk, services, tenant, client
):
    item = await _setup(desk, services, tenant)
    link_id = uuid.uuid4()
    approve = _link(services, tenant, item, link_id=link_id)
    reject = _link(services, tenant, item, DecisionChoice.REJECT, link_id=link_id)
    result = await _confirm(client, approve)
    assert result["errors"] == [] and result["itemState"] == "APPROVED"
    assert result["stepState"] == "APPROVED"
    assert await _decisions(item) == [("dave", "approve")]
    events = (await desk.read(item))["auditEvents"]["nodes"]
    mine = [e["action"] for e in events if e["actorId"] == "dave"]
    assert mine[:1] == ["step.approve"] and "decision_link.used" in mine
    used = next(e for e in events if e["action"] == "decision_link.used")
    assert used["data"] == {"link_id": str(link_id), "outcome": "approve"}
    # single use, for both links of the message
    for token in (approve, reject):
        again = await _confirm(client, token, reason="changed my mind")
        assert [e["code"] for e in again["errors"]] == ["LINK_USED"]
    preview = (await _anonymous(client, PREVIEW, {"token": reject}))["data"]["decisionLink"]
    assert preview["used"] and not preview["usable"]
    assert (await client.get(f"/decide/{approve}")).status_code == 409
    assert await _decisions(item) == [("dave", "approve")]


async def test_an_expired_link_shows_it_and_decides_nothing(desk, services, tenant, client, clock):
    item = await _setup(desk, services, tenant)
    token = _link(services, tenant, item)
    clock.advance(timedelta(hours=1, seconds=1))
    preview = (await _anonymous(client, PREVIEW, {"token": token}))["data"]["decisionLink"]
    assert preview["expired"] and not preview["usable"]
    result = await _confirm(client, token)
    assert [e["code"] for e in result["errors"]] == ["LINK_EXPIRED"]
    assert (await client.get(f"/decide/{token}")).status_code == 410
    assert await _decisions(item) == []


async def test_tokens_that_are_not_decision_links_are_refused(
    desk, services, tenant, client, settings
):
    item = await _setup(desk, services, tenant)
    token = _link(services, tenant, item)
    bearer = mint_token(settings, user_id="dave", tenant_id=tenant, groups=("legal",))
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    for bad in (tampered, bearer, "not-a-token", token.split(".")[0]):
        result = await _confirm(client, bad)
        assert [e["code"] for e in result["errors"]] == ["LINK_INVALID"], bad
        body = await _anonymous(client, PREVIEW, {"token": bad})
        assert body["errors"][0]["extensions"]["code"] == "LINK_INVALID"
        assert (await client.get(f"/decide/{bad}")).status_code == 404
    # nor does a link pass for a bearer token
    response = await client.post(
        "/graphql",
        json={"query": "{ viewer { userId } }"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await _decisions(item) == []


async def test_a_recipient_who_lost_access_is_refused_and_the_link_stays_unused(
    desk, services, tenant, client
):
    item = await _setup(desk, services, tenant)
    token = _link(services, tenant, item)
    await _profile(services, tenant, groups=())  # no longer in `legal`
    result = await _confirm(client, token)
    assert [e["code"] for e in result["errors"]] == ["FORBIDDEN"]
    assert await _decisions(item) == []
    await _profile(services, tenant, groups=("legal",))
    assert (await _confirm(client, token))["errors"] == []
    assert await _decisions(item) == [("dave", "approve")]


async def test_a_link_for_the_requester_cannot_bypass_separation_of_duties(
    desk, services, tenant, client
):
    item = await _setup(desk, services, tenant)
    token = _link(services, tenant, item, user="rita")
    body = await _anonymous(client, PREVIEW, {"token": token})
    assert body["data"]["decisionLink"]["recipientId"] == "rita"
    result = await _confirm(client, token)
    assert result["errors"][0]["code"] in ("SEPARATION_OF_DUTIES", "FORBIDDEN")
    assert await _decisions(item) == []


async def test_a_rejection_needs_a_reason_and_a_refusal_leaves_the_link_usable(
    desk, services, tenant, client
):
    item = await _setup(desk, services, tenant)
    token = _link(services, tenant, item, DecisionChoice.REJECT)
    preview = (await _anonymous(client, PREVIEW, {"token": token}))["data"]["decisionLink"]
    assert preview["reasonRequired"] is True
    refused = await _confirm(client, token)
    assert [e["code"] for e in refused["errors"]] == ["JUSTIFICATION_REQUIRED"]
    result = await _confirm(client, token, reason="the liability clause is missing")
    assert result["errors"] == [] and result["itemState"] == "REJECTED"


async def test_a_replayed_confirmation_returns_the_first_result(desk, services, tenant, client):
    item = await _setup(desk, services, tenant)
    token = _link(services, tenant, item)
    guards = {"guards": {"idempotencyKey": f"k-{uuid.uuid4().hex}"}}
    first = await _confirm(client, token, **guards)
    second = await _confirm(client, token, **guards)
    assert first == second and first["errors"] == []
    events = (await desk.read(item))["auditEvents"]["nodes"]
    assert [e["action"] for e in events].count("decision_link.used") == 1


async def test_concurrent_confirmations_of_one_link_have_exactly_one_winner(
    desk, services, tenant, client
):
    await desk.publish(TEMPLATE)
    await _profile(services, tenant, groups=("legal",))
    for _ in range(10):
        item = await desk.submit("linked", RITA, title="race")
        link_id = uuid.uuid4()
        tokens = [
            _link(services, tenant, item, outcome, link_id=link_id)
            for outcome in (DecisionChoice.APPROVE, DecisionChoice.REJECT) * 3
        ]
        results = await asyncio.gather(
            *(_confirm(client, t, reason="concurrently") for t in tokens)
        )
        codes = sorted(r["errors"][0]["code"] if r["errors"] else "OK" for r in results)
        assert codes == ["LINK_USED"] * 5 + ["OK"], codes
        decisions = await _decisions(item)
        assert len(decisions) == 1 and decisions[0][0] == "dave"
        events = (await desk.read(item))["auditEvents"]["nodes"]
        assert [e["action"] for e in events].count("decision_link.used") == 1


async def test_the_page_form_confirms_once_and_a_double_submit_is_a_replay(
    desk, services, tenant, client
):
    item = await _setup(desk, services, tenant)
    token = _link(services, tenant, item, DecisionChoice.REJECT)
    page = await client.get(f"/decide/{token}")
    key = page.text.split('name="key" value="')[1].split('"')[0]
    empty = await client.post(f"/decide/{token}", data={"key": key, "reason": ""})
    assert empty.status_code == 400 and "reason" in empty.text
    form = {"key": key, "reason": "no budget left"}
    first = await client.post(f"/decide/{token}", data=form)
    assert first.status_code == 200 and "rejected" in first.text, first.text
    second = await client.post(f"/decide/{token}", data=form)  # the same form sent twice
    assert second.status_code == 200
    other = await client.post(f"/decide/{token}", data={"key": "other", "reason": "x"})
    assert other.status_code == 409
    assert await _decisions(item) == [("dave", "reject")]


async def test_anonymous_link_requests_are_rate_limited_by_address(
    desk, services, tenant, app_client, settings
):
    item = await _setup(desk, services, tenant)
    token = _link(services, tenant, item)
    async with app_client(
        rate_limit_capacity=25,
        max_query_cost=20,
        rate_limit_per_second=0.001,
        redis_prefix=f"{settings.redis_prefix}-rl{uuid.uuid4().hex[:8]}",
    ) as http:
        statuses = [(await http.get(f"/decide/{token}")).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert int((await http.get(f"/decide/{token}")).headers["retry-after"]) >= 1
        response = await http.post(
            "/graphql", json={"query": CONFIRM, "variables": {"input": {"token": token}}}
        )
        assert response.status_code == 429
        assert response.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert await _decisions(item) == []


def test_only_notifications_asking_to_decide_on_enabled_channels_carry_links(services, clock):
    settings = dataclasses.replace(services.settings, decision_link_channels=("email",))
    ctx = dataclasses.replace(services, settings=settings)
    item_id, step_id = uuid.uuid4(), uuid.uuid4()
    row = {
        "channel": "email",
        "event_kind": "assignment",
        "tenant_id": "t1",
        "recipient_id": "dave",
        "idempotency_key": "t1:5:email:dave",
        "created_at": clock.now(),
        "payload": {"step_kind": "approval", "step_id": str(step_id), "item_id": str(item_id)},
    }
    links = decision_links.links_for_delivery(ctx, row)
    assert set(links) == {"approve", "reject"}
    assert all(u.startswith(settings.public_url + "/decide/") for u in links.values())
    assert decision_links.links_for_delivery(ctx, row) == links  # a retry sends the same
    read = {k: decision_links.read(ctx, u.rsplit("/", 1)[1]) for k, u in links.items()}
    assert {k: (link.outcome.value, expired) for k, (link, expired) in read.items()} == {
        "approve": ("approve", False),
        "reject": ("reject", False),
    }
    (approve, _), (reject, _) = read["approve"], read["reject"]
    assert approve.link_id == reject.link_id  # one use for both
    assert (approve.user_id, approve.step_id, approve.item_id) == ("dave", step_id, item_id)
    assert approve.expires_at == clock.now().replace(microsecond=0) + timedelta(
        seconds=settings.decision_link_ttl_seconds
    )
    for change in (
        {"channel": "slack"},
        {"event_kind": "decision"},
        {"event_kind": "mention"},
        {"payload": {**row["payload"], "step_kind": "decision"}},
        {"payload": {"step_id": str(step_id), "item_id": str(item_id)}},  # planned before
    ):
        assert decision_links.links_for_delivery(ctx, {**row, **change}) == {}, change
    assert decision_links.links_for_delivery(services, row) == {}  # not enabled by default


@hsettings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_change_to_a_token_makes_it_invalid(services, data):
    """Every edit of a link's token (a character replaced, inserted or removed anywhere)
    is refused as LINK_INVALID: never read as another link, never a crash."""
    link = decision_links.DecisionLink(
        link_id=uuid.UUID(int=7),
        tenant_id="t1",
        user_id="dave",
        item_id=uuid.UUID(int=8),
        step_id=uuid.UUID(int=9),
        outcome=DecisionChoice.APPROVE,
        expires_at=services.clock.now() + timedelta(hours=1),
    )
    token = decision_links.mint(services, link)
    at = data.draw(st.integers(0, len(token) - 1))
    edit = data.draw(st.sampled_from(("replace", "insert", "delete")))
    char = data.draw(st.sampled_from(string.ascii_letters + string.digits + "-_.="))
    if edit == "replace":
        assume(char != token[at])
        changed = token[:at] + char + token[at + 1 :]
    elif edit == "insert":
        changed = token[:at] + char + token[at:]
    else:
        changed = token[:at] + token[at + 1 :]
    try:
        found, _ = decision_links.read(services, changed)
    except DomainError as exc:
        assert exc.code == ErrorCode.LINK_INVALID
    else:
        # base64url can spell the same bytes two ways at the very end (padding bits), and
        # JWT ignores nothing else: whatever still verifies is the same link
        assert found == link

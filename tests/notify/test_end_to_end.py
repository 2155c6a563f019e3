"""End to end with the three real channel plugins installed from `plugins/`: a real SMTP server
(aiosmtpd), a Slack stand-in and a signed webhook receiver on 127.0.0.1; the API app; a real
arq worker in burst mode; the test's ManualClock for every delay."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
import time
from datetime import timedelta
from urllib.parse import urlencode

from signoff.api import ids
from signoff.db import sql
from signoff.jobs.notifications import build_registry, enqueue_planning
from signoff.notify import NotifierRegistry
from signoff.settings import Settings
from signoff.testing import HTTPReply, ReceivedRequest, RecordingHTTPServer
from signoff_webhook import SignatureVerificationError, verify_signature
from tests.notify.conftest import add_profile, deliveries, run_worker, submit_change

SLACK_TOKEN = "xoxb-test-token-123"
SLACK_SIGNING = "slack-signing-secret-abc"
WEBHOOK_SECRET = "webhook-secret-0123456789"


def slack_ok(request: ReceivedRequest) -> HTTPReply:
    body = request.json()
    return HTTPReply(200, {"ok": True, "channel": body["channel"], "ts": "1700000000.000100"})


class WebhookReceiver:
    """A receiver as the docs tell integrators to write one; can be told to fail."""

    def __init__(self) -> None:
        self.accepted: list[dict] = []
        self.status = 200

    def __call__(self, request: ReceivedRequest) -> HTTPReply:
        try:
            verify_signature(request.headers, request.body, [WEBHOOK_SECRET])
        except SignatureVerificationError as exc:
            return HTTPReply(400, exc.reason)
        if self.status != 200:
            return HTTPReply(self.status, "receiver broken")
        self.accepted.append(json.loads(request.body))
        return HTTPReply(200, {"ok": True})


def channel_settings(base: Settings, smtp_port: int, slack_url: str) -> Settings:
    channels = {
        "email": {
            "host": "127.0.0.1",
            "port": smtp_port,
            "from_address": "signoff@example.org",
            "security": "none",
            "timeout_seconds": 5,
        },
        "slack": {
            "bot_token": SLACK_TOKEN,
            "signing_secret": SLACK_SIGNING,
            "api_base_url": slack_url,
            "timeout_seconds": 5,
        },
        "webhook": {"secrets": [WEBHOOK_SECRET], "timeout_seconds": 5},
    }
    return dataclasses.replace(base, notify_channels=json.dumps(channels))


def slack_click(button_value: str, user: str = "U_ALICE") -> tuple[bytes, dict[str, str]]:
    """A `block_actions` callback signed as Slack signs it."""
    payload = {
        "type": "block_actions",
        "user": {"id": user},
        "team": {"id": "T1"},
        "container": {"channel_id": "D1", "message_ts": "1700000000.000100"},
        "actions": [
            {"action_id": "signoff_approve", "value": button_value, "action_ts": "1700000001.1"}
        ],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    timestamp = str(int(time.time()))
    digest = hmac.new(
        SLACK_SIGNING.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256
    ).hexdigest()
    return body, {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": timestamp,
        "x-slack-signature": f"v0={digest}",
    }


UPSERT = """mutation($input: UserProfileInput!) {
  upsertUserProfile(input: $input) { profile { userId roles addresses { channel address } }
    errors { code message } } }"""

DEAD_LETTERS = """{ deadLetters(first: 10) { nodes { id channel recipientId eventKind deliveryStatus
  attemptCount lastError attempts { attemptNo status error durationMs startedAt } } } }"""

RETRY = """mutation($id: ID!) { retryDeadLetter(input: {id: $id}) {
  delivery { id deliveryStatus maxAttempts } errors { code message } } }"""


async def add_alice_by_graphql(gql, webhook_url: str) -> None:
    data = await gql.data(
        UPSERT,
        {
            "input": {
                "userId": "alice",
                "displayName": "Alice",
                "roles": ["change-approver"],
                "addresses": [
                    {"channel": "email", "address": "alice@example.org"},
                    {"channel": "slack", "address": "U_ALICE"},
                    {"channel": "webhook", "address": webhook_url},
                ],
            }
        },
        as_user="admin",
        roles=("admin",),
    )
    assert data["upsertUserProfile"]["errors"] == []


async def test_assignment_reaches_all_three_channels_and_a_slack_click_approves_once(
    app, client, gql, tenant, demo_templates, nsvc, clock, smtp
):
    inbox, smtp_port = smtp
    receiver = WebhookReceiver()
    async with (
        RecordingHTTPServer(slack_ok) as slack,
        RecordingHTTPServer(receiver) as webhook,
    ):
        settings = channel_settings(nsvc.settings, smtp_port, slack.url)
        registry = build_registry(settings)  # from the installed entry points
        assert registry.configured_channels() == ["email", "slack", "webhook"]
        app.state.notifier_registry = registry
        await add_alice_by_graphql(gql, webhook.url + "/hook")
        view = await submit_change(tenant, nsvc)
        step_id = view.steps[0].id

        await enqueue_planning(app.state.redis, settings, tenant)
        await run_worker(settings, clock, registry)

        # E-mail: a real SMTP conversation.
        (mail,) = inbox.messages
        assert mail["To"].addresses[0].addr_spec == "alice@example.org"
        assert "Deploy api v42" in mail["Subject"]
        # Slack: a DM to Alice with Approve/Reject buttons for this step.
        (posted,) = slack.requests
        body = posted.json()
        assert body["channel"] == "U_ALICE"
        buttons = {b["action_id"]: b for b in body["blocks"][-1]["elements"]}
        value = json.loads(buttons["signoff_approve"]["value"])
        assert value == {"item_id": str(view.id), "step_id": str(step_id)}
        # Webhook: signed, verified by the receiver.
        (document,) = receiver.accepted
        assert document["kind"] == "assignment"
        # global ids: what node(id:) takes
        assert document["item_id"] == ids.encode("WorkflowItem", view.id)
        assert document["step_id"] == ids.encode("Step", step_id)
        found = await gql.data(
            "query($id: ID!) { node(id: $id) { id } }",
            {"id": document["item_id"]},
            as_user="requester",
        )
        assert found["node"] == {"id": document["item_id"]}
        rows = await deliveries(tenant)
        assert sorted((r["channel"], r["status"]) for r in rows) == [
            ("email", "delivered"),
            ("slack", "delivered"),
            ("webhook", "delivered"),
        ]

        # Alice clicks Approve; Slack retries the callback (or she double-clicks).
        raw, headers = slack_click(buttons["signoff_approve"]["value"])
        first = await client.post("/hooks/slack/interactions", content=raw, headers=headers)
        second = await client.post("/hooks/slack/interactions", content=raw, headers=headers)
        assert first.status_code == 200, first.text
        assert second.status_code == 200, second.text
        assert first.json()["item_state"] == "approved"
        decisions = await sql.fetch("SELECT * FROM decision WHERE step_id = $1", step_id)
        assert [(d["actor_id"], d["outcome"]) for d in decisions] == [("alice", "approve")]
        approvals = await sql.fetch(
            "SELECT * FROM audit_event WHERE tenant_id = $1 AND action = 'step.approve'", tenant
        )
        assert len(approvals) == 1 and approvals[0]["actor_id"] == "alice"

        # A forged signature is refused; so is a Slack user signoff does not know.
        forged = {**headers, "x-slack-signature": "v0=" + "0" * 64}
        response = await client.post("/hooks/slack/interactions", content=raw, headers=forged)
        assert response.status_code == 401
        raw, headers = slack_click(buttons["signoff_approve"]["value"], user="U_STRANGER")
        response = await client.post("/hooks/slack/interactions", content=raw, headers=headers)
        assert response.status_code == 403


async def test_receiver_500_is_retried_then_dead_lettered_visible_and_retryable(
    app, gql, tenant, demo_templates, nsvc, clock, smtp
):
    inbox, smtp_port = smtp
    receiver = WebhookReceiver()
    receiver.status = 500
    async with (
        RecordingHTTPServer(slack_ok) as slack,
        RecordingHTTPServer(receiver) as webhook,
    ):
        settings = channel_settings(nsvc.settings, smtp_port, slack.url)
        registry: NotifierRegistry = build_registry(settings)
        await add_alice_by_graphql(gql, webhook.url + "/hook")
        await submit_change(tenant, nsvc)

        await run_worker(settings, clock, registry)
        for _ in range(2):
            (row,) = [r for r in await deliveries(tenant) if r["channel"] == "webhook"]
            assert row["status"] == "retrying"
            clock.set(row["next_attempt_at"])
            await run_worker(settings, clock, registry)

        assert len(webhook.requests) == 3  # three attempts, each a real POST answered 500
        assert len(inbox.messages) == 1 and len(slack.requests) == 1  # others unaffected
        data = await gql.data(DEAD_LETTERS, as_user="ops", roles=("admin",))
        (dead,) = data["deadLetters"]["nodes"]
        assert dead["channel"] == "webhook" and dead["deliveryStatus"] == "DEAD"
        assert dead["attemptCount"] == 3 and "HTTP 500" in dead["lastError"]
        assert [a["attemptNo"] for a in dead["attempts"]] == [1, 2, 3]
        started = [a["startedAt"] for a in dead["attempts"]]
        assert started == sorted(started) and len(set(started)) == 3  # spaced by backoff

        # Non-admins do not see dead letters.
        response = await gql.run(DEAD_LETTERS, token=gql.token("bob"))
        assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"

        receiver.status = 200
        data = await gql.data(RETRY, {"id": dead["id"]}, as_user="ops", roles=("admin",))
        assert data["retryDeadLetter"]["errors"] == []
        assert data["retryDeadLetter"]["delivery"]["deliveryStatus"] == "QUEUED"
        clock.advance(timedelta(seconds=1))
        await run_worker(settings, clock, registry)
        assert len(receiver.accepted) == 1
        data = await gql.data(DEAD_LETTERS, as_user="ops", roles=("admin",))
        assert data["deadLetters"]["nodes"] == []
        audit = await sql.fetch(
            """SELECT action FROM audit_event WHERE tenant_id = $1
            AND action LIKE 'notification.%' ORDER BY seq""",
            tenant,
        )
        assert [a["action"] for a in audit] == [
            "notification.dead_lettered",
            "notification.retry_requested",
        ]


PREFS = """mutation($input: NotificationPreferencesInput!) {
  updateNotificationPreferences(input: $input) {
    preferences { channels { kind channels } quietHours { start end timezone } digestKinds
      addresses { channel address } }
    errors { code field message } } }"""


async def test_preferences_through_graphql(gql, tenant):
    data = await gql.data(
        PREFS,
        {
            "input": {
                "channels": [{"kind": "assignment", "channels": ["slack"]}],
                "quietHours": {"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin"},
                "digestKinds": ["reminder"],
            }
        },
        as_user="alice",
    )
    prefs = data["updateNotificationPreferences"]["preferences"]
    assert prefs["channels"] == [{"kind": "assignment", "channels": ["slack"]}]
    assert prefs["quietHours"]["timezone"] == "Europe/Berlin"
    data = await gql.data(
        "{ myNotificationPreferences { digestKinds quietHours { start } } }", as_user="alice"
    )
    assert data["myNotificationPreferences"] == {
        "digestKinds": ["reminder"],
        "quietHours": {"start": "22:00"},
    }
    data = await gql.data(
        PREFS, {"input": {"quietHours": {"start": "7", "end": "08:00"}}}, as_user="alice"
    )
    (error,) = data["updateNotificationPreferences"]["errors"]
    assert error["code"] == "INVALID_INPUT" and error["field"] == "quiet_hours.start"
    data = await gql.data(UPSERT, {"input": {"userId": "x", "roles": ["admin"]}}, as_user="alice")
    assert data["upsertUserProfile"]["errors"][0]["code"] == "FORBIDDEN"
    assert ids.decode(ids.encode("NotificationDelivery", 1)) == ("NotificationDelivery", "1")


LINK = re.compile(r"(Approve|Reject): (http://signoff\.test/decide/\S+)")


async def test_an_emailed_link_opens_a_page_and_only_its_form_decides(
    app, client, tenant, demo_templates, nsvc, clock, smtp
):
    inbox, smtp_port = smtp
    async with RecordingHTTPServer(slack_ok) as slack:
        settings = dataclasses.replace(
            channel_settings(nsvc.settings, smtp_port, slack.url),
            decision_link_channels=("email",),
            decision_link_base_url="http://signoff.test/decide/",
        )
        registry = build_registry(settings)
        await add_profile(
            tenant, nsvc, "alice", {"email": "alice@example.org"}, roles=("change-approver",)
        )
        view = await submit_change(tenant, nsvc)
        step_id = view.steps[0].id
        await run_worker(settings, clock, registry)

        (mail,) = inbox.messages
        assert mail["To"].addresses[0].addr_spec == "alice@example.org"
        text = mail.get_body(("plain",)).get_content()
        links = dict(LINK.findall(text))
        assert set(links) == {"Approve", "Reject"}
        html = mail.get_body(("html",)).get_content()
        assert links["Approve"] in html and links["Reject"] in html

        # what a mail scanner does: follow every link, twice
        for url in [*links.values(), *links.values()]:
            page = await client.get(url.removeprefix("http://signoff.test"))
            assert page.status_code == 200 and "Change review" in page.text
        assert await sql.fetch("SELECT 1 FROM decision WHERE step_id = $1", step_id) == []

        page = await client.get(links["Approve"].removeprefix("http://signoff.test"))
        key = page.text.split('name="key" value="')[1].split('"')[0]
        done = await client.post(
            links["Approve"].removeprefix("http://signoff.test"), data={"key": key, "reason": ""}
        )
        assert done.status_code == 200 and "approved" in done.text, done.text
        decisions = await sql.fetch(
            "SELECT actor_id, outcome FROM decision WHERE step_id = $1", step_id
        )
        assert [(d["actor_id"], d["outcome"]) for d in decisions] == [("alice", "approve")]
        events = await sql.fetch(
            """SELECT action, actor_id, client_addr, data FROM audit_event
            WHERE tenant_id = $1 AND item_id = $2 ORDER BY seq""",
            tenant,
            view.id,
        )
        actions = [(e["action"], e["actor_id"]) for e in events]
        assert ("step.approve", "alice") in actions and ("decision_link.used", "alice") in actions
        # the other link of the same message is used up with it
        rejected = await client.post(
            links["Reject"].removeprefix("http://signoff.test"), data={"reason": "too late"}
        )
        assert rejected.status_code == 409

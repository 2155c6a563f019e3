"""Alert rules: one alert per episode, delivered by the notification pipeline to a real webhook
receiver and a real SMTP server through real arq workers; cleared ("resolved", delivered
once) and re-armed; concurrent evaluators; the GraphQL surface (rules, the alerts
connection, node(id:), acknowledgement) and its refusals."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from prometheus_client import REGISTRY

from signoff.db import sql
from signoff.domain.alerts import AlertRuleKind, AlertRuleSpec, Move, Recipients
from signoff.domain.clock import ManualClock
from signoff.domain.errors import DomainError, ErrorCode
from signoff.jobs.notifications import build_registry
from signoff.services import alerts, notifications
from signoff.services.context import ServiceContext
from signoff.settings import Settings
from signoff.testing import HTTPReply, ReceivedRequest, RecordingHTTPServer, run_burst_after_one
from signoff.worker import build_worker
from signoff_webhook import verify_signature
from tests.analytics.history import History
from tests.conftest import actor
from tests.notify.conftest import add_profile, deliveries, run_worker

H = timedelta(hours=1)
SECRET = "alert-webhook-secret-0123456789"
ADMIN = ("boss", "admin")


def stuck_rule(name: str = "stuck", **changes: Any) -> AlertRuleSpec:
    spec = AlertRuleSpec(
        name=name,
        kind=AlertRuleKind.STUCK_ITEMS,
        threshold=0,
        window=H,
        notify=Recipients(users=("oncall",)),
    )
    return dataclasses.replace(spec, **changes)


async def save(h: History, spec: AlertRuleSpec, **extra: Any) -> Any:
    return await alerts.save_rule(
        actor(h.tenant, *ADMIN), h.ctx, alerts.SaveRuleInput(spec=spec, **extra)
    )


async def fired_events(tenant: str, rule_id: str) -> list[dict[str, Any]]:
    rows = await sql.fetch(
        """SELECT action, data FROM audit_event WHERE tenant_id = $1
        AND action IN ('alert.fired', 'alert.cleared') AND data ->> 'rule_id' = $2 ORDER BY seq""",
        tenant,
        rule_id,
    )
    return [sql.record_dict(r, ("data",)) for r in rows]


@pytest.fixture
def scoped(settings: Settings, tenant: str) -> Settings:
    """Settings whose workers handle only this test's tenant, on a queue of its own."""
    return dataclasses.replace(
        settings,
        redis_prefix=f"{settings.redis_prefix}-a{uuid.uuid4().hex[:8]}",
        timer_tenants=(tenant,),
        public_url="https://signoff.example",
        notify_channels=json.dumps({"webhook": {"secrets": [SECRET], "timeout_seconds": 5}}),
    )


async def evaluate_by_worker(settings: Settings, clock: ManualClock) -> None:
    """One round of the worker's alert evaluator (a real arq worker in burst mode), queued
    before it starts: arq's cron follows the wall clock, and one that came due during the
    burst would evaluate again."""
    worker = build_worker(
        settings, clock=clock, burst=True, poll_delay=0.01, handle_signals=False, cron_jobs=[]
    )
    await run_burst_after_one(worker, settings, "evaluate_alert_rules_job", "alerts")


async def test_a_rule_fires_once_is_delivered_clears_and_fires_again(tenant, scoped, clock):
    h = History(tenant, scoped, clock)
    await h.templates()
    received: list[dict[str, Any]] = []

    def receive(request: ReceivedRequest) -> HTTPReply:
        verify_signature(request.headers, request.body, [SECRET])
        received.append(json.loads(request.body))
        return HTTPReply(200, {"ok": True})

    async with RecordingHTTPServer(receive) as hook:
        await add_profile(tenant, h.ctx, "oncall", {"webhook": hook.url + "/alerts"})
        registry = build_registry(scoped)
        rule = await save(h, stuck_rule())
        start = clock.now()
        item = await h.submit("other")  # no timers: nothing changes it but people
        await h.at(0.5 * H, start)
        await evaluate_by_worker(scoped, clock)
        assert await fired_events(tenant, rule.id) == []  # 30 min unchanged: not yet stuck

        await h.at(2 * H, start)
        await evaluate_by_worker(scoped, clock)
        await evaluate_by_worker(scoped, clock)  # still stuck: the same episode, no new alert
        await run_worker(scoped, clock, registry)
        (alert,) = [r for r in received if r["kind"] == "alert"]
        assert alert["data"]["rule_id"] == rule.id
        assert alert["title"] == "Alert: stuck"
        assert "1 items in review unchanged for over 1 h" in alert["summary"]
        assert [e["action"] for e in await fired_events(tenant, rule.id)] == ["alert.fired"]

        await h.vote(item, "ann", "approve")  # decided: nothing is stuck any more
        await evaluate_by_worker(scoped, clock)
        await evaluate_by_worker(scoped, clock)
        events = await fired_events(tenant, rule.id)
        assert [e["action"] for e in events] == ["alert.fired", "alert.cleared"]
        await run_worker(scoped, clock, registry)
        await run_worker(scoped, clock, registry)  # planned again: nothing new
        (resolved,) = [r for r in received if r["data"].get("alert_status") == "resolved"]
        assert resolved["data"]["alert_id"] == alert["data"]["alert_id"]
        assert resolved["title"] == "Resolved: stuck"
        assert resolved["summary"].startswith("Back within the threshold: 0 items in review")
        assert alert["data"]["alert_status"] == "firing"

        await h.submit("other")  # a new episode once it is stuck again
        await h.at(3.5 * H, start)
        await evaluate_by_worker(scoped, clock)
        await run_worker(scoped, clock, registry)
        episodes = [r["data"]["alert_id"] for r in received if r["kind"] == "alert"]
        statuses = [r["data"]["alert_status"] for r in received if r["kind"] == "alert"]
        assert statuses == ["firing", "resolved", "firing"]
        assert len(set(episodes)) == 2 and episodes[0] == episodes[1]
        events = await fired_events(tenant, rule.id)
        assert [e["action"] for e in events] == ["alert.fired", "alert.cleared", "alert.fired"]
        assert [e["data"]["episode"] for e in events] == [1, 1, 2]


async def test_concurrent_evaluators_raise_one_alert_per_episode(tenant, settings, clock):
    h = History(tenant, settings, clock)
    await h.templates()
    await h.submit()
    before = REGISTRY.get_sample_value("signoff_alerts_fired_total", {"kind": "backlog"}) or 0
    for round_no in range(15):
        spec = AlertRuleSpec(
            name=f"backlog {round_no}",
            kind=AlertRuleKind.BACKLOG,
            threshold=0,
            window=None,
            notify=Recipients(roles=("ops",)),
        )
        rule = await save(h, spec)
        moves = await asyncio.gather(
            alerts.evaluate_rule(h.ctx, tenant, UUID(rule.id)),
            alerts.evaluate_rule(h.ctx, tenant, UUID(rule.id)),
            alerts.evaluate_rules(h.ctx, [tenant]),
        )
        assert moves[:2].count(Move.FIRE) + sum(1 for _ in moves[2].fired if _ == rule.id) == 1
        assert [e["action"] for e in await fired_events(tenant, rule.id)] == ["alert.fired"]
        (count,) = await sql.fetch(
            "SELECT count(*) AS n FROM alert WHERE rule_id = $1", UUID(rule.id)
        )
        assert count["n"] == 1
    after = REGISTRY.get_sample_value("signoff_alerts_fired_total", {"kind": "backlog"})
    assert after == before + 15


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"name": " "}, "name"),
        ({"kind": AlertRuleKind.REJECTION_RATE, "threshold": 1.0}, "threshold"),
        ({"threshold": 1.5}, "threshold"),
        ({"window": None}, "windowSeconds"),
        ({"window": timedelta(seconds=59)}, "windowSeconds"),
        ({"kind": AlertRuleKind.BACKLOG}, "windowSeconds"),
        ({"notify": Recipients()}, "notify"),
        ({"min_samples": 0}, "minSamples"),
    ],
)
async def test_rules_past_their_bounds_are_invalid_input(tenant, services, changes, field):
    with pytest.raises(DomainError) as refused:
        await alerts.save_rule(
            actor(tenant, *ADMIN), services, alerts.SaveRuleInput(spec=stuck_rule(**changes))
        )
    assert refused.value.code == ErrorCode.INVALID_INPUT
    assert refused.value.field == field


async def test_rate_rules_need_their_samples(tenant, settings, clock):
    h = History(tenant, settings, clock)
    await h.templates()
    rule = await save(
        h,
        stuck_rule(
            "rejections",
            kind=AlertRuleKind.REJECTION_RATE,
            threshold=0.5,
            window=2 * H,
            min_samples=2,
        ),
    )
    first = await h.submit()
    await h.vote(first, "ann", "reject", "too risky")  # 1 of 1 rejected: too few to tell
    assert await alerts.evaluate_rule(h.ctx, tenant, UUID(rule.id)) is Move.STAY
    second = await h.submit()
    await h.vote(second, "ann", "reject", "too risky")  # 2 of 2
    assert await alerts.evaluate_rule(h.ctx, tenant, UUID(rule.id)) is Move.FIRE
    await h.at(3 * H, clock.now())  # both fall out of the window
    assert await alerts.evaluate_rule(h.ctx, tenant, UUID(rule.id)) is Move.CLEAR


SAVE = """mutation($input: SaveAlertRuleInput!) { saveAlertRule(input: $input) {
  alertRule { id name ruleKind threshold windowSeconds minSamples enabled firing episode version
              notify { users groups roles } }
  errors { code field message } } }"""
ACK = """mutation($input: AcknowledgeAlertInput!) { acknowledgeAlert(input: $input) {
  alert { id acknowledgedBy acknowledgement } errors { code field } } }"""
ALERTS = """query($open: Boolean, $after: String) { alerts(first: 1, open: $open, after: $after) {
  edges { cursor node { id ruleId ruleName ruleKind episode measuredValue samples threshold
                        raisedAt clearedAt acknowledgedBy } }
  pageInfo { hasNextPage endCursor } } }"""
NODE = (
    "query($id: ID!) { node(id: $id) { id ... on Alert { ruleName } ... on AlertRule { name } } }"
)


def rule_input(**extra: Any) -> dict[str, Any]:
    return {
        "input": {
            "name": "backlog",
            "ruleKind": "BACKLOG",
            "threshold": 0,
            "roles": ["ops"],
            **extra,
        }
    }


async def test_rules_and_alerts_through_graphql(gql, tenant, settings, clock):
    h = History(tenant, settings, clock)
    await h.templates()
    saved = await gql.data(
        SAVE, rule_input(guards={"idempotencyKey": "k1"}), as_user="boss", roles=("admin",)
    )
    rule = saved["saveAlertRule"]["alertRule"]
    assert (rule["version"], rule["firing"], rule["notify"]["roles"]) == (1, False, ["ops"])
    again = await gql.data(
        SAVE, rule_input(guards={"idempotencyKey": "k1"}), as_user="boss", roles=("admin",)
    )
    assert again["saveAlertRule"]["alertRule"]["id"] == rule["id"]  # a replay, not a second rule
    conflict = await gql.data(
        SAVE,
        rule_input(id=rule["id"], threshold=1, guards={"expectedVersion": 7}),
        as_user="boss",
        roles=("admin",),
    )
    assert conflict["saveAlertRule"]["errors"][0]["code"] == "VERSION_CONFLICT"
    refused = await gql.data(SAVE, rule_input(name="x"), as_user="ann", roles=("auditor",))
    assert refused["saveAlertRule"]["errors"][0]["code"] == "FORBIDDEN"
    invalid = await gql.data(
        SAVE, rule_input(name="rate", ruleKind="REJECTION_RATE", threshold=3), as_user="boss",
        roles=("admin",),
    )  # fmt: skip
    assert invalid["saveAlertRule"]["errors"][0]["field"] == "threshold"

    await h.submit()
    await h.submit()
    await alerts.evaluate_rules(h.ctx, [tenant])  # fires: 2 items in review
    await h.vote((await h.submit()), "ann", "approve")
    listed = await gql.data(ALERTS, {"open": True}, as_user="ann", roles=("auditor",))
    (edge,) = listed["alerts"]["edges"]
    alert = edge["node"]
    assert (alert["ruleName"], alert["ruleKind"], alert["episode"]) == ("backlog", "BACKLOG", 1)
    assert (alert["measuredValue"], alert["clearedAt"]) == (2.0, None)
    assert listed["alerts"]["pageInfo"]["hasNextPage"] is False
    assert (await gql.data(ALERTS, {"open": False}, as_user="boss", roles=("admin",)))["alerts"][
        "edges"
    ] == []
    for node_id, field in ((alert["id"], "ruleName"), (rule["id"], "name")):
        found = await gql.data(NODE, {"id": node_id}, as_user="boss", roles=("admin",))
        assert found["node"]["id"] == node_id and found["node"][field] == "backlog"
    hidden = await gql.data(NODE, {"id": alert["id"]}, as_user="ann")
    assert hidden["node"] is None
    forbidden = (await gql.run(ALERTS, {}, token=gql.token("ann"))).json()
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    not_admin = await gql.data(
        ACK, {"input": {"id": alert["id"]}}, as_user="ann", roles=("auditor",)
    )
    assert not_admin["acknowledgeAlert"]["errors"][0]["code"] == "FORBIDDEN"
    ack = {"input": {"id": alert["id"], "note": "on it", "guards": {"idempotencyKey": "a1"}}}
    done = await gql.data(ACK, ack, as_user="boss", roles=("admin",))
    assert done["acknowledgeAlert"]["alert"]["acknowledgedBy"] == "boss"
    replay = await gql.data(ACK, ack, as_user="boss", roles=("admin",))
    assert replay["acknowledgeAlert"]["errors"] == []
    twice = await gql.data(ACK, {"input": {"id": alert["id"]}}, as_user="boss", roles=("admin",))
    assert twice["acknowledgeAlert"]["errors"][0]["code"] == "ILLEGAL_TRANSITION"
    audited = await sql.fetch(
        "SELECT action FROM audit_event WHERE tenant_id = $1 AND action LIKE 'alert%' ORDER BY seq",
        tenant,
    )
    assert [r["action"] for r in audited] == [
        "alert_rule.created",
        "alert.fired",
        "alert.acknowledged",
    ]


async def test_disabling_a_firing_rule_clears_its_alert(tenant, settings, clock):
    h = History(tenant, settings, clock)
    await h.templates()
    rule = await save(h, stuck_rule(kind=AlertRuleKind.BACKLOG, window=None))
    await h.submit()
    assert await alerts.evaluate_rule(h.ctx, tenant, UUID(rule.id)) is Move.FIRE
    spec = dataclasses.replace(rule.spec, enabled=False)
    disabled = await save(h, spec, rule_id=UUID(rule.id), expected_version=1)
    assert (disabled.firing, disabled.version) == (False, 2)
    assert [e["action"] for e in await fired_events(tenant, rule.id)] == [
        "alert.fired",
        "alert.cleared",
    ]
    assert await alerts.evaluate_rule(h.ctx, tenant, UUID(rule.id)) is None  # not evaluated
    assert isinstance(h.ctx, ServiceContext)


async def test_an_alert_and_its_resolution_arrive_by_email_once_each(tenant, scoped, clock, smtp):
    inbox, port = smtp
    email_channel = {
        "email": {
            "host": "127.0.0.1",
            "port": port,
            "from_address": "signoff@example.org",
            "security": "none",
            "timeout_seconds": 5,
        }
    }
    settings = dataclasses.replace(scoped, notify_channels=json.dumps(email_channel))
    h = History(tenant, settings, clock)
    await h.templates()
    await add_profile(tenant, h.ctx, "oncall", {"email": "oncall@example.org"})
    registry = build_registry(settings)
    rule = await save(h, stuck_rule("backlog", kind=AlertRuleKind.BACKLOG, window=None))
    item = await h.submit()
    await evaluate_by_worker(settings, clock)
    await run_worker(settings, clock, registry)
    (fired,) = inbox.messages
    assert "oncall@example.org" in fired["To"]
    assert "Alert: backlog" in fired["Subject"]
    assert "1 items in review (threshold 0)." in fired.get_body(("plain",)).get_content()

    await h.vote(item, "ann", "approve")
    await evaluate_by_worker(settings, clock)
    await evaluate_by_worker(settings, clock)  # still quiet: nothing more
    await run_worker(settings, clock, registry)
    await run_worker(settings, clock, registry)
    assert len(inbox.messages) == 2
    resolved = inbox.messages[1]
    assert "Resolved: backlog" in resolved["Subject"]
    body = resolved.get_body(("plain",)).get_content()
    assert "Back within the threshold: 0 items in review (threshold 0)." in body
    sent = [d for d in await deliveries(tenant) if d["event_kind"] == "alert"]
    assert [(d["channel"], d["status"]) for d in sent] == [("email", "delivered")] * 2
    assert [e["action"] for e in await fired_events(tenant, rule.id)] == [
        "alert.fired",
        "alert.cleared",
    ]


async def test_concurrent_evaluators_clear_once_and_notify_once(tenant, scoped, clock):
    """However many evaluators find the figure back at once, one `alert.cleared` is written
    and each recipient gets one resolved delivery, however often planning runs."""
    h = History(tenant, scoped, clock)
    await h.templates()
    await add_profile(tenant, h.ctx, "oncall", {"webhook": "https://hooks.example/alerts"})
    for round_no in range(5):
        spec = stuck_rule(f"backlog {round_no}", kind=AlertRuleKind.BACKLOG, window=None)
        rule = await save(h, spec)
        item = await h.submit()
        assert await alerts.evaluate_rule(h.ctx, tenant, UUID(rule.id)) is Move.FIRE
        await h.vote(item, "ann", "approve")
        moves = await asyncio.gather(
            alerts.evaluate_rule(h.ctx, tenant, UUID(rule.id)),
            alerts.evaluate_rule(h.ctx, tenant, UUID(rule.id)),
            alerts.evaluate_rules(h.ctx, [tenant]),
        )
        cleared = moves[:2].count(Move.CLEAR) + moves[2].cleared.count(rule.id)
        assert cleared == 1
        events = await fired_events(tenant, rule.id)
        assert [e["action"] for e in events] == ["alert.fired", "alert.cleared"]
        await asyncio.gather(
            notifications.plan_notifications(h.ctx, tenant),
            notifications.plan_notifications(h.ctx, tenant),
        )
        await notifications.plan_notifications(h.ctx, tenant)
        planned = [
            d["payload"]["alert_status"]
            for d in await deliveries(tenant)
            if d["event_kind"] == "alert" and d["payload"].get("rule_id") == rule.id
        ]
        assert sorted(planned) == ["firing", "resolved"]
    # nobody runs these deliveries: keep a later test's sweeper off them
    await sql.execute(
        "UPDATE notification_delivery SET status = 'suppressed', next_attempt_at = NULL"
        " WHERE tenant_id = $1 AND status IN ('queued', 'retrying', 'digested')",
        tenant,
    )

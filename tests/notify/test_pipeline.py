"""The delivery pipeline against real PostgreSQL and Redis, with fake channels and a real arq
worker in burst mode. Time is the test's ManualClock: no test sleeps for a delay."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta

import pytest

from signoff.db import sql
from signoff.db.notification_tables import NOTIFICATION_TABLES
from signoff.domain import notification_policy as policy
from signoff.domain.actors import Actor
from signoff.domain.errors import DomainError, ErrorCode
from signoff.notify import NotifierRegistry
from signoff.services import notification_admin
from signoff.services import notifications as notification_services
from signoff.services.uow import unit_of_work
from signoff.testing import FakeChannel
from tests.notify.conftest import add_profile, deliveries, person, run_worker, submit_change


def fakes(*names: str, timeout: float = 0.3) -> tuple[NotifierRegistry, dict[str, FakeChannel]]:
    registry = NotifierRegistry(deliver_timeout=timeout)
    channels = {}
    for name in names:
        channels[name] = FakeChannel(name)
        registry.register(channels[name], name)
    registry.configure({name: {} for name in names})
    return registry, channels


async def record_timer_event(tenant, services, action, item_id, step_id) -> None:
    """An audit event as the timers write it (the pipeline only reads the trail)."""
    async with unit_of_work(Actor.system(tenant), services) as uow:
        uow.record(action, item_id=item_id, step_id=step_id, data={"by": "test"})


# --------------------------------------------------------------------------- pure rules


def test_backoff_grows_with_jitter_caps_and_honours_retry_after():
    rng = random.Random(7)
    for attempt, ceiling in [(1, 10), (2, 20), (3, 40), (4, 60), (9, 60)]:
        delay = policy.backoff_delay(attempt, base=10, cap=60, rng=rng).total_seconds()
        assert ceiling / 2 <= delay <= ceiling
    assert policy.backoff_delay(1, base=10, cap=60, retry_after=300).total_seconds() == 300


def test_quiet_hours_across_midnight_in_a_time_zone():
    quiet = policy.QuietHours(time(22, 0), time(7, 0), "Europe/Berlin")
    # 21:30 UTC = 22:30 in Berlin (winter): quiet until 07:00 Berlin = 06:00 UTC next day.
    assert quiet.until(datetime(2026, 1, 5, 21, 30, tzinfo=UTC)) == datetime(
        2026, 1, 6, 6, 0, tzinfo=UTC
    )
    assert quiet.until(datetime(2026, 1, 6, 5, 0, tzinfo=UTC)) == datetime(
        2026, 1, 6, 6, 0, tzinfo=UTC
    )
    assert quiet.until(datetime(2026, 1, 6, 12, 0, tzinfo=UTC)) is None


def test_preferences_are_validated_with_every_problem():
    with pytest.raises(DomainError) as caught:
        policy.parse_preferences(
            {
                "channels": {"nonsense": ["email"], "assignment": "email"},
                "quiet_hours": {"start": "25:00", "end": "07:00", "timezone": "Mars/Base"},
                "digest_kinds": ["gossip"],
            }
        )
    paths = {p.path for p in caught.value.problems}
    assert paths == {
        "channels.nonsense",
        "channels.assignment",
        "quiet_hours.start",
        "quiet_hours.timezone",
        "digest_kinds",
    }
    prefs = policy.parse_preferences({"channels": {"default": ["slack"], "reminder": []}})
    assert prefs.channels_for("assignment", ["email", "slack"]) == ["slack"]
    assert prefs.channels_for("reminder", ["email", "slack"]) == []
    assert policy.Preferences().channels_for("decision", ["slack", "email"]) == ["email", "slack"]


# --------------------------------------------------------------------------- planning


async def test_assignment_expands_roles_and_groups_never_the_actor(
    tenant, demo_templates, nsvc, clock
):
    await add_profile(tenant, nsvc, "alice", {"fake": "alice@x"}, roles=("change-approver",))
    await add_profile(tenant, nsvc, "bob", {"fake": "bob@x"}, roles=("change-approver",))
    await add_profile(tenant, nsvc, "carol", {"fake": "carol@x"}, groups=("other",))
    # The requester is an approver too, but caused the event: not told about it.
    await add_profile(tenant, nsvc, "requester", {"fake": "req@x"}, roles=("change-approver",))
    registry, channels = fakes("fake")
    await submit_change(tenant, nsvc)

    await run_worker(nsvc.settings, clock, registry)

    sent = sorted(m.recipient.user_id for m in channels["fake"].sent)
    assert sent == ["alice", "bob"]
    message = channels["fake"].sent[0].message
    assert message.subject == "assignment: Deploy api v42"
    assert message.link and message.link.startswith("https://signoff.example/items/")
    rows = await deliveries(tenant)
    assert {r["status"] for r in rows} == {"delivered"}
    assert all(r["attempts"] == 1 for r in rows)


async def test_same_event_to_same_recipient_is_sent_once(tenant, demo_templates, nsvc, clock):
    await add_profile(tenant, nsvc, "alice", {"fake": "alice@x"}, roles=("change-approver",))
    registry, channels = fakes("fake")
    await submit_change(tenant, nsvc)
    first = await notification_services.plan_notifications(nsvc, tenant)
    # Planning again (a duplicate job, a sweeper) and rewinding the cursor plan nothing new.
    assert await notification_services.plan_notifications(nsvc, tenant) == []
    await sql.execute("UPDATE notification_cursor SET last_seq = 0 WHERE tenant_id = $1", tenant)
    assert await notification_services.plan_notifications(nsvc, tenant) == []
    assert len(first) == 1
    # Two workers racing on one delivery, then the sweeper: one message.
    outcomes = [
        await notification_services.deliver(nsvc, registry, first[0].delivery_id) for _ in range(2)
    ]
    await run_worker(nsvc.settings, clock, registry)
    assert outcomes == ["delivered", "delivered"]
    assert len(channels["fake"].sent) == 1
    assert len(await deliveries(tenant)) == 1


async def test_hanging_and_raising_plugins_block_nobody(tenant, demo_templates, nsvc, clock):
    await add_profile(
        tenant,
        nsvc,
        "alice",
        {"stuck": "a", "broken": "a", "fine": "a"},
        roles=("change-approver",),
    )
    registry, channels = fakes("stuck", "broken", "fine", timeout=0.3)
    channels["stuck"].hang()
    channels["broken"].fail_times(99, "boom")

    view = await submit_change(tenant, nsvc)  # the API transaction never waits for a channel
    assert view.item.state == "pending"
    await run_worker(nsvc.settings, clock, registry)

    assert len(channels["fine"].sent) == 1
    by_channel = {r["channel"]: r for r in await deliveries(tenant)}
    assert by_channel["fine"]["status"] == "delivered"
    assert by_channel["stuck"]["status"] == "retrying"
    assert "timed out" in by_channel["stuck"]["last_error"]
    assert by_channel["broken"]["status"] == "retrying"
    assert "boom" in by_channel["broken"]["last_error"]
    attempts = await notification_admin.attempts_of([by_channel["stuck"]["id"]])
    (attempt,) = attempts[by_channel["stuck"]["id"]]
    assert attempt["status"] == "failed_retryable" and attempt["duration_ms"] >= 250


async def test_retries_back_off_on_the_clock_then_dead_letter_is_audited(
    tenant, demo_templates, nsvc, clock
):
    await add_profile(tenant, nsvc, "alice", {"fake": "a"}, roles=("change-approver",))
    registry, channels = fakes("fake")
    channels["fake"].fail_times(99, "provider down")
    await submit_change(tenant, nsvc)

    start = clock.now()
    await run_worker(nsvc.settings, clock, registry)
    (row,) = await deliveries(tenant)
    assert row["status"] == "retrying" and row["attempts"] == 1
    assert start + timedelta(seconds=5) <= row["next_attempt_at"] <= start + timedelta(seconds=10)

    # Not due yet: a sweep does nothing.
    await run_worker(nsvc.settings, clock, registry)
    assert channels["fake"].attempts == 1

    clock.set(row["next_attempt_at"])
    await run_worker(nsvc.settings, clock, registry)
    (row,) = await deliveries(tenant)
    assert row["attempts"] == 2
    assert clock.now() + timedelta(seconds=10) <= row["next_attempt_at"]
    assert row["next_attempt_at"] <= clock.now() + timedelta(seconds=20)

    clock.set(row["next_attempt_at"])
    await run_worker(nsvc.settings, clock, registry)
    (row,) = await deliveries(tenant)
    assert row["status"] == "dead" and row["attempts"] == 3
    assert channels["fake"].attempts == 3
    events = await sql.fetch(
        "SELECT * FROM audit_event WHERE tenant_id = $1 AND action = 'notification.dead_lettered'",
        tenant,
    )
    assert len(events) == 1 and events[0]["actor_id"] == "system"
    assert "provider down" in events[0]["reason"]

    # An operator retries: a fresh set of attempts, audited; the next sweep delivers.
    with pytest.raises(DomainError) as refused:
        await notification_admin.retry_dead_letter(person(tenant, "bob"), nsvc, row["id"])
    assert refused.value.code == ErrorCode.FORBIDDEN
    channels["fake"].fail_times(0)
    await notification_admin.retry_dead_letter(person(tenant, "ops", "admin"), nsvc, row["id"])
    await run_worker(nsvc.settings, clock, registry)
    (row,) = await deliveries(tenant)
    assert row["status"] == "delivered" and row["attempts"] == 4
    assert len(channels["fake"].sent) == 1


async def test_permanent_failure_dead_letters_at_once(tenant, demo_templates, nsvc, clock):
    await add_profile(tenant, nsvc, "alice", {"fake": "a"}, roles=("change-approver",))
    registry, channels = fakes("fake")
    channels["fake"].fail_permanently("no such user")
    await submit_change(tenant, nsvc)
    await run_worker(nsvc.settings, clock, registry)
    (row,) = await deliveries(tenant)
    assert row["status"] == "dead" and row["attempts"] == 1
    assert row["last_error"] == "no such user"


async def test_burst_to_one_recipient_is_folded_into_a_digest(tenant, demo_templates, nsvc, clock):
    await add_profile(tenant, nsvc, "alice", {"fake": "a"}, roles=("change-approver",))
    registry, channels = fakes("fake")
    for n in range(5):
        await submit_change(tenant, nsvc, title=f"Change {n}")
    await run_worker(nsvc.settings, clock, registry)

    # Threshold 3: three sent one by one, two held for the digest. The three deliveries run
    # concurrently, so the order they reach the channel in is not part of the contract.
    assert sorted(m.message.subject for m in channels["fake"].sent) == [
        f"assignment: Change {n}" for n in range(3)
    ]
    sent_alone = [r for r in await deliveries(tenant) if r["status"] == "delivered"]
    assert sorted(r["payload"]["title"] for r in sent_alone) == [f"Change {n}" for n in range(3)]
    assert all(r["attempts"] == 1 for r in sent_alone)  # each of the three sent exactly once
    held = [r for r in await deliveries(tenant) if r["status"] == "digested"]
    assert len(held) == 2 and all(r["digest_id"] is None for r in held)
    assert sorted(r["payload"]["title"] for r in held) == ["Change 3", "Change 4"]

    clock.advance(timedelta(seconds=300))
    await run_worker(nsvc.settings, clock, registry)
    assert len(channels["fake"].sent) == 4
    digest = channels["fake"].sent[3].message
    assert digest.subject == "digest: 2 notifications"
    rows = {r["id"]: r for r in await deliveries(tenant)}
    digest_row = next(r for r in rows.values() if r["event_kind"] == "digest")
    assert digest_row["status"] == "delivered"
    assert {r["digest_id"] for r in rows.values() if r["status"] == "digested"} == {
        digest_row["id"]
    }
    # A later sweep folds nothing twice.
    await run_worker(nsvc.settings, clock, registry)
    assert len(channels["fake"].sent) == 4


async def test_quiet_hours_defer_normal_but_not_critical(tenant, demo_templates, nsvc, clock):
    # The clock starts at 09:00 UTC; quiet from 08:00 to 12:00 UTC.
    quiet = {"quiet_hours": {"start": "08:00", "end": "12:00", "timezone": "UTC"}}
    await add_profile(
        tenant, nsvc, "alice", {"fake": "a"}, roles=("change-approver",), preferences=quiet
    )
    registry, channels = fakes("fake")
    view = await submit_change(tenant, nsvc)
    step = view.steps[0]
    await record_timer_event(tenant, nsvc, "timer.deadline_risk", view.id, step.id)
    await run_worker(nsvc.settings, clock, registry)

    assert [m.message.event_kind for m in channels["fake"].sent] == ["deadline_risk"]
    waiting = next(r for r in await deliveries(tenant) if r["event_kind"] == "assignment")
    assert waiting["status"] == "queued"
    assert waiting["next_attempt_at"] == datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    clock.set(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
    await run_worker(nsvc.settings, clock, registry)
    assert [m.message.event_kind for m in channels["fake"].sent] == ["deadline_risk", "assignment"]


async def test_preferences_choose_channels_and_digest_kinds(tenant, demo_templates, nsvc, clock):
    prefs = {
        "channels": {"assignment": ["chat"], "default": ["mail"]},
        "digest_kinds": ["reminder"],
    }
    await add_profile(
        tenant,
        nsvc,
        "alice",
        {"mail": "a@x", "chat": "U1"},
        roles=("change-approver",),
        preferences=prefs,
    )
    registry, channels = fakes("mail", "chat")
    view = await submit_change(tenant, nsvc)
    await record_timer_event(tenant, nsvc, "timer.reminder", view.id, view.steps[0].id)
    await run_worker(nsvc.settings, clock, registry)
    assert [m.message.event_kind for m in channels["chat"].sent] == ["assignment"]
    assert channels["mail"].sent == []
    reminder = next(r for r in await deliveries(tenant) if r["event_kind"] == "reminder")
    assert reminder["channel"] == "mail" and reminder["status"] == "digested"


async def test_decision_goes_to_the_requester_and_stale_step_events_to_nobody(
    tenant, demo_templates, nsvc, clock
):
    from signoff.services.items import DecideStepInput, Outcome, decide_step

    await add_profile(tenant, nsvc, "alice", {"fake": "a"}, roles=("change-approver",))
    await add_profile(tenant, nsvc, "requester", {"fake": "r"})
    registry, channels = fakes("fake")
    view = await submit_change(tenant, nsvc)
    step = view.steps[0]
    await decide_step(
        person(tenant, "alice", "change-approver"),
        nsvc,
        DecideStepInput(step_id=step.id, outcome=Outcome.APPROVE),
    )
    # A reminder fired after the decision (a late timer) notifies nobody.
    await record_timer_event(tenant, nsvc, "timer.reminder", view.id, step.id)
    await run_worker(nsvc.settings, clock, registry)
    sent = [(m.recipient.user_id, m.message.event_kind) for m in channels["fake"].sent]
    # The step was decided before planning ran: its assignment is not sent either.
    assert sent == [("requester", "decision")]


async def test_disabled_channel_is_not_planned_and_open_rows_are_suppressed(
    tenant, demo_templates, nsvc, clock
):
    await add_profile(tenant, nsvc, "alice", {"a": "1", "b": "2"}, roles=("change-approver",))
    registry, channels = fakes("a", "b")
    await submit_change(tenant, nsvc)
    due = await notification_services.plan_notifications(nsvc, tenant)
    assert len(due) == 2
    registry.unregister("b")  # the plugin was uninstalled: no code changes anywhere
    await run_worker(nsvc.settings, clock, registry)
    by_channel = {r["channel"]: r["status"] for r in await deliveries(tenant)}
    assert by_channel == {"a": "delivered", "b": "suppressed"}
    await submit_change(tenant, nsvc, title="Second")
    await run_worker(nsvc.settings, clock, registry)
    assert [r["channel"] for r in await deliveries(tenant)] == ["a", "b", "a"]


@pytest.mark.parametrize("table", NOTIFICATION_TABLES, ids=lambda t: t._meta.tablename)
async def test_notification_table_classes_match_the_database(database_url, table):
    rows = await sql.fetch(
        """SELECT column_name, is_nullable = 'YES' AS nullable FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = $1""",
        table._meta.tablename,
    )
    in_database = {r["column_name"]: r["nullable"] for r in rows}
    in_class = {c._meta.db_column_name: c._meta.null for c in table._meta.columns}
    assert in_class == in_database

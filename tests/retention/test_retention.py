"""Retention on the real database and evidence stores, with the clock in the test's hand:
content goes when its policy says and not before, history stays, the chain still verifies, a
legal hold wins, bad input changes nothing."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from datetime import timedelta

import pytest

from signoff.db import audit as audit_repo
from signoff.db import comments as comments_repo
from signoff.db import evidence as evidence_repo
from signoff.db import items as items_repo
from signoff.db import retention as retention_repo
from signoff.domain.audit import redaction_marker
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.retention import digest_of
from signoff.jobs.retention import apply_retention_job
from signoff.services import evidence as evidence_services
from signoff.services import retention as retention_services
from signoff.worker import cron_jobs
from tests.collab.conftest import comment
from tests.collab.test_evidence import upload
from tests.conftest import actor
from tests.realtime.conftest import PAYLOADS, approve, resubmit_after_changes, submit
from tests.retention.conftest import ADMIN, decided_item, set_policy

Hold = retention_services.HoldInput


async def code_of(call) -> ErrorCode:
    with pytest.raises(DomainError) as caught:
        await call
    return caught.value.code


async def actions_of(tenant, item_id) -> list[str]:
    return [e["action"] for e in await audit_repo.events_for_item(tenant, item_id)]


async def tenant_events(tenant) -> list[dict]:
    return await audit_repo.events_after(tenant, 0, 10_000)


async def test_content_goes_after_its_days_and_the_chain_still_verifies(
    esvc, store, clock, tenant, demo_templates
):
    await set_policy(esvc, tenant, 30, "redact")
    view = await decided_item(esvc, tenant)
    text = "rollback rehearsed on staging @bob"
    note = await comment(esvc, tenant, "dave", text, item_id=view.id)
    data = b"change record\n" * 1000
    _, record = await upload(esvc, tenant, view, data, description="CAB minutes")
    assert store.keys() == [record.storage_key]

    clock.advance(timedelta(days=29, hours=23))
    assert (await retention_services.apply_retention(esvc, tenant)).applied == []
    assert (await items_repo.get_item(tenant, view.id)).payload == PAYLOADS["change-approval"]

    clock.advance(timedelta(hours=1))
    report = await retention_services.apply_retention(esvc, tenant)
    assert (report.applied, report.objects_deleted) == ([view.id], 1)

    item = await items_repo.get_item(tenant, view.id)
    original = PAYLOADS["change-approval"]
    assert set(item.payload) == set(original)  # redaction keeps the keys
    assert item.payload == {k: "sha256:" + digest_of(v) for k, v in original.items()}
    assert item.version == view.item.version + 1
    revisions = await comments_repo.revisions_of(tenant, note.id)
    assert [(r.body, r.body_sha256) for r in revisions] == [
        (None, hashlib.sha256(text.encode()).hexdigest())
    ]
    purged = await evidence_repo.get_evidence(tenant, record.id)
    assert (purged.storage_key, purged.description, purged.sha256) == (
        None,
        None,
        hashlib.sha256(data).hexdigest(),
    )
    assert store.keys() == []
    assert (
        await code_of(evidence_services.open_content(actor(tenant, "dave"), esvc, record.id))
        == ErrorCode.NOT_FOUND
    )

    events = await audit_repo.events_for_item(tenant, view.id)
    submitted, applied = events[0], events[-1]
    assert applied["action"] == "item.retention_applied"
    assert applied["actor_id"] == "system"
    assert applied["data"]["payload_sha256"] == submitted["data"]["payload_sha256"]
    assert applied["data"]["payload_sha256"] == digest_of(original)
    assert (applied["data"]["comment_revisions"], applied["data"]["evidence"]) == (1, 1)
    assert await audit_repo.verify_chain(tenant) is None
    done = await retention_repo.retention_of(tenant, view.id)
    assert (done.action, done.policy_key, done.days) == ("redact", "", 30)

    # Handled once: a later run changes nothing.
    clock.advance(timedelta(days=400))
    assert (await retention_services.apply_retention(esvc, tenant)).applied == []
    assert (await actions_of(tenant, view.id)).count("item.retention_applied") == 1


async def test_a_template_policy_overrides_the_tenant_default(
    services, clock, tenant, demo_templates
):
    await set_policy(services, tenant, 365, "redact")
    await set_policy(services, tenant, 7, "purge", "change-approval")
    change = await decided_item(services, tenant)
    other = await submit(services, tenant, "exception-request", "MFA exception")
    clock.advance(timedelta(days=8))
    report = await retention_services.apply_retention(services, tenant)
    assert report.applied == [change.id]
    assert (await items_repo.get_item(tenant, change.id)).payload == {}
    assert (await retention_repo.retention_of(tenant, change.id)).policy_key == "change-approval"
    # The other item is still open (and the default's 365 days have not passed): untouched.
    assert (await items_repo.get_item(tenant, other.id)).payload == PAYLOADS["exception-request"]


async def test_open_items_keep_their_content_however_old(services, clock, tenant, demo_templates):
    await set_policy(services, tenant, 1, "purge")
    view = await submit(services, tenant, "change-approval", "Deploy")
    clock.advance(timedelta(days=3650))
    assert (await retention_services.apply_retention(services, tenant)).applied == []
    assert (await items_repo.get_item(tenant, view.id)).payload == PAYLOADS["change-approval"]


async def test_a_purge_honours_a_legal_hold(services, clock, tenant, demo_templates):
    await set_policy(services, tenant, 10, "purge")
    held = await decided_item(services, tenant, "Held")
    free = await decided_item(services, tenant, "Free")
    hold = await retention_services.place_hold(
        actor(tenant, "lena", "legal"),
        services,
        Hold(held.id, "litigation 2026-114", idempotency_key="h-1"),
    )
    assert (hold.placed_by, hold.reason) == ("lena", "litigation 2026-114")
    clock.advance(timedelta(days=11))
    report = await retention_services.apply_retention(services, tenant)
    assert report.applied == [free.id]
    assert (await items_repo.get_item(tenant, held.id)).payload == PAYLOADS["change-approval"]
    assert await retention_repo.retention_of(tenant, held.id) is None
    # Under the lock too: the item itself says it is held.
    assert await retention_services.apply_to_item(services, tenant, held.id) == "held"

    await retention_services.release_hold(
        actor(tenant, "lena", "legal"), services, Hold(held.id, "case closed")
    )
    report = await retention_services.apply_retention(services, tenant)
    assert report.applied == [held.id]
    assert (await items_repo.get_item(tenant, held.id)).payload == {}
    assert (await actions_of(tenant, held.id))[-3:] == [
        "item.legal_hold_placed",
        "item.legal_hold_released",
        "item.retention_applied",
    ]
    released = (await audit_repo.events_for_item(tenant, held.id))[-2]
    assert (released["reason"], released["data"]["placed_by"]) == ("case closed", "lena")
    assert await audit_repo.verify_chain(tenant) is None


async def test_legal_holds_are_permission_checked_validated_and_idempotent(
    services, tenant, demo_templates
):
    view = await decided_item(services, tenant)
    legal = actor(tenant, "lena", "legal")
    before = len(await tenant_events(tenant))
    refusals = [
        (actor(tenant, "dave"), Hold(view.id, "because"), ErrorCode.FORBIDDEN),
        (actor(tenant, "bob", "change-approver"), Hold(view.id, "x"), ErrorCode.FORBIDDEN),
        (legal, Hold(view.id, "   "), ErrorCode.INVALID_INPUT),
        (legal, Hold(view.id, "x" * 4001), ErrorCode.INVALID_INPUT),
        (legal, Hold(uuid.uuid4(), "r"), ErrorCode.NOT_FOUND),
    ]
    for who, inp, code in refusals:
        assert await code_of(retention_services.place_hold(who, services, inp)) == code
    assert (
        await code_of(retention_services.release_hold(legal, services, Hold(view.id, "r")))
        == ErrorCode.ILLEGAL_TRANSITION
    )
    assert len(await tenant_events(tenant)) == before  # nothing changed, nothing audited
    assert await retention_repo.hold_of(tenant, view.id) is None

    first = await retention_services.place_hold(legal, services, Hold(view.id, "audit", "k"))
    again = await retention_services.place_hold(legal, services, Hold(view.id, "audit", "k"))
    assert again == first
    assert (
        await code_of(retention_services.place_hold(legal, services, Hold(view.id, "audit")))
        == ErrorCode.ILLEGAL_TRANSITION
    )
    assert (await actions_of(tenant, view.id)).count("item.legal_hold_placed") == 1


async def test_policies_are_admin_only_validated_and_audited(services, tenant):
    before = len(await tenant_events(tenant))
    Input = retention_services.SetPolicyInput
    refusals = [
        (actor(tenant, "dave"), Input(days=30, action="purge"), ErrorCode.FORBIDDEN),
        (actor(tenant, *ADMIN), Input(days=0, action="purge"), ErrorCode.INVALID_INPUT),
        (actor(tenant, *ADMIN), Input(days=36501, action="purge"), ErrorCode.INVALID_INPUT),
        (actor(tenant, *ADMIN), Input(days=30, action="shred"), ErrorCode.INVALID_INPUT),
    ]
    for who, inp, code in refusals:
        assert await code_of(retention_services.set_policy(who, services, inp)) == code
    assert await retention_repo.policies_of(tenant) == []
    assert len(await tenant_events(tenant)) == before

    await set_policy(services, tenant, 30, "redact")
    await set_policy(services, tenant, 90, "purge")
    await set_policy(services, tenant, 7, "purge", "change-approval")
    policies = await retention_services.list_policies(actor(tenant, *ADMIN), services)
    assert [(p.template_key, p.days, p.action) for p in policies] == [
        ("", 90, "purge"),
        ("change-approval", 7, "purge"),
    ]
    removed = await retention_services.remove_policy(
        actor(tenant, *ADMIN), services, "change-approval", "not needed"
    )
    assert removed.days == 7
    assert (
        await code_of(
            retention_services.remove_policy(actor(tenant, *ADMIN), services, "change-approval")
        )
        == ErrorCode.NOT_FOUND
    )
    events = await tenant_events(tenant)
    assert [e["action"] for e in events[before:]] == [
        "retention.policy_set",
        "retention.policy_set",
        "retention.policy_set",
        "retention.policy_removed",
    ]
    assert events[before + 1]["data"]["before"] == {
        "template_key": "",
        "days": 30,
        "action": "redact",
    }


async def test_the_worker_runs_retention_hourly(services, clock, tenant, demo_templates):
    assert any(job.coroutine is apply_retention_job for job in cron_jobs(services.settings))
    await set_policy(services, tenant, 2, "purge")
    view = await decided_item(services, tenant)
    clock.advance(timedelta(days=2))
    # a worker for this tenant only (`timer_tenants`): other tests' tenants are due too
    worker = dataclasses.replace(
        services, settings=dataclasses.replace(services.settings, timer_tenants=(tenant,))
    )
    result = await apply_retention_job({"services": worker})
    assert result["applied"] == 1
    assert await retention_repo.retention_of(tenant, view.id) is not None


async def test_payload_copies_in_the_items_audit_events_are_redacted(
    services, clock, tenant, demo_templates
):
    await set_policy(services, tenant, 3, "purge")
    view = await submit(services, tenant, "change-approval", "Deploy")
    new = {**PAYLOADS["change-approval"], "window": "saturday"}
    view = await resubmit_after_changes(services, tenant, view, new)
    view = await approve(services, tenant, view, "bob", "change-approver")
    clock.advance(timedelta(days=4))
    assert (await retention_services.apply_retention(services, tenant)).applied == [view.id]

    events = await audit_repo.events_for_item(tenant, view.id)
    resubmitted = next(e for e in events if e["action"] == "item.resubmit")
    assert resubmitted["data"]["previous_payload"] == redaction_marker(PAYLOADS["change-approval"])
    assert (resubmitted["data"]["revision"], resubmitted["data"]["to"]) == (2, "pending")
    assert resubmitted["redacted_at"] == clock.now()
    assert events[-1]["data"]["audit_events"] == 1
    assert await audit_repo.verify_chain(tenant) is None

"""Incident reviews on real PostgreSQL and a real store: from a trace with its snapshot, from a
decided item with its history linked, precedent with reasons, and the demo template."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from signoff.db import audit as audit_repo
from signoff.db.paging import Window
from signoff.domain.errors import DomainError, ErrorCode
from signoff.services import evidence as evidence_services
from signoff.services import incidents as incident_services
from signoff.services import items as item_services
from tests.conftest import actor
from tests.realtime.conftest import approve, submit

INVESTIGATOR = ("incident-reviewer",)
PAGE = Window(10)


def investigator(tenant):
    return actor(tenant, "ivy", "admin")


async def read_all(esvc, who, evidence_id) -> bytes:
    content = await evidence_services.open_content(who, esvc, evidence_id)
    return b"".join([c async for c in content.chunks])


async def reject(services, tenant, view, user, *roles, reason):
    step = next(s for s in view.steps if s.state == "active")
    return await item_services.decide_step(
        actor(tenant, user, *roles),
        services,
        item_services.DecideStepInput(
            step_id=step.id, outcome=item_services.Outcome.REJECT, reason=reason
        ),
    )


async def test_a_review_opened_from_a_trace_carries_its_snapshot(esvc, tenant, demo_templates):
    ivy = investigator(tenant)
    snapshot = {"trace": "tr-42", "agent": "mailer", "steps": [{"tool": "send_email", "to": 300}]}
    review = await incident_services.open_incident_review(
        ivy,
        esvc,
        incident_services.OpenReviewInput(
            source_ref="tr-42",
            title="Mailer sent 300 e-mails",
            subject="agent:mailer",
            summary="bulk send without approval",
            snapshot=snapshot,
            idempotency_key="open-tr-42",
        ),
    )
    assert review.item.kind == "incident_review"
    assert review.item.external_ref == "tr-42"
    assert [s.key for s in review.steps] == ["triage", "findings"]
    record = await incident_services.get_review(ivy, esvc, review.id)
    assert (record.source_ref, record.source_kind, record.subject) == (
        "tr-42",
        "trace",
        "agent:mailer",
    )
    attached = await evidence_services.get_evidence(ivy, esvc, record.snapshot_evidence_id)
    assert (attached.source, attached.content_type) == ("snapshot", "application/json")
    assert json.loads(await read_all(esvc, ivy, attached.id)) == snapshot
    actions = [e["action"] for e in await audit_repo.events_for_item(tenant, review.id)]
    assert "item.submitted" in actions
    assert "evidence.attached" in actions and "incident_review.opened" in actions
    # The same key again: the same review, no second snapshot.
    again = await incident_services.open_incident_review(
        ivy,
        esvc,
        incident_services.OpenReviewInput(
            source_ref="tr-42",
            title="Mailer sent 300 e-mails",
            subject="agent:mailer",
            summary="bulk send without approval",
            snapshot=snapshot,
            idempotency_key="open-tr-42",
        ),
    )
    assert again.id == review.id
    assert len(await evidence_services.list_evidence(ivy, esvc, review.id)) == 1


async def test_a_decided_item_is_reopened_with_its_history_linked(esvc, tenant, demo_templates):
    view = await submit(esvc, tenant, "change-approval", "Deploy payments")
    decided = await reject(esvc, tenant, view, "bob", "change-approver", reason="no rollback")
    assert decided.state.value == "rejected"
    ivy = investigator(tenant)
    review = await incident_services.reopen_as_incident_review(
        ivy, esvc, incident_services.ReopenInput(item_id=view.id, summary="was it right?")
    )
    record = await incident_services.get_review(ivy, esvc, review.id)
    assert record.reviewed_item_id == view.id and record.source_kind == "item"
    history = json.loads(await read_all(esvc, ivy, record.snapshot_evidence_id))
    assert history["item"]["id"] == str(view.id)
    assert [d["reason"] for d in history["decisions"]] == ["no rollback"]
    assert [e["action"] for e in history["audit_events"]][:1] == ["item.submitted"]
    # The original's own history says it was reopened, and by which review.
    last = (await audit_repo.events_for_item(tenant, view.id))[-1]
    assert (last["action"], last["data"]["review_item_id"]) == (
        "item.reopened_as_review",
        str(review.id),
    )
    assert [v.id for v in await incident_services.reviews_of(ivy, esvc, view.id)] == [review.id]


async def test_only_decided_items_are_reopened_by_readers(esvc, tenant, demo_templates):
    view = await submit(esvc, tenant, "change-approval", "Deploy")
    with pytest.raises(DomainError) as caught:
        await incident_services.reopen_as_incident_review(
            investigator(tenant), esvc, incident_services.ReopenInput(item_id=view.id)
        )
    assert caught.value.code == ErrorCode.ILLEGAL_TRANSITION
    await approve(esvc, tenant, view, "bob", "change-approver")
    with pytest.raises(DomainError) as caught:
        await incident_services.reopen_as_incident_review(
            actor(tenant, "eve", "manager"), esvc, incident_services.ReopenInput(item_id=view.id)
        )
    assert caught.value.code == ErrorCode.NOT_FOUND
    with pytest.raises(DomainError) as caught:
        await incident_services.reopen_as_incident_review(
            investigator(tenant),
            esvc,
            incident_services.ReopenInput(item_id=view.id, expected_version=1),
        )
    assert caught.value.code == ErrorCode.VERSION_CONFLICT


async def test_precedent_shows_earlier_decisions_of_the_template_and_subject(
    esvc, tenant, demo_templates, clock
):
    ivy = investigator(tenant)
    earlier = []
    for n, verdict in enumerate(["approve", "reject"]):
        clock.advance(timedelta(minutes=1))  # precedent is ordered by submission time
        view = await submit(esvc, tenant, "change-approval", f"Deploy {n}")
        if verdict == "approve":
            view = await approve(esvc, tenant, view, "bob", "change-approver")
        else:
            view = await reject(esvc, tenant, view, "bob", "change-approver", reason="too risky")
        earlier.append(view)
    clock.advance(timedelta(minutes=1))
    still_open = await submit(esvc, tenant, "change-approval", "Deploy open")
    other_template = await submit(esvc, tenant, "exception-request", "MFA")
    clock.advance(timedelta(minutes=1))
    target = await submit(esvc, tenant, "change-approval", "Deploy target")
    target = await reject(esvc, tenant, target, "bob", "change-approver", reason="again")
    review = await incident_services.reopen_as_incident_review(
        ivy, esvc, incident_services.ReopenInput(item_id=target.id)
    )
    entries = await incident_services.precedent(ivy, esvc, review.id, PAGE)
    # Newest first; the reopened item itself, open items and other templates are not precedent.
    assert [e.view.id for e in entries] == [earlier[1].id, earlier[0].id]
    assert all(e.same_template for e in entries)
    assert [d.reason for d in entries[0].decisions] == ["too risky"]
    assert still_open.id not in {e.view.id for e in entries}
    assert other_template.id not in {e.view.id for e in entries}

    # An incident reviewer reads the review (assigned to it) but not those earlier changes.
    rita = actor(tenant, "rita", "incident-reviewer")
    assert await incident_services.precedent(rita, esvc, review.id, PAGE) == []
    dave_sees = await incident_services.precedent(actor(tenant, "dave"), esvc, target.id, PAGE)
    assert {e.view.id for e in dave_sees} == {v.id for v in earlier}  # dave submitted them all


async def test_precedent_matches_the_subject_across_templates(esvc, tenant, demo_templates, clock):
    ivy = investigator(tenant)
    first = await incident_services.open_incident_review(
        ivy,
        esvc,
        incident_services.OpenReviewInput(source_ref="tr-1", title="one", subject="agent:mailer"),
    )
    # Decide it: triage, then findings with a reason.
    for _ in range(2):
        view = await item_services.get_item(ivy, esvc, first.id)
        step = next(s for s in view.steps if s.state == "active")
        await item_services.decide_step(
            actor(tenant, "rita", "incident-reviewer"),
            esvc,
            item_services.DecideStepInput(
                step_id=step.id, outcome=item_services.Outcome.APPROVE, reason="root cause found"
            ),
        )
    clock.advance(timedelta(minutes=1))
    second = await incident_services.open_incident_review(
        ivy,
        esvc,
        incident_services.OpenReviewInput(source_ref="tr-2", title="two", subject="agent:mailer"),
    )
    entries = await incident_services.precedent(ivy, esvc, second.id, PAGE)
    assert [e.view.id for e in entries] == [first.id]
    assert entries[0].same_subject and entries[0].same_template
    assert {d.reason for d in entries[0].decisions} == {"root cause found"}


async def test_the_demo_template_loads(demo_templates):
    keys = {t.key for t in demo_templates}
    assert "incident-review" in keys

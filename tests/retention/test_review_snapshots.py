"""Retention reaches the snapshots of incident reviews: a review that reopened an item holds
the item's history, and when retention removes the item's content the snapshot loses the same
content — payload, comment texts, evidence descriptions, the payload copies in its audit
events — on the local store and on a real S3-compatible server. Until the snapshot is
rewritten it is not served; the rewrite is audited and the chain still verifies."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pythonjsonlogger.json import JsonFormatter

from signoff.db import audit as audit_repo
from signoff.db import items as items_repo
from signoff.domain.audit import redaction_marker
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.retention import retained_history
from signoff.request_ids import JSON_FIELDS, RequestIdFilter
from signoff.services import actions
from signoff.services import evidence as evidence_services
from signoff.services import incidents as incident_services
from signoff.services import items as item_services
from signoff.services import retention as retention_services
from signoff.services.context import ServiceContext
from signoff.storage import StorageError
from tests.collab.conftest import comment
from tests.collab.test_evidence import upload
from tests.conftest import actor
from tests.realtime.conftest import PAYLOADS, approve, submit
from tests.retention.conftest import set_policy

SECRET_NOTE = "the rollback password is hunter2"


async def read_all(services: ServiceContext, who: Any, evidence_id: Any) -> bytes:
    content = await evidence_services.open_content(who, services, evidence_id)
    return b"".join([c async for c in content.chunks])


async def reviewed_item(services: ServiceContext, tenant: str) -> tuple[Any, Any]:
    """A change approval sent back once (its resubmission keeps the payload it replaced in
    its audit trail), commented on, with a described evidence file, approved, then reopened
    as an incident review: (the item, the review's record)."""
    view = await submit(services, tenant, "change-approval", "Deploy")
    step = next(s for s in view.steps if s.state == "active")
    await item_services.decide_step(
        actor(tenant, "bob", "change-approver"),
        services,
        item_services.DecideStepInput(
            step.id, item_services.Outcome.REQUEST_CHANGES, reason="add a window"
        ),
    )
    view = await actions.resubmit_item(
        actor(tenant, "dave"),
        services,
        actions.ResubmitInput(view.id, payload={**PAYLOADS["change-approval"], "window": "sat"}),
    )
    await comment(services, tenant, "dave", SECRET_NOTE, item_id=view.id)
    await upload(services, tenant, view, b"minutes", description="CAB minutes, confidential")
    view = await approve(services, tenant, view, "bob", "change-approver")
    ivy = actor(tenant, "ivy", "admin")
    review = await incident_services.reopen_as_incident_review(
        ivy, services, incident_services.ReopenInput(item_id=view.id, summary="was it right?")
    )
    return view, await incident_services.get_review(ivy, services, review.id)


def mentions_content(text: str) -> bool:
    return any(
        needle in text for needle in (SECRET_NOTE, "redeploy", "payments", "CAB minutes", '"sat"')
    )


@pytest.mark.parametrize("action", ["redact", "purge"])
async def test_a_review_snapshot_loses_what_retention_removed_from_the_item(
    esvc, store, clock, tenant, demo_templates, action
):
    await set_policy(esvc, tenant, 30, action, template="change-approval")
    view, review = await reviewed_item(esvc, tenant)
    ivy = actor(tenant, "ivy", "admin")
    before = json.loads(await read_all(esvc, ivy, review.snapshot_evidence_id))
    assert mentions_content(json.dumps(before, ensure_ascii=False))

    clock.advance(timedelta(days=31))
    report = await retention_services.apply_retention(esvc, tenant)
    assert view.id in report.applied
    assert (report.snapshots_redacted, report.snapshot_failures) == (1, 0)

    # Served again, its new bytes verified on read, without the content retention removed.
    body = await read_all(esvc, ivy, review.snapshot_evidence_id)
    after = json.loads(body)
    assert not mentions_content(body.decode())
    item = await items_repo.get_item(tenant, view.id)
    assert after["item"]["payload"] == item.payload
    assert after == json.loads(json.dumps(retained_history(before, item.payload)))
    assert all(c["body"] is None for c in after["comments"]) and after["comments"]
    assert all(e["description"] is None for e in after["evidence"]) and after["evidence"]
    resubmitted = next(e for e in after["audit_events"] if e["action"] == "item.resubmit")
    original = next(e for e in before["audit_events"] if e["action"] == "item.resubmit")
    assert resubmitted["data"]["previous_payload"] == redaction_marker(
        original["data"]["previous_payload"]
    )
    # everything else of the history is as it was
    for part in ("steps", "decisions"):
        assert after[part] == before[part]
    assert [e["seq"] for e in after["audit_events"]] == [e["seq"] for e in before["audit_events"]]

    # Audited on both sides; the chain verifies.
    applied = next(
        e
        for e in await audit_repo.events_for_item(tenant, view.id)
        if e["action"] == "item.retention_applied"
    )
    assert applied["data"]["review_snapshots"] == 1
    [rewritten] = [
        e
        for e in await audit_repo.events_for_item(tenant, review.item_id)
        if e["action"] == "evidence.snapshot_redacted"
    ]
    record = await evidence_services.get_evidence(ivy, esvc, review.snapshot_evidence_id)
    assert rewritten["data"]["sha256"] == record.sha256 != rewritten["data"]["sha256_before"]
    assert rewritten["data"]["size"] == record.size == len(body)
    assert await audit_repo.verify_chain(tenant) is None

    # Running again changes nothing.
    again = await retention_services.apply_retention(esvc, tenant)
    assert (again.applied, again.snapshots_redacted) == ([], 0)
    assert await read_all(esvc, ivy, review.snapshot_evidence_id) == body


class FailingPuts:
    """The test's store, except that writing fails (reads and deletes pass)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def put(self, key: str, chunks: Any) -> Any:
        raise StorageError("the store refuses writes")


async def test_a_snapshot_is_not_served_until_its_rewrite_is_recorded(
    esvc, store, settings, clock, tenant, demo_templates
):
    await set_policy(esvc, tenant, 30, "redact", template="change-approval")
    view, review = await reviewed_item(esvc, tenant)
    ivy = actor(tenant, "ivy", "admin")
    clock.advance(timedelta(days=31))
    broken = ServiceContext(settings=settings, clock=clock, storage=FailingPuts(store.storage))
    report = await retention_services.apply_retention(broken, tenant)
    assert view.id in report.applied
    assert (report.snapshots_redacted, report.snapshot_failures) == (0, 1)
    with pytest.raises(DomainError) as refused:
        await read_all(esvc, ivy, review.snapshot_evidence_id)
    assert refused.value.code is ErrorCode.NOT_FOUND and "being redacted" in refused.value.message
    # The next run finishes it.
    report = await retention_services.apply_retention(esvc, tenant)
    assert (report.applied, report.snapshots_redacted) == ([], 1)
    assert not mentions_content((await read_all(esvc, ivy, review.snapshot_evidence_id)).decode())


def test_redacting_a_history_twice_changes_nothing():
    history = {
        "item": {"id": "i", "payload": {"a": 1}},
        "comments": [{"id": "c", "body": "text"}],
        "evidence": [{"id": "e", "description": "d"}],
        "audit_events": [
            {"seq": 1, "data": {"previous_payload": {"a": 0}, "revision": 2}},
            {"seq": 2, "data": {"n": 1}},
        ],
        "steps": [{"id": "s"}],
    }
    once = retained_history(history, {"a": "sha256:x"})
    assert retained_history(once, {"a": "sha256:x"}) == once
    assert once["audit_events"][0]["data"]["previous_payload"] == redaction_marker({"a": 0})
    assert once["audit_events"][1] == history["audit_events"][1]
    assert once["steps"] == history["steps"]


def failures_counted(storage: str, stage: str) -> float:
    value = REGISTRY.get_sample_value(
        "signoff_retention_snapshot_rewrite_failures_total", {"storage": storage, "stage": stage}
    )
    return value or 0.0


@pytest.mark.parametrize("stage", ["read", "decode", "write"])
async def test_a_failed_snapshot_rewrite_is_counted_and_logged_in_one_structured_line(
    esvc, store, settings, clock, tenant, demo_templates, caplog, stage
):
    await set_policy(esvc, tenant, 30, "redact", template="change-approval")
    view, review = await reviewed_item(esvc, tenant)
    record = await evidence_services.get_evidence(
        actor(tenant, "ivy", "admin"), esvc, review.snapshot_evidence_id
    )
    ctx = esvc
    if stage == "read":
        store.remove(record.storage_key)
    elif stage == "decode":
        store.overwrite(record.storage_key, b"\xff not the JSON of a history")
    else:
        ctx = ServiceContext(settings=settings, clock=clock, storage=FailingPuts(store.storage))
    name = store.storage.name
    before = {s: failures_counted(name, s) for s in ("read", "decode", "write")}
    clock.advance(timedelta(days=31))
    with caplog.at_level(logging.WARNING, logger="signoff.services.retention"):
        report = await retention_services.apply_retention(ctx, tenant)
    assert view.id in report.applied and report.snapshot_failures == 1
    after = {s: failures_counted(name, s) for s in ("read", "decode", "write")}
    assert after == {s: before[s] + (1 if s == stage else 0) for s in before}

    [line] = [r for r in caplog.records if r.name == "signoff.services.retention"]
    assert line.levelno == logging.WARNING and line.exc_info is None
    assert (line.stage, line.storage) == (stage, name)
    assert line.evidence_id == str(record.id) and line.review_item_id == str(review.item_id)
    assert line.reviewed_item_id == str(view.id)
    # As production writes it: one JSON line, these fields among its keys.
    formatter = JsonFormatter(
        JSON_FIELDS, rename_fields={"levelname": "level", "name": "logger"}, timestamp=False
    )
    RequestIdFilter().filter(line)
    text = formatter.format(line)
    assert "\n" not in text
    fields = json.loads(text)
    assert fields["tenant"] == tenant and fields["stage"] == stage
    assert fields["evidence_id"] == str(record.id) and fields["error"]

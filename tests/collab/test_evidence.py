"""Evidence files on both stores (a directory, and a real S3-compatible server): round trip
with the hash, tampering refused on read, nothing half-written after a failed upload, limits."""

from __future__ import annotations

import asyncio
import hashlib
import tracemalloc
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from signoff.db import audit as audit_repo
from signoff.db import evidence as evidence_repo
from signoff.domain.errors import DomainError, ErrorCode
from signoff.services import evidence as evidence_services
from tests.conftest import actor
from tests.realtime.conftest import submit

Request = evidence_services.RequestUploadInput


async def chunks_of(data: bytes, size: int = 64 * 1024, fail_after: int | None = None):
    for start in range(0, len(data), size):
        if fail_after is not None and start >= fail_after:
            raise ConnectionAbortedError("client went away")
        yield data[start : start + size]


async def upload(esvc, tenant, view, data: bytes, *, user="dave", name="proof.txt", **extra):
    ticket = await evidence_services.request_upload(
        actor(tenant, user),
        esvc,
        Request(
            file_name=name,
            content_type=extra.pop("content_type", "text/plain"),
            size=extra.pop("size", len(data)),
            item_id=view.id,
            **extra,
        ),
    )
    record = await evidence_services.receive_upload(
        esvc, ticket.token, ticket.content_type, chunks_of(data)
    )
    return ticket, record


async def read_all(esvc, tenant, evidence_id, user="dave", *roles) -> bytes:
    content = await evidence_services.open_content(actor(tenant, user, *roles), esvc, evidence_id)
    return b"".join([chunk async for chunk in content.chunks])


async def code_of(call) -> ErrorCode:
    with pytest.raises(DomainError) as caught:
        await call
    return caught.value.code


async def test_a_file_round_trips_with_its_hash(esvc, store, tenant, demo_templates):
    view = await submit(esvc, tenant, "change-approval", "Deploy")
    data = b"rollback rehearsal log\n" * 50_000  # ~1.1 MiB: several chunks
    digest = hashlib.sha256(data).hexdigest()
    _, record = await upload(esvc, tenant, view, data, sha256=digest, description="staging run")
    assert (record.size, record.sha256, record.name, record.uploaded_by) == (
        len(data),
        digest,
        "proof.txt",
        "dave",
    )
    assert await read_all(esvc, tenant, record.id) == data
    # An assignee reads it too; somebody who may not read the item does not.
    assert await read_all(esvc, tenant, record.id, "bob", "change-approver") == data
    listed = await evidence_services.list_evidence(actor(tenant, "dave"), esvc, view.id)
    assert [e.id for e in listed] == [record.id]
    assert (
        await code_of(evidence_services.open_content(actor(tenant, "eve"), esvc, record.id))
        == ErrorCode.NOT_FOUND
    )
    event = (await audit_repo.events_for_item(tenant, view.id))[-1]
    assert event["action"] == "evidence.attached"
    assert event["data"]["sha256"] == digest
    assert event["data"]["evidence_id"] == str(record.id)
    assert "description" not in event["data"]
    assert store.keys() == [record.storage_key]


@pytest.mark.parametrize("tamper", ["changed", "truncated", "missing"])
async def test_a_tampered_stored_file_is_refused_on_read(
    esvc, store, tenant, demo_templates, tamper
):
    view = await submit(esvc, tenant, "change-approval", "Deploy")
    data = b"the approved contract, page 1 of 1\n" * 1000
    _, record = await upload(esvc, tenant, view, data)
    if tamper == "changed":
        store.overwrite(record.storage_key, data.replace(b"approved", b"rejected"))
    elif tamper == "truncated":
        store.overwrite(record.storage_key, data[:-10])
    else:
        store.remove(record.storage_key)
    with pytest.raises(DomainError) as caught:
        await evidence_services.open_content(actor(tenant, "dave"), esvc, record.id)
    assert caught.value.code == ErrorCode.INTEGRITY_CHECK_FAILED
    event = (await audit_repo.events_for_item(tenant, view.id))[-1]
    assert event["action"] == "evidence.integrity_failed"
    assert event["data"]["evidence_id"] == str(record.id)


async def assert_nothing_kept(store, tenant, view, upload_id) -> None:
    assert store.keys() == []
    assert store.incomplete_uploads() == []
    assert await evidence_repo.evidence_of_item(tenant, view.id, None) == []
    actions = [e["action"] for e in await audit_repo.events_for_item(tenant, view.id)]
    assert not [a for a in actions if a.startswith("evidence.")]
    slot = await evidence_repo.get_slot(upload_id)
    assert slot is not None and slot.status == "pending"  # the URL may be used again


@pytest.mark.parametrize("failure", ["aborted", "too_many", "too_few", "wrong_sha256"])
async def test_nothing_half_written_survives_a_failed_upload(
    esvc, store, tenant, demo_templates, failure
):
    view = await submit(esvc, tenant, "change-approval", "Deploy")
    data = b"x" * (6 * 1024 * 1024 + 123)  # more than one multipart part on S3
    declared = {
        "aborted": len(data),
        "too_many": len(data) - 1,
        "too_few": len(data) + 1,
        "wrong_sha256": len(data),
    }[failure]
    sha = hashlib.sha256(b"something else").hexdigest() if failure == "wrong_sha256" else None
    ticket = await evidence_services.request_upload(
        actor(tenant, "dave"),
        esvc,
        Request(
            file_name="big.bin",
            content_type="application/octet-stream",
            size=declared,
            sha256=sha,
            item_id=view.id,
        ),
    )
    body = chunks_of(data, fail_after=5 * 1024 * 1024 + 1 if failure == "aborted" else None)
    with pytest.raises((DomainError, ConnectionAbortedError)) as caught:
        await evidence_services.receive_upload(esvc, ticket.token, "application/octet-stream", body)
    expected = {
        "aborted": None,
        "too_many": ErrorCode.INVALID_INPUT,
        "too_few": ErrorCode.INVALID_INPUT,
        "wrong_sha256": ErrorCode.INTEGRITY_CHECK_FAILED,
    }[failure]
    if expected is None:
        assert isinstance(caught.value, ConnectionAbortedError)
    else:
        assert caught.value.code == expected
    await assert_nothing_kept(store, tenant, view, ticket.upload_id)
    if failure == "aborted":
        # The same URL takes the retry.
        record = await evidence_services.receive_upload(
            esvc, ticket.token, "application/octet-stream", chunks_of(data)
        )
        assert await read_all(esvc, tenant, record.id) == data


async def test_limits_and_refusals_are_typed(esvc, store, settings, tenant, demo_templates, clock):
    view = await submit(esvc, tenant, "change-approval", "Deploy")
    dave = actor(tenant, "dave")

    def ask(**overrides):
        values = {
            "file_name": "a.pdf",
            "content_type": "application/pdf",
            "size": 10,
            "item_id": view.id,
        }
        return evidence_services.request_upload(dave, esvc, Request(**{**values, **overrides}))

    cases = [
        (dict(size=settings.evidence_max_bytes + 1), ErrorCode.LIMIT_EXCEEDED),
        (dict(content_type="text/html"), ErrorCode.CONTENT_TYPE_NOT_ALLOWED),
        (dict(content_type="not a type"), ErrorCode.INVALID_INPUT),
        (dict(file_name="../etc/passwd"), ErrorCode.INVALID_INPUT),
        (dict(file_name="x" * 256), ErrorCode.INVALID_INPUT),
        (dict(file_name="a\x00b"), ErrorCode.INVALID_INPUT),
        (dict(size=0), ErrorCode.INVALID_INPUT),
        (dict(sha256="abc"), ErrorCode.INVALID_INPUT),
        (dict(description="d" * 2001), ErrorCode.INVALID_INPUT),
        (dict(item_id=None), ErrorCode.INVALID_INPUT),
    ]
    for overrides, code in cases:
        assert await code_of(ask(**overrides)) == code, overrides
    assert (
        await code_of(
            evidence_services.request_upload(
                actor(tenant, "eve"),
                esvc,
                Request(file_name="a.pdf", content_type="application/pdf", size=1, item_id=view.id),
            )
        )
        == ErrorCode.NOT_FOUND
    )

    ticket = await ask()
    # Another Content-Type than declared, a forged token, an expired URL.
    assert (
        await code_of(
            evidence_services.receive_upload(esvc, ticket.token, "text/plain", chunks_of(b"0" * 10))
        )
        == ErrorCode.CONTENT_TYPE_NOT_ALLOWED
    )
    forged = ticket.token[:-4] + "AAAA"
    assert (
        await code_of(
            evidence_services.receive_upload(esvc, forged, "application/pdf", chunks_of(b"0" * 10))
        )
        == ErrorCode.NOT_FOUND
    )
    clock.advance(timedelta(seconds=settings.evidence_upload_ttl_seconds + 1))
    assert (
        await code_of(
            evidence_services.receive_upload(
                esvc, ticket.token, "application/pdf", chunks_of(b"0" * 10)
            )
        )
        == ErrorCode.UPLOAD_EXPIRED
    )
    assert store.keys() == []


async def test_an_upload_interrupted_by_a_crash_is_swept_after_it_expires(
    esvc, store, settings, tenant, demo_templates, clock
):
    view = await submit(esvc, tenant, "change-approval", "Deploy")
    ticket = await evidence_services.request_upload(
        actor(tenant, "dave"),
        esvc,
        Request(file_name="a.txt", content_type="text/plain", size=3, item_id=view.id),
    )
    # The process stored the bytes, then died before recording them.
    slot = await evidence_services._claim(esvc, ticket.upload_id, "text/plain")
    await store.storage.put(slot.storage_key, chunks_of(b"abc"))
    assert store.keys() == [slot.storage_key]
    assert (
        await code_of(
            evidence_services.receive_upload(esvc, ticket.token, "text/plain", chunks_of(b"abc"))
        )
        == ErrorCode.UPLOAD_IN_PROGRESS
    )
    assert await evidence_services.sweep_uploads(esvc) == 0  # not expired yet
    clock.advance(timedelta(seconds=settings.evidence_upload_ttl_seconds + 1))
    assert await evidence_services.sweep_uploads(esvc) >= 1
    assert store.keys() == []
    assert (await evidence_repo.get_slot(ticket.upload_id)).status == "expired"


async def test_upload_and_download_stream_in_bounded_memory(esvc, store, tenant, demo_templates):
    if store.root is None:
        pytest.skip("measured on the local store: obstore's buffers are outside Python's heap")
    view = await submit(esvc, tenant, "change-approval", "Deploy")
    size = 24 * 1024 * 1024

    async def body() -> AsyncIterator[bytes]:
        block = b"y" * (64 * 1024)
        for _ in range(size // len(block)):
            yield block

    ticket = await evidence_services.request_upload(
        actor(tenant, "dave"),
        esvc,
        Request(
            file_name="big.bin", content_type="application/octet-stream", size=size, item_id=view.id
        ),
    )
    tracemalloc.start()
    try:
        record = await evidence_services.receive_upload(
            esvc, ticket.token, "application/octet-stream", body()
        )
        content = await evidence_services.open_content(actor(tenant, "dave"), esvc, record.id)
        received = 0
        async for chunk in content.chunks:
            received += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == size
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes for a {size}-byte file"


async def test_concurrent_puts_to_one_url_attach_exactly_one_file(
    esvc, store, tenant, demo_templates
):
    view = await submit(esvc, tenant, "change-approval", "Deploy")
    data = b"q" * 300_000
    ticket = await evidence_services.request_upload(
        actor(tenant, "dave"),
        esvc,
        Request(file_name="a.txt", content_type="text/plain", size=len(data), item_id=view.id),
    )
    results = await asyncio.gather(
        *[
            evidence_services.receive_upload(esvc, ticket.token, "text/plain", chunks_of(data))
            for _ in range(4)
        ],
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(
        isinstance(e, DomainError) and e.code in (ErrorCode.UPLOAD_IN_PROGRESS, ErrorCode.NOT_FOUND)
        for e in losers
    ), losers
    assert store.keys() == [winners[0].storage_key]
    assert store.incomplete_uploads() == []
    assert [e.id for e in await evidence_repo.evidence_of_item(tenant, view.id, None)] == [
        winners[0].id
    ]
    assert await read_all(esvc, tenant, winners[0].id) == data

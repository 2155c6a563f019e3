"""Evidence through the API as a browser uses it: a GraphQL mutation for the upload URL, a PUT
of the raw file, the download URL from the query, a GET; an upload dropped mid-way by the
client over a real socket leaves nothing."""

from __future__ import annotations

import asyncio
import hashlib
from urllib.parse import urlsplit

from signoff.db import evidence as evidence_repo
from signoff.domain.evidence import upload_id_of
from tests.conftest import wait_for
from tests.realtime.conftest import global_id, submit

REQUEST = """mutation($input: RequestEvidenceUploadInput!) {
  requestEvidenceUpload(input: $input) {
    upload { url method headers { name value } expiresAt evidenceId }
    errors { code field }
  }
}"""
LIST = """query($itemId: ID!) {
  evidence(itemId: $itemId) { id name contentType size sha256 description uploadedBy
    downloadUrl contentAvailable source }
}"""


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def test_upload_and_download_like_a_browser(gql, client, services, tenant, demo_templates):
    view = await submit(services, tenant, "change-approval", "Deploy")
    item_id = global_id("WorkflowItem", view.id)
    data = b"%PDF-1.7 pretend this is a signed change record\n" * 2000
    asked = (
        await gql.data(
            REQUEST,
            {
                "input": {
                    "itemId": item_id,
                    "fileName": "change record.pdf",
                    "contentType": "application/pdf",
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "description": "signed by the CAB",
                }
            },
            as_user="dave",
        )
    )["requestEvidenceUpload"]
    assert asked["errors"] == []
    upload = asked["upload"]
    assert upload["method"] == "PUT"
    assert upload["headers"] == [{"name": "Content-Type", "value": "application/pdf"}]

    put = await client.put(
        path_of(upload["url"]), content=data, headers={"content-type": "application/pdf"}
    )
    assert put.status_code == 201, put.text
    assert put.json()["evidence"]["id"] == upload["evidenceId"]
    again = await client.put(
        path_of(upload["url"]), content=data, headers={"content-type": "application/pdf"}
    )
    assert (again.status_code, again.json()["errors"][0]["code"]) == (404, "NOT_FOUND")

    listed = (await gql.data(LIST, {"itemId": item_id}, as_user="bob", roles=("change-approver",)))[
        "evidence"
    ]
    assert [(e["name"], e["size"], e["uploadedBy"], e["source"]) for e in listed] == [
        ("change record.pdf", len(data), "dave", "UPLOAD")
    ]
    download = await client.get(path_of(listed[0]["downloadUrl"]))
    assert download.status_code == 200
    assert download.content == data
    assert download.headers["content-type"].startswith("application/pdf")
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert hashlib.sha256(download.content).hexdigest() == listed[0]["sha256"]

    # With a bearer token instead of the link: authorised as that caller, like the item.
    content_path = urlsplit(listed[0]["downloadUrl"]).path
    denied = await client.get(content_path, headers={"authorization": f"Bearer {gql.token('eve')}"})
    assert (denied.status_code, denied.json()["errors"][0]["code"]) == (404, "NOT_FOUND")
    allowed = await client.get(
        content_path, headers={"authorization": f"Bearer {gql.token('dave')}"}
    )
    assert allowed.content == data
    # A link is for one file: it does not open another.
    forged = await client.get(
        content_path.replace(listed[0]["id"], global_id("Evidence", view.id))
        + "?"
        + urlsplit(listed[0]["downloadUrl"]).query
    )
    assert forged.status_code == 404


async def test_refusals_over_http_are_typed(gql, client, services, tenant, demo_templates):
    view = await submit(services, tenant, "change-approval", "Deploy")
    item_id = global_id("WorkflowItem", view.id)
    refused = (
        await gql.data(
            REQUEST,
            {
                "input": {
                    "itemId": item_id,
                    "fileName": "x.html",
                    "contentType": "text/html",
                    "size": 5,
                }
            },
            as_user="dave",
        )
    )["requestEvidenceUpload"]
    assert refused == {
        "upload": None,
        "errors": [{"code": "CONTENT_TYPE_NOT_ALLOWED", "field": "contentType"}],
    }
    upload = (
        await gql.data(
            REQUEST,
            {
                "input": {
                    "itemId": item_id,
                    "fileName": "x.txt",
                    "contentType": "text/plain",
                    "size": 5,
                }
            },
            as_user="dave",
        )
    )["requestEvidenceUpload"]["upload"]
    wrong_type = await client.put(
        path_of(upload["url"]), content=b"12345", headers={"content-type": "image/png"}
    )
    assert (wrong_type.status_code, wrong_type.json()["errors"][0]["code"]) == (
        415,
        "CONTENT_TYPE_NOT_ALLOWED",
    )
    too_long = await client.put(
        path_of(upload["url"]), content=b"123456", headers={"content-type": "text/plain"}
    )
    assert (too_long.status_code, too_long.json()["errors"][0]["code"]) == (400, "INVALID_INPUT")
    unknown = await client.put(
        "/evidence/uploads/nonsense", content=b"1", headers={"content-type": "text/plain"}
    )
    assert unknown.status_code == 404
    no_auth = await client.get(f"/evidence/{global_id('Evidence', view.id)}/content")
    assert (no_auth.status_code, no_auth.json()["errors"][0]["code"]) == (401, "UNAUTHENTICATED")


async def test_an_upload_dropped_by_the_client_leaves_nothing(
    ws_url, gql, services, settings, tenant, demo_templates
):
    view = await submit(services, tenant, "change-approval", "Deploy")
    size = 2 * 1024 * 1024
    upload = (
        await gql.data(
            REQUEST,
            {
                "input": {
                    "itemId": global_id("WorkflowItem", view.id),
                    "fileName": "half.bin",
                    "contentType": "application/octet-stream",
                    "size": size,
                }
            },
            as_user="dave",
        )
    )["requestEvidenceUpload"]["upload"]
    token = urlsplit(upload["url"]).path.rsplit("/", 1)[1]
    upload_id = upload_id_of(token, settings.effective_url_signing_secret)
    port = urlsplit(ws_url).port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"PUT /evidence/uploads/{token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n"
    )
    writer.write(head.encode() + b"z" * (size // 2))
    await writer.drain()

    async def receiving() -> bool:
        slot = await evidence_repo.get_slot(upload_id)
        return slot is not None and slot.status == "receiving"

    await wait_for(receiving, timeout=10)
    writer.transport.abort()  # the browser tab was closed

    async def released() -> bool:
        slot = await evidence_repo.get_slot(upload_id)
        return slot is not None and slot.status == "pending"

    await wait_for(released, timeout=10)
    key = (await evidence_repo.get_slot(upload_id)).storage_key
    evidence_dir = settings.evidence_dir
    assert not (evidence_dir / key).exists()
    assert list((evidence_dir / ".partial").glob("*")) == []
    assert await evidence_repo.evidence_of_item(tenant, view.id, None) == []

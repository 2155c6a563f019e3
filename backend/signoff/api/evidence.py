"""GraphQL types, queries and mutations of evidence files. The bytes travel over plain HTTP
(`api/evidence_http.py`): a browser PUTs a file to the upload URL and opens the download URL."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

import strawberry
from strawberry.types import Info

from signoff.api import ids
from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.enums import described_enum
from signoff.api.errors import CodedError, UserError, user_error
from signoff.api.guards import GuardsInput, guards_field, key_guards
from signoff.api.types import Node, Person, person
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.evidence import EvidenceRecord, EvidenceSource
from signoff.services import evidence as evidence_services

UPLOAD_PATH = "/evidence/uploads/"
DOWNLOAD_PATH = "/evidence/{id}/content"


def base_url(info: Info[SignoffContext, Any]) -> str:
    """The API's own base URL, as the caller reached it (for the URLs handed out)."""
    request = info.context.request
    if request is not None:
        return str(request.base_url).rstrip("/")
    return services_of(info).settings.public_url.rstrip("/")


@strawberry.type(description="A file attached to an item or a step as evidence.")
class Evidence(Node):
    id: strawberry.ID = strawberry.field(description="Global id.")
    item_id: strawberry.ID = strawberry.field(description="Global id of the item.")
    step_id: strawberry.ID | None = strawberry.field(description="Global id of the step, if any.")
    source: EvidenceSource = strawberry.field(description="How the file came to be.")
    name: str = strawberry.field(description="File name as given by the uploader.")
    content_type: str = strawberry.field(description="Media type, as declared and checked.")
    size: int = strawberry.field(description="Size in bytes.")
    sha256: str = strawberry.field(description="sha256 (hex) of the content, verified on read.")
    description: str | None = strawberry.field(description="What the file shows, if given.")
    uploaded_by: str = strawberry.field(description="Who attached it.")
    created_at: datetime = strawberry.field(description="When it was attached.")
    content_available: bool = strawberry.field(
        description="False once a retention rule purged the content (the metadata stays)."
    )
    raw: strawberry.Private[EvidenceRecord]

    @strawberry.field(description="Who attached it, with their display name.")
    async def uploader(self, info: Info[SignoffContext, Any]) -> Person:
        return await person(info, self.uploaded_by)

    @strawberry.field(
        description="A URL to download the content (GET, no header needed), valid for "
        "`SIGNOFF_EVIDENCE_DOWNLOAD_TTL_SECONDS` and only for the caller; null once purged."
    )
    def download_url(self, info: Info[SignoffContext, Any]) -> str | None:
        if not self.content_available:
            return None
        token, _ = evidence_services.download_token(actor_of(info), services_of(info), self.raw)
        return f"{base_url(info)}{DOWNLOAD_PATH.format(id=self.id)}?token={token}"

    @classmethod
    def from_record(cls, record: EvidenceRecord) -> Evidence:
        """Map an evidence record."""
        return cls(
            id=strawberry.ID(ids.encode("Evidence", record.id)),
            item_id=strawberry.ID(ids.encode("WorkflowItem", record.item_id)),
            step_id=strawberry.ID(ids.encode("Step", record.step_id)) if record.step_id else None,
            source=EvidenceSource(record.source),
            name=record.name,
            content_type=record.content_type,
            size=record.size,
            sha256=record.sha256,
            description=record.description,
            uploaded_by=record.uploaded_by,
            created_at=record.created_at,
            content_available=record.storage_key is not None,
            raw=record,
        )


class UploadMethod(StrEnum):
    """The HTTP method of an upload."""

    PUT = "PUT"


described_enum(
    UploadMethod,
    "The HTTP method that uploads a file.",
    {UploadMethod.PUT: "The file's raw bytes as the request body."},
)


@strawberry.type(description="One HTTP header.")
class UploadHeader:
    name: str = strawberry.field(description="Header name.")
    value: str = strawberry.field(description="Header value.")


@strawberry.type(description="Where and how to upload one file.")
class EvidenceUpload:
    url: str = strawberry.field(
        description="PUT the file's raw bytes here (no multipart, no Authorization header "
        "needed: the URL is the permission), with the declared Content-Type and size."
    )
    method: UploadMethod = strawberry.field(description="Always `PUT`.")
    headers: list[UploadHeader] = strawberry.field(description="Headers the PUT must carry.")
    expires_at: datetime = strawberry.field(
        description="After this the URL is refused (UPLOAD_EXPIRED); ask for a new one."
    )
    evidence_id: strawberry.ID = strawberry.field(
        description="Global id the evidence will have once the upload has completed."
    )


@strawberry.type(description="Result of `requestEvidenceUpload`: the upload, or why not.")
class EvidenceUploadPayload:
    upload: EvidenceUpload | None = strawberry.field(description="Where to PUT the file.")
    errors: list[UserError] = strawberry.field(description="Empty on success.")


@strawberry.input(
    description="A file about to be uploaded to an item (`itemId`) or a step (`stepId`)."
)
class RequestEvidenceUploadInput:
    file_name: str = strawberry.field(description="File name (no slashes), up to 255 characters.")
    content_type: str = strawberry.field(description="Media type; must be an accepted one.")
    size: int = strawberry.field(description="Exact size in bytes; the upload must match it.")
    item_id: strawberry.ID | None = strawberry.field(default=None, description="The item.")
    step_id: strawberry.ID | None = strawberry.field(default=None, description="The step.")
    sha256: str | None = strawberry.field(
        default=None,
        description="sha256 (hex) of the file, when the client computed it: the upload is "
        "refused (INTEGRITY_CHECK_FAILED) unless the bytes match.",
    )
    description: str | None = strawberry.field(
        default=None, description="What the file shows, up to 2000 characters."
    )
    guards: GuardsInput | None = guards_field(versioned=False)


def _uuid(value: strawberry.ID | None, type_name: str, field: str) -> UUID | None:
    return ids.decode_uuid(value, type_name, field) if value is not None else None


@strawberry.type
class EvidenceQueries:
    @strawberry.field(
        description="Evidence files of an item the caller may read, oldest first; only one "
        "step's with `stepId`."
    )
    async def evidence(
        self,
        info: Info[SignoffContext, Any],
        item_id: Annotated[strawberry.ID, strawberry.argument(description="The item.")],
        step_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Only this step's files.")
        ] = None,
    ) -> list[Evidence]:
        actor = actor_of(info)
        try:
            records = await evidence_services.list_evidence(
                actor,
                services_of(info),
                ids.decode_uuid(item_id, "WorkflowItem", "itemId"),
                _uuid(step_id, "Step", "stepId"),
            )
        except DomainError as exc:
            raise CodedError(exc) from None
        return [Evidence.from_record(r) for r in records]


@strawberry.type
class EvidenceMutations:
    @strawberry.mutation(
        description="Get a short-lived URL to upload one evidence file to (then PUT the file "
        "there; see docs/collaboration.md)."
    )
    async def request_evidence_upload(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            RequestEvidenceUploadInput,
            strawberry.argument(description="The input of the mutation."),
        ],
    ) -> EvidenceUploadPayload:
        actor = actor_of(info)
        try:
            guards = key_guards(input.guards)
            ticket = await evidence_services.request_upload(
                actor,
                services_of(info),
                evidence_services.RequestUploadInput(
                    file_name=input.file_name,
                    content_type=input.content_type,
                    size=input.size,
                    item_id=_uuid(input.item_id, "WorkflowItem", "itemId"),
                    step_id=_uuid(input.step_id, "Step", "stepId"),
                    sha256=input.sha256,
                    description=input.description,
                    idempotency_key=guards.idempotency_key,
                ),
            )
        except DomainError as exc:
            return EvidenceUploadPayload(upload=None, errors=[user_error(exc)])
        return EvidenceUploadPayload(
            upload=EvidenceUpload(
                url=f"{base_url(info)}{UPLOAD_PATH}{ticket.token}",
                method=UploadMethod.PUT,
                headers=[UploadHeader(name="Content-Type", value=ticket.content_type)],
                expires_at=ticket.expires_at,
                evidence_id=strawberry.ID(ids.encode("Evidence", ticket.upload_id)),
            ),
            errors=[],
        )


__all__ = ["ErrorCode", "EvidenceMutations", "EvidenceQueries"]

"""Audit exports over GraphQL: requesting one, following its progress, its download links."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import quote

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from signoff.api import ids
from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.enums import described_enum
from signoff.api.errors import CodedError, UserError, user_error
from signoff.api.guards import GuardsInput, guards_field, key_guards
from signoff.api.node import Node
from signoff.api.paging import (
    After,
    Before,
    Connection,
    First,
    KeysetOrder,
    Last,
    connection,
    page_args,
    timestamp,
    uuid_part,
)
from signoff.domain.audit_export import EventKind, ExportFilter, ExportFormat
from signoff.domain.errors import DomainError
from signoff.services import audit_exports as export_services


class ExportStatus(StrEnum):
    """Where an export is."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"


described_enum(
    ExportFormat,
    "The file format of an audit export.",
    {
        ExportFormat.NDJSON: "One JSON object a line.",
        ExportFormat.CSV: "A header line, then one record a row; `data` as JSON text.",
    },
    name="AuditExportFormat",
)
described_enum(
    EventKind,
    "Families of audit events an export can be narrowed to.",
    {
        EventKind.APPROVALS: "Votes and decisions on steps and the item outcomes they lead to.",
        EventKind.ESCALATIONS: "Escalations, expiries, reminders and deadline-risk warnings.",
        EventKind.COMMENTS: "Comments created, edited and deleted.",
        EventKind.OVERRIDES: "Overrides and override requests.",
        EventKind.NOTIFICATIONS: "Notification retries and dead letters.",
    },
    name="AuditEventKind",
)
described_enum(
    ExportStatus,
    "Where an audit export is.",
    {
        ExportStatus.QUEUED: "Waiting for a worker (or for another attempt).",
        ExportStatus.RUNNING: "A worker is writing it; `rowsWritten` grows.",
        ExportStatus.COMPLETED: "Its file and manifest are stored and can be downloaded.",
        ExportStatus.FAILED: "Every attempt failed; `error` says why.",
        ExportStatus.EXPIRED: "Its file and manifest were removed by retention (`expiredAt`); "
        "a download is refused with EXPORT_EXPIRED.",
    },
    name="AuditExportStatus",
)


@strawberry.input(description="Which audit events an export holds; every field narrows it.")
class AuditExportFilterInput:
    since: datetime | None = strawberry.field(default=None, description="Events at or after.")
    until: datetime | None = strawberry.field(default=None, description="Events before.")
    template_key: str | None = strawberry.field(
        default=None, description="Events of items of this template."
    )
    item_id: strawberry.ID | None = strawberry.field(
        default=None, description="Events of this item (global id)."
    )
    actor_id: str | None = strawberry.field(default=None, description="Events by this actor.")
    kinds: list[EventKind] | None = strawberry.field(
        default=None, description="Only events of these kinds."
    )


@strawberry.input(description="Input of `requestAuditExport`.")
class RequestAuditExportInput:
    filter: AuditExportFilterInput | None = strawberry.field(
        default=None, description="Which events (default: all of the tenant's)."
    )
    format: ExportFormat = strawberry.field(default=ExportFormat.NDJSON, description="File format.")
    guards: GuardsInput | None = guards_field(versioned=False)


@strawberry.type(
    description="Which audit events an export holds, as it was requested: a field that is "
    "null (or `kinds` empty) does not narrow it."
)
class AuditExportFilter:
    since: datetime | None = strawberry.field(description="Events at or after.")
    until: datetime | None = strawberry.field(description="Events before.")
    template_key: str | None = strawberry.field(description="Events of items of this template.")
    item_id: strawberry.ID | None = strawberry.field(description="Events of this item (global id).")
    actor_id: str | None = strawberry.field(description="Events by this actor.")
    kinds: list[EventKind] = strawberry.field(description="Only events of these kinds.")

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> AuditExportFilter:
        """The filter as stored (`ExportFilter.to_dict`)."""
        f = ExportFilter.from_dict(value)
        return cls(
            since=f.since,
            until=f.until,
            template_key=f.template_key,
            item_id=strawberry.ID(ids.encode("WorkflowItem", f.item_id)) if f.item_id else None,
            actor_id=f.actor_id,
            kinds=list(f.kinds),
        )


@strawberry.type(description="When the first and the last event of an export happened.")
class AuditExportTimeRange:
    first: datetime | None = strawberry.field(description="The earliest event's time.")
    last: datetime | None = strawberry.field(description="The latest event's time.")


@strawberry.type(
    description="Where an export's rows sit in the tenant's hash chain: its ends, to tie the "
    "file to the live trail (compare `lastHash` with the event of `lastSeq`)."
)
class AuditExportChain:
    to_seq: int = strawberry.field(description="The chain's head when it was requested.")
    contiguous: bool = strawberry.field(
        description="Whether its rows are a whole segment of the chain, each linked to the one "
        "before (an unfiltered export)."
    )
    first_seq: int | None = strawberry.field(description="seq of the first row.")
    first_prev_hash: str | None = strawberry.field(description="The hash the first row links to.")
    first_hash: str | None = strawberry.field(description="Hash of the first row.")
    last_seq: int | None = strawberry.field(description="seq of the last row.")
    last_hash: str | None = strawberry.field(description="Hash of the last row.")


@strawberry.type(description="What an export's reader could not see, and its digest.")
class AuditExportRedaction:
    reader_roles: list[str] = strawberry.field(
        description="The roles of the reader it was redacted for."
    )
    rows: int = strawberry.field(description="Rows written redacted.")
    sha256: str = strawberry.field(description="sha256 over the redacted rows' digests.")


@strawberry.type(
    description="The manifest stored beside an export's file (also served at `manifestUrl`), "
    "what `signoff audit verify` checks the file against."
)
class AuditExportManifest:
    tenant_id: str = strawberry.field(description="The tenant whose trail it is.")
    format: ExportFormat = strawberry.field(description="File format.")
    filter: AuditExportFilter = strawberry.field(description="The filter it was made with.")
    rows: int = strawberry.field(description="Rows in the file.")
    time_range: AuditExportTimeRange = strawberry.field(description="Times of its events.")
    chain: AuditExportChain = strawberry.field(description="Its place in the hash chain.")
    redaction: AuditExportRedaction | None = strawberry.field(
        description="Its redacted rows (none for files made before redaction digests)."
    )
    row_digests: bool = strawberry.field(
        description="Whether each row ends with the sha256 of its own bytes (`row_sha256`)."
    )
    sha256: str = strawberry.field(description="sha256 of the file.")
    bytes: int = strawberry.field(description="Size of the file in bytes.")
    generated_at: datetime = strawberry.field(description="When the file was completed.")

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> AuditExportManifest:
        """The manifest as written (`ManifestBuilder.manifest`)."""
        span, chain, redaction = value["time_range"], value["chain"], value.get("redaction")
        return cls(
            tenant_id=value["tenant_id"],
            format=ExportFormat(value["format"]),
            filter=AuditExportFilter.from_dict(value["filter"]),
            rows=value["rows"],
            time_range=AuditExportTimeRange(
                first=_time(span.get("first")), last=_time(span.get("last"))
            ),
            chain=AuditExportChain(
                to_seq=chain["to_seq"],
                contiguous=chain["contiguous"],
                first_seq=chain.get("first_seq"),
                first_prev_hash=chain.get("first_prev_hash"),
                first_hash=chain.get("first_hash"),
                last_seq=chain.get("last_seq"),
                last_hash=chain.get("last_hash"),
            ),
            redaction=(
                AuditExportRedaction(
                    reader_roles=list(redaction["reader_roles"]),
                    rows=redaction["rows"],
                    sha256=redaction["sha256"],
                )
                if redaction is not None
                else None
            ),
            row_digests=bool(value.get("row_digests")),
            sha256=value["sha256"],
            bytes=value["bytes"],
            generated_at=datetime.fromisoformat(value["generated_at"]),
        )


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


UNTYPED = "Untyped (JSON with the stored snake_case keys); use `{}`, the same data typed."


@strawberry.type(description="An export of the tenant's audit trail, run by a worker.")
class AuditExport(Node):
    id: strawberry.ID = strawberry.field(description="Global id.")
    export_status: ExportStatus = strawberry.field(description="Where it is.")
    format: ExportFormat = strawberry.field(description="File format.")
    filter: JSON = strawberry.field(
        description="The filter it was requested with.",
        deprecation_reason=UNTYPED.format("exportFilter"),
    )
    export_filter: AuditExportFilter = strawberry.field(
        description="The filter it was requested with."
    )
    to_seq: int = strawberry.field(
        description="It holds events up to this seq: the chain's head when it was requested."
    )
    requested_by: str = strawberry.field(description="Who requested it.")
    export_attempts: int = strawberry.field(
        description="Attempts so far (a lost worker's is re-run)."
    )
    rows_written: int = strawberry.field(description="Rows written by the current attempt.")
    rows_total: int | None = strawberry.field(
        description="Rows it will hold (known once a worker started it)."
    )
    error: str | None = strawberry.field(description="Why the last attempt failed.")
    created_at: datetime = strawberry.field(description="When it was requested.")
    finished_at: datetime | None = strawberry.field(description="When it completed or failed.")
    file_sha256: str | None = strawberry.field(description="sha256 of the file, once completed.")
    file_size: int | None = strawberry.field(description="Bytes of the file, once completed.")
    manifest: JSON | None = strawberry.field(
        description="Row count, time range, filter, chain segment ends and sha256 of the file.",
        deprecation_reason=UNTYPED.format("exportManifest"),
    )
    export_manifest: AuditExportManifest | None = strawberry.field(
        description="The manifest stored beside the file (completed exports): row count, time "
        "range, filter, chain segment ends and sha256 of the file."
    )
    expires_at: datetime | None = strawberry.field(
        description="When retention removes its file (completed exports; none when the "
        "deployment keeps files until removed by hand)."
    )
    expired_at: datetime | None = strawberry.field(
        description="When retention removed its file (expired exports)."
    )
    download_url: str | None = strawberry.field(
        description="Short-lived link to the file (completed exports), for the caller only."
    )
    manifest_url: str | None = strawberry.field(
        description="Short-lived link to the manifest (completed exports), for the caller only."
    )

    @classmethod
    def from_row(
        cls, row: dict[str, Any], token: str | None, expires_at: datetime | None = None
    ) -> AuditExport:
        """Map an export row; `token` makes the download links."""
        global_id = ids.encode("AuditExport", row["id"])
        base = f"/audit-exports/{global_id}"
        done = row["status"] == ExportStatus.COMPLETED and token is not None
        query = f"?token={quote(token or '')}"
        return cls(
            id=strawberry.ID(global_id),
            export_status=ExportStatus(row["status"]),
            format=ExportFormat(row["format"]),
            filter=row["filter"],
            export_filter=AuditExportFilter.from_dict(row["filter"]),
            to_seq=row["to_seq"],
            requested_by=row["requested_by"],
            export_attempts=row["attempts"],
            rows_written=row["rows_written"],
            rows_total=row["rows_total"],
            error=row["error"],
            created_at=row["created_at"],
            finished_at=row["finished_at"],
            file_sha256=row["sha256"],
            file_size=row["size"],
            manifest=row["manifest"],
            export_manifest=(
                AuditExportManifest.from_dict(row["manifest"]) if row["manifest"] else None
            ),
            expires_at=expires_at,
            expired_at=row.get("expired_at"),
            download_url=f"{base}/file{query}" if done else None,
            manifest_url=f"{base}/manifest{query}" if done else None,
        )


@strawberry.type(description="Result of `requestAuditExport`.")
class RequestAuditExportPayload:
    export: AuditExport | None = strawberry.field(description="The export, queued.")
    errors: list[UserError] = strawberry.field(description="Empty on success.")


def to_filter(value: AuditExportFilterInput | None) -> ExportFilter:
    """The domain filter of the input."""
    if value is None:
        return ExportFilter()
    return ExportFilter(
        since=value.since,
        until=value.until,
        template_key=value.template_key,
        item_id=(
            ids.decode_uuid(value.item_id, "WorkflowItem", "filter.itemId")
            if value.item_id
            else None
        ),
        actor_id=value.actor_id,
        kinds=tuple(value.kinds or ()),
    )


def audit_export_node(info: Info[SignoffContext, Any], row: dict[str, Any]) -> AuditExport:
    """An export row as the caller sees it (with download links for the caller)."""
    services = services_of(info)
    token = export_services.download_token(actor_of(info), services, row["id"])
    return AuditExport.from_row(row, token, export_services.expires_at(services, row))


@strawberry.type
class AuditExportMutations:
    @strawberry.mutation(
        description="Export the tenant's audit trail in the background (export_audit): "
        "follow it with `auditExport`, download it from its links when completed."
    )
    async def request_audit_export(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            RequestAuditExportInput, strawberry.argument(description="What to export.")
        ],
    ) -> RequestAuditExportPayload:
        try:
            row = await export_services.request_export(
                actor_of(info),
                services_of(info),
                to_filter(input.filter),
                input.format,
                key_guards(input.guards).idempotency_key,
            )
        except DomainError as exc:
            return RequestAuditExportPayload(export=None, errors=[user_error(exc)])
        return RequestAuditExportPayload(export=audit_export_node(info, row), errors=[])


MAX_EXPORT_PAGE = 100
EXPORT_ORDER: KeysetOrder[dict[str, Any]] = KeysetOrder(
    "AuditExport", (timestamp, uuid_part), lambda row: (row["created_at"], row["id"])
)


@strawberry.type
class AuditExportQueries:
    @strawberry.field(description="One audit export with its progress (export_audit).")
    async def audit_export(
        self,
        info: Info[SignoffContext, Any],
        id: Annotated[strawberry.ID, strawberry.argument(description="Global id.")],
    ) -> AuditExport:
        try:
            row = await export_services.get_export(
                actor_of(info), services_of(info), ids.decode_uuid(id, "AuditExport", "id")
            )
        except DomainError as exc:
            raise CodedError(exc) from None
        return audit_export_node(info, row)

    @strawberry.field(
        description="The tenant's audit exports, newest first (export_audit); pages of up "
        f"to {MAX_EXPORT_PAGE} (default 20)."
    )
    async def audit_exports(
        self,
        info: Info[SignoffContext, Any],
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[AuditExport]:
        try:
            page = page_args(first, after, last, before, MAX_EXPORT_PAGE)
            rows = await export_services.list_exports(
                actor_of(info), services_of(info), EXPORT_ORDER.window(page)
            )
        except DomainError as exc:
            raise CodedError(exc) from None
        return connection(page, EXPORT_ORDER, rows, lambda row: audit_export_node(info, row))

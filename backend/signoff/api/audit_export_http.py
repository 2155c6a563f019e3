"""The plain-HTTP download of a completed audit export: its file, or its manifest."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.response import Stream

from signoff.api import ids
from signoff.api.auth import bearer_token
from signoff.api.evidence_http import error_response
from signoff.domain.actors import Actor
from signoff.domain.errors import DomainError, ErrorCode
from signoff.services import audit_exports as export_services
from signoff.services.context import ServiceContext

MEDIA = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


@get("/audit-exports/{export_id:str}/{part:str}", include_in_schema=False)
async def download_audit_export(
    request: Request[Any, Any, Any], state: State, export_id: str, part: str
) -> Response[Any] | Stream:
    """Stream a completed export's `file` or `manifest` to a holder of `export_audit` in its tenant
    (a bearer token, or the short-lived token of its download link)."""
    services: ServiceContext = state.services
    try:
        if part not in ("file", "manifest"):
            raise DomainError(ErrorCode.NOT_FOUND, "no such part of an export")
        raw_id = ids.decode_uuid(export_id, "AuditExport", "id")
        header = request.headers.get("authorization")
        token = request.query_params.get("token")
        if header:
            actor = Actor(state.verifier.verify(bearer_token(header)))
        elif token:
            actor, granted = export_services.download_grant(services, token)
            if granted != raw_id:
                raise DomainError(ErrorCode.NOT_FOUND, "this download link is for another export")
        else:
            raise DomainError(ErrorCode.UNAUTHENTICATED, "a bearer token or a download token")
        export, reader = await export_services.open_export_file(
            actor, services, raw_id, manifest=part == "manifest"
        )
    except DomainError as exc:
        return error_response(exc)
    extension = "manifest.json" if part == "manifest" else export["format"]
    return Stream(
        reader.chunks(),
        media_type="application/json" if part == "manifest" else MEDIA[export["format"]],
        headers={
            "content-length": str(reader.meta.size),
            "content-disposition": f'attachment; filename="audit-export-{raw_id}.{extension}"',
            "x-content-type-options": "nosniff",
            "cache-control": "private, no-store",
        },
    )

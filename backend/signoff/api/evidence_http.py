"""The two plain-HTTP endpoints of evidence files: receiving an upload, serving a download.

Errors are JSON `{"errors": [{"code", "message", "field"}]}` with the same stable codes as the
GraphQL API, and an HTTP status a browser understands.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, get, put
from litestar.datastructures import State
from litestar.exceptions import ClientException, InternalServerException
from litestar.response import Stream

from signoff.api import ids
from signoff.api.auth import TokenVerifier, bearer_token
from signoff.domain.actors import Actor, RequestMeta
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.evidence import EvidenceRecord
from signoff.services import evidence as evidence_services
from signoff.services import scopes
from signoff.services.context import ServiceContext

log = logging.getLogger("signoff.api")

STATUS = {
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.UPLOAD_EXPIRED: 410,
    ErrorCode.EXPORT_EXPIRED: 410,
    ErrorCode.UPLOAD_IN_PROGRESS: 409,
    ErrorCode.CONTENT_TYPE_NOT_ALLOWED: 415,
    ErrorCode.LIMIT_EXCEEDED: 413,
    ErrorCode.INTEGRITY_CHECK_FAILED: 422,
}


def error_response(exc: DomainError) -> Response[dict[str, Any]]:
    """The JSON error of a refusal."""
    body = {"errors": [{"code": exc.code.value, "message": exc.message, "field": exc.field}]}
    return Response(body, status_code=STATUS.get(exc.code, 400))


def evidence_json(record: EvidenceRecord) -> dict[str, Any]:
    """What the upload endpoint answers on success."""
    return {
        "id": ids.encode("Evidence", record.id),
        "itemId": ids.encode("WorkflowItem", record.item_id),
        "stepId": ids.encode("Step", record.step_id) if record.step_id else None,
        "name": record.name,
        "contentType": record.content_type,
        "size": record.size,
        "sha256": record.sha256,
    }


def request_meta_of(request: Request[Any, Any, Any]) -> RequestMeta:
    """Request id, client address and user agent of a plain HTTP request, for the audit."""
    return RequestMeta(
        request_id=(request.headers.get("x-request-id") or "")[:100] or None,
        client_addr=request.client.host if request.client else None,
        user_agent=(request.headers.get("user-agent") or "")[:300] or None,
    )


async def _body(request: Request[Any, Any, Any]) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            yield chunk
    except InternalServerException as exc:  # Litestar's "client disconnected prematurely"
        raise ConnectionAbortedError(str(exc.detail)) from None


@put(
    "/evidence/uploads/{token:str}",
    request_max_body_size=None,  # the service enforces the declared size as bytes arrive
    include_in_schema=False,
    status_code=201,
)
async def receive_evidence_upload(
    request: Request[Any, Any, Any], state: State, token: str
) -> Response[dict[str, Any]]:
    """Receive the raw bytes of one evidence file, PUT to the URL `requestEvidenceUpload` gave."""
    services: ServiceContext = state.services
    try:
        record = await evidence_services.receive_upload(
            services,
            token,
            request.headers.get("content-type"),
            _body(request),
            request_meta_of(request),
        )
    except DomainError as exc:
        return error_response(exc)
    except (ConnectionAbortedError, ClientException):
        # The client went away (or sent garbage) mid-upload: nothing was kept.
        return Response(
            {"errors": [{"code": "INVALID_INPUT", "message": "upload aborted"}]}, status_code=400
        )
    return Response({"evidence": evidence_json(record)}, status_code=201)


def _download_actor(
    request: Request[Any, Any, Any], services: ServiceContext, verifier: TokenVerifier
) -> tuple[Actor | None, str | None]:
    header = request.headers.get("authorization")
    if header:
        return Actor(verifier.verify(bearer_token(header)), request_meta_of(request)), None
    token = request.query_params.get("token")
    if not token:
        raise DomainError(ErrorCode.UNAUTHENTICATED, "a bearer token or a download token is needed")
    return None, token


@get("/evidence/{evidence_id:str}/content", include_in_schema=False)
async def download_evidence(
    request: Request[Any, Any, Any], state: State, evidence_id: str
) -> Response[Any] | Stream:
    """Stream an evidence file's verified content to someone who may read its item."""
    services: ServiceContext = state.services
    try:
        raw_id = ids.decode_uuid(evidence_id, "Evidence", "id")
        actor, token = _download_actor(request, services, state.verifier)
        if actor is None:
            assert token is not None
            actor, granted = evidence_services.download_grant(services, token)
            if granted != raw_id:
                raise DomainError(ErrorCode.NOT_FOUND, "this download link is for another file")
        with scopes.acting_as(actor):
            content = await evidence_services.open_content(actor, services, raw_id)
    except DomainError as exc:
        return error_response(exc)
    record = content.record
    headers = {
        "content-length": str(content.size),
        "content-disposition": f"attachment; filename*=UTF-8''{quote(record.name)}",
        "x-content-type-options": "nosniff",
        "content-security-policy": "sandbox",
        "cache-control": "private, no-store",
        "etag": f'"{content.sha256}"',
    }
    if content.redacted:
        # Not the recorded bytes: fields the reader may not see are left out.
        headers["x-signoff-redacted"] = "true"
    return Stream(content.chunks, media_type=record.content_type, headers=headers)

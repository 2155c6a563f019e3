"""Decision links open at `GET /decide/<token>`: where this process serves the reviewer
console, a redirect to the console's confirmation page (`/console/decide?token=…`); without
a console build, the built-in page here, which shows what the link would decide and a form
whose POST decides. No JavaScript, no bearer token.

Links are minted by whichever process plans the notification (usually a worker, which serves
no console), so they all take this one form and the API that answers them chooses the page.
A GET never changes anything, so mail scanners and link previews that follow the link decide
nothing (the console's page decides only on its button, through `confirmDecisionLink`). The
pages are never cached, framed or indexed, and send no referrer (the token is in their URL).
The built-in page's requests are charged to the caller's address in the cost budget (the
console's go through GraphQL, which charges them alike).
"""

from __future__ import annotations

import html
import uuid
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.enums import MediaType
from litestar.response import Redirect

from signoff.api.console import CONSOLE_PATH
from signoff.api.evidence_http import request_meta_of
from signoff.api.ratelimit import RateLimiter
from signoff.domain.errors import DomainError, ErrorCode
from signoff.domain.events import DecisionChoice
from signoff.services import decision_links
from signoff.services.actions import Guards
from signoff.services.context import ServiceContext

PAGE_COST = 10
"""Cost points a page view or a confirmation takes from the caller's budget (one mutation)."""

HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
}
STATUS = {
    ErrorCode.LINK_INVALID: 404,
    ErrorCode.LINK_EXPIRED: 410,
    ErrorCode.LINK_USED: 409,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.RATE_LIMITED: 429,
}
VERB = {DecisionChoice.APPROVE: "Approve", DecisionChoice.REJECT: "Reject"}
DONE = {DecisionChoice.APPROVE: "approved", DecisionChoice.REJECT: "rejected"}


def _page(title: str, body: str, status: int = 200) -> Response[str]:
    e = html.escape
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · signoff</title>"
        "<style>body{font-family:sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}"
        "dt{font-weight:bold}textarea{width:100%}button{font-size:1.1rem;padding:.4rem 1rem}"
        "</style></head><body>"
        f"<h1>{e(title)}</h1>{body}</body></html>"
    )
    return Response(document, status_code=status, media_type=MediaType.HTML, headers=dict(HEADERS))


def _refusal(exc: DomainError) -> Response[str]:
    return _page(
        "Nothing was decided",
        f"<p>{html.escape(exc.message)}</p><p><small>{exc.code.value}</small></p>",
        STATUS.get(exc.code, 400),
    )


async def _over_budget(request: Request[Any, Any, Any], state: State) -> Response[str] | None:
    """Charge the caller's address; the refusal page when its budget is spent."""
    limiter: RateLimiter | None = state.get("limiter")
    if limiter is None:
        return None
    client = request.client
    bucket = await limiter.take(f"addr:{client.host if client else 'unknown'}", PAGE_COST)
    if bucket.allowed:
        return None
    wait = max(1, bucket.retry_after)
    page = _refusal(DomainError(ErrorCode.RATE_LIMITED, f"Too many requests; retry in {wait} s."))
    page.headers["Retry-After"] = str(wait)
    return page


@get("/decide/{token:str}", include_in_schema=False)
async def decision_link_page(
    request: Request[Any, Any, Any], state: State, token: str
) -> Response[str] | Redirect:
    """The confirmation page of a decision link: the console's, or what it would decide and
    a form."""
    services: ServiceContext = state.services
    if services.settings.console_dir:
        return Redirect(
            path=f"{CONSOLE_PATH}/decide?{urlencode({'token': token})}",
            status_code=303,
            headers=dict(HEADERS),
        )
    if (limited := await _over_budget(request, state)) is not None:
        return limited
    try:
        found = await decision_links.preview(services, token, request_meta_of(request))
    except DomainError as exc:
        return _refusal(exc)
    e = html.escape
    verb = VERB[found.link.outcome]
    facts = (
        f"<dl><dt>Item</dt><dd>{e(found.item.item.title)}</dd>"
        f"<dt>Step</dt><dd>{e(found.step.name)}</dd>"
        f"<dt>Decision</dt><dd>{verb}</dd>"
        f"<dt>For</dt><dd>{e(found.display_name or found.link.user_id)}</dd>"
        f"<dt>Link valid until</dt><dd>{found.link.expires_at:%Y-%m-%d %H:%M} UTC</dd></dl>"
    )
    if found.used_at is not None:
        return _page("This link was already used", facts, 409)
    if found.expired:
        return _page("This link has expired", facts, 410)
    if not found.usable:
        return _page("This step is no longer open", facts)
    required = " required" if found.reason_required else ""
    form = (
        f'<form method="post">'
        f'<input type="hidden" name="key" value="{uuid.uuid4().hex}">'
        f'<p><label for="reason">Reason{" (required)" if required else ""}</label><br>'
        f'<textarea id="reason" name="reason" rows="4" maxlength="2000"{required}></textarea></p>'
        f'<p><button type="submit">{verb}</button></p></form>'
        "<p><small>Nothing is decided until you press the button.</small></p>"
    )
    return _page(f"{verb} this step?", facts + form)


@post("/decide/{token:str}", include_in_schema=False, status_code=200)
async def confirm_decision_link_form(
    request: Request[Any, Any, Any], state: State, token: str
) -> Response[str]:
    """The form's POST: decide as the link says (once)."""
    if (limited := await _over_budget(request, state)) is not None:
        return limited
    services: ServiceContext = state.services
    form = await request.form()
    reason = str(form.get("reason") or "").strip() or None
    key = str(form.get("key") or "")[:100] or None
    try:
        view, step = await decision_links.confirm(
            services, token, reason, Guards(idempotency_key=key), request_meta_of(request)
        )
    except DomainError as exc:
        return _refusal(exc)
    link, _ = decision_links.read(services, token)
    return _page(
        f"You {DONE[link.outcome]} the step",
        f"<p>{html.escape(step.name)} of {html.escape(view.item.title)} is now "
        f"{step.state.value.replace('_', ' ')}; the item is "
        f"{view.state.value.replace('_', ' ')}.</p>",
    )

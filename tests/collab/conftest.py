"""Fixtures of the collaboration tests: the notification pipeline's and the websocket ones are
shared with their own suites (imported here so that pytest offers them to these tests)."""

from __future__ import annotations

from typing import Any

from signoff.services import comments as comment_services
from signoff.services.context import ServiceContext
from tests.conftest import actor
from tests.notify.conftest import notify_settings, nsvc, quiet_leftovers  # noqa: F401
from tests.realtime.conftest import hub, ws_url  # noqa: F401


async def comment(
    services: ServiceContext, tenant: str, user: str, body: str, *roles: str, **target: Any
) -> Any:
    """Write a comment as `user` on `target` (item_id=, step_id= or reply_to_id=)."""
    return await comment_services.add_comment(
        actor(tenant, user, *roles), services, comment_services.AddCommentInput(body=body, **target)
    )

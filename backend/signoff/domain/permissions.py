"""Who may read an item and who may act on a step."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from signoff.domain.actors import Principal


def assignees_match(assignees: Mapping[str, Any], principal: Principal) -> bool:
    """Whether `principal` is named by an assignee set (as a user, through a group or a role,
    or as somebody's delegate)."""
    return (
        principal.user_id in assignees.get("users", ())
        or not principal.groups.isdisjoint(assignees.get("groups", ()))
        or not principal.roles.isdisjoint(assignees.get("roles", ()))
        or principal.user_id in assignees.get("delegates", {})
    )


def delegator_of(assignees: Mapping[str, Any], principal: Principal) -> str | None:
    """Whom `principal` acts for on a step: None when they are an assignee in their own right."""
    own = (
        principal.user_id in assignees.get("users", ())
        or not principal.groups.isdisjoint(assignees.get("groups", ()))
        or not principal.roles.isdisjoint(assignees.get("roles", ()))
    )
    if own:
        return None
    delegator: str | None = assignees.get("delegates", {}).get(principal.user_id)
    return delegator


def can_read_item(
    principal: Principal,
    *,
    tenant_id: str,
    requester_id: str,
    step_assignees: Iterable[Mapping[str, Any]],
    participants: Iterable[str],
    admin_roles: Iterable[str],
) -> bool:
    """Readers of an item: its requester, anyone assigned to or who acted on a step, admins.

    Nothing is ever readable across tenants.
    """
    if principal.tenant_id != tenant_id:
        return False
    if principal.user_id == requester_id or principal.has_any_role(admin_roles):
        return True
    if principal.user_id in set(participants):
        return True
    return any(assignees_match(a, principal) for a in step_assignees)

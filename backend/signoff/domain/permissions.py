"""Who may read an item and who may act on a step."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from signoff.domain.actors import Principal
from signoff.domain.records import StepAssignees


def assignees_match(assignees: StepAssignees | Mapping[str, Any], principal: Principal) -> bool:
    """Whether `principal` is named by an assignee set (as a user, through a group or a role,
    or as somebody's delegate). Accepts the stored JSON form too (as in audit event data)."""
    if not isinstance(assignees, StepAssignees):
        assignees = StepAssignees.from_dict(assignees)
    return assignees.matches(principal)


def can_read_item(
    principal: Principal,
    *,
    tenant_id: str,
    requester_id: str,
    step_assignees: Iterable[StepAssignees],
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
    return any(a.matches(principal) for a in step_assignees)


def can_audit(
    principal: Principal, *, auditor_roles: Iterable[str], admin_roles: Iterable[str]
) -> bool:
    """Auditors and admins: they verify and export the audit trail and see where each change
    came from (client address, user agent), which other readers of an item do not."""
    return principal.has_any_role(auditor_roles) or principal.has_any_role(admin_roles)

"""Permissions as data: which roles may do what, per tenant and per template, and who may read
an item.

A tenant's permission table grants each permission to *grantees*: role names, `*` (every
authenticated user of the tenant) or `@requester` (the requester of the item acted on). A
template may replace the tenant's grantees of an item permission for its own items; a
permission nobody set falls back to the deployment's default (settings). `allows` is the one
check: services load the table (`services/permissions.py`) and the progression receives it in
its context, so every refusal for lack of a permission comes from here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from signoff.domain.actors import Principal
from signoff.domain.errors import DomainError, ErrorCode, Problem, forbidden
from signoff.domain.records import StepAssignees

EVERYONE = "*"
"""The grantee that is every authenticated user of the tenant."""

REQUESTER = "@requester"
"""The grantee that is the requester of the item acted on (item permissions only)."""

MAX_GRANTEES = 50
_ROLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}")


class Permission(StrEnum):
    """Something a principal may be allowed to do. Never rename a member; add new ones."""

    SUBMIT = "submit"
    DECIDE = "decide"
    OVERRIDE = "override"
    EXECUTE = "execute"
    MANAGE_ITEMS = "manage_items"
    READ_ALL_ITEMS = "read_all_items"
    MODERATE_COMMENTS = "moderate_comments"
    ADMINISTER_TEMPLATES = "administer_templates"
    ADMINISTER_TIMERS = "administer_timers"
    ADMINISTER_NOTIFICATIONS = "administer_notifications"
    ADMINISTER_RETENTION = "administer_retention"
    ADMINISTER_REDACTION = "administer_redaction"
    LEGAL_HOLD = "legal_hold"
    EXPORT_AUDIT = "export_audit"
    READ_AUDIT_DETAILS = "read_audit_details"
    ADMINISTER_PERMISSIONS = "administer_permissions"
    READ_ANALYTICS = "read_analytics"
    ADMINISTER_ALERTS = "administer_alerts"


@dataclass(frozen=True)
class PermissionSpec:
    """What a permission allows, where it may be set, and who holds it by default.

    `defaults` names grantees (`*`, `@requester`) and settings whose roles hold it
    (`settings:admin_roles`); `per_template` permissions may be set per template key.
    """

    permission: Permission
    summary: str
    guards: tuple[str, ...]
    defaults: tuple[str, ...]
    per_template: bool = False


SPECS: tuple[PermissionSpec, ...] = (
    PermissionSpec(
        Permission.SUBMIT,
        "Open an item from a template (or a plan based on it).",
        ("submitItem",),
        (EVERYONE,),
        per_template=True,
    ),
    PermissionSpec(
        Permission.DECIDE,
        "Vote on and claim the steps one is assigned to (the assignment is needed as well).",
        ("approveStep", "rejectStep", "requestChanges", "claimStep", "approveAll"),
        (EVERYONE,),
        per_template=True,
    ),
    PermissionSpec(
        Permission.OVERRIDE,
        "Approve a step by override (with a strong justification; never on one's own item). "
        "Its roles are also the last escalation targets of a step nobody can fill.",
        ("overrideStep",),
        ("settings:override_roles",),
        per_template=True,
    ),
    PermissionSpec(
        Permission.EXECUTE,
        "Report execution of approved steps and recover failed ones.",
        ("reportExecution", "recoverStep"),
        (REQUESTER,),
        per_template=True,
    ),
    PermissionSpec(
        Permission.MANAGE_ITEMS,
        "Act on other people's items: cancel them, release others' claims, replace a step's "
        "seats, resolve held steps.",
        ("cancelItem", "unclaimStep", "reassignStep", "resolveHeldStep"),
        ("settings:admin_roles",),
        per_template=True,
    ),
    PermissionSpec(
        Permission.READ_ALL_ITEMS,
        "Read every item of the tenant (others read what they requested, are assigned to or "
        "acted on).",
        ("item", "node", "itemEvents", "inboxChanged", "comments"),
        ("settings:admin_roles",),
    ),
    PermissionSpec(
        Permission.MODERATE_COMMENTS,
        "Edit or delete other people's comments and read deleted comments' revisions.",
        ("editComment", "deleteComment", "Comment.revisions"),
        ("settings:admin_roles",),
    ),
    PermissionSpec(
        Permission.ADMINISTER_TEMPLATES,
        "Save and publish templates; simulate and replay published ones.",
        ("saveTemplate", "publishTemplate", "simulate", "replayTemplate"),
        ("settings:admin_roles",),
    ),
    PermissionSpec(
        Permission.ADMINISTER_TIMERS,
        "Set the business calendar; list overdue steps and a step's timers.",
        ("setBusinessCalendar", "overdueSteps", "stepTimers"),
        ("settings:admin_roles",),
    ),
    PermissionSpec(
        Permission.ADMINISTER_NOTIFICATIONS,
        "Read and retry dead letters, read deliveries, set other people's profiles.",
        ("deadLetters", "retryDeadLetter", "upsertUserProfile"),
        ("settings:admin_roles",),
    ),
    PermissionSpec(
        Permission.ADMINISTER_RETENTION,
        "Set and remove retention policies.",
        ("setRetentionPolicy", "removeRetentionPolicy", "retentionPolicies"),
        ("settings:admin_roles",),
    ),
    PermissionSpec(
        Permission.ADMINISTER_REDACTION,
        "Set and remove redaction rules of payload fields.",
        ("setRedactionRule", "removeRedactionRule", "redactionRules"),
        ("settings:admin_roles",),
    ),
    PermissionSpec(
        Permission.LEGAL_HOLD,
        "Place and release legal holds, and see an item's hold.",
        ("placeLegalHold", "releaseLegalHold", "legalHold"),
        ("settings:legal_hold_roles",),
    ),
    PermissionSpec(
        Permission.EXPORT_AUDIT,
        "Verify the audit chain and export the audit trail.",
        ("verifyAuditChain", "requestAuditExport", "auditExport", "auditExports"),
        ("settings:auditor_roles", "settings:admin_roles"),
    ),
    PermissionSpec(
        Permission.READ_AUDIT_DETAILS,
        "See where each change came from (client address, user agent) on audit events and in "
        "the audit exports written for them.",
        ("AuditEvent.clientAddr", "AuditEvent.userAgent"),
        ("settings:auditor_roles", "settings:admin_roles"),
    ),
    PermissionSpec(
        Permission.ADMINISTER_PERMISSIONS,
        "Read and change this table (`setPermission`, `permissions`).",
        ("setPermission", "permissions"),
        ("settings:admin_roles",),
    ),
    PermissionSpec(
        Permission.READ_ANALYTICS,
        "Read approval analytics of the tenant (times, outcomes, load, stuck items).",
        ("approvalAnalytics", "alertRules", "alerts"),
        ("settings:auditor_roles", "settings:admin_roles"),
    ),
    PermissionSpec(
        Permission.ADMINISTER_ALERTS,
        "Save alert rules and acknowledge alerts.",
        ("saveAlertRule", "acknowledgeAlert"),
        ("settings:admin_roles",),
    ),
)

SPEC = {s.permission: s for s in SPECS}

OPERATOR_PERMISSIONS = frozenset(
    p for p in Permission if p.value.startswith("administer_") or p is Permission.EXPORT_AUDIT
)
"""What the command line (an operator with the database's keys) may do in any tenant."""


def default_grantees(
    role_settings: Mapping[str, Iterable[str]],
) -> dict[Permission, frozenset[str]]:
    """Each permission's default grantees, the `settings:` entries read from `role_settings`
    (setting name → roles)."""
    table: dict[Permission, frozenset[str]] = {}
    for spec in SPECS:
        who: set[str] = set()
        for source in spec.defaults:
            if source.startswith("settings:"):
                who.update(role_settings.get(source.removeprefix("settings:"), ()))
            else:
                who.add(source)
        table[spec.permission] = frozenset(who)
    return table


class Source(StrEnum):
    """Where a permission's grantees come from."""

    DEFAULT = "default"
    TENANT = "tenant"
    TEMPLATE = "template"


@dataclass(frozen=True)
class Grant:
    """One stored row of the table: `permission` granted to `grantees`, tenant-wide
    (`template_key` empty) or for one template's items."""

    permission: Permission
    grantees: frozenset[str]
    template_key: str = ""


@dataclass(frozen=True)
class Grants:
    """A tenant's permission table: its stored grants over the deployment's defaults."""

    defaults: Mapping[Permission, frozenset[str]] = field(default_factory=dict)
    stored: tuple[Grant, ...] = ()

    def lookup(
        self, permission: Permission, template_key: str | None = None
    ) -> tuple[frozenset[str], Source]:
        """Who holds `permission` (for `template_key`'s items) and where that comes from: the
        template's grant, else the tenant's, else the default."""
        tenant: frozenset[str] | None = None
        for grant in self.stored:
            if grant.permission is not permission:
                continue
            if grant.template_key and grant.template_key == template_key:
                if SPEC[permission].per_template:
                    return grant.grantees, Source.TEMPLATE
            elif not grant.template_key:
                tenant = grant.grantees
        if tenant is not None:
            return tenant, Source.TENANT
        return self.defaults.get(permission, frozenset()), Source.DEFAULT

    def grantees(self, permission: Permission, template_key: str | None = None) -> frozenset[str]:
        """Who holds `permission` (for `template_key`'s items)."""
        return self.lookup(permission, template_key)[0]

    def roles(self, permission: Permission, template_key: str | None = None) -> frozenset[str]:
        """The role names among the grantees (escalation targets, messages)."""
        return frozenset(g for g in self.grantees(permission, template_key) if is_role(g))


def is_role(grantee: str) -> bool:
    """Whether a grantee is a role name (not `*` or `@requester`)."""
    return grantee not in (EVERYONE, REQUESTER)


def holds(grantees: Iterable[str], principal: Principal, *, requester: str | None = None) -> bool:
    """Whether `principal` is among `grantees` (for an item of `requester`)."""
    who = frozenset(grantees)
    if EVERYONE in who:
        return True
    if REQUESTER in who and requester is not None and principal.user_id == requester:
        return True
    return not principal.roles.isdisjoint(who)


def allows(
    grants: Grants,
    principal: Principal,
    permission: Permission,
    *,
    template_key: str | None = None,
    requester: str | None = None,
) -> bool:
    """The one check: whether `principal` holds `permission` (for an item of `template_key`
    requested by `requester`). The grants are always the principal's own tenant's."""
    if principal.operator:
        return permission in OPERATOR_PERMISSIONS
    return holds(grants.grantees(permission, template_key), principal, requester=requester)


def require(
    grants: Grants,
    principal: Principal,
    permission: Permission,
    what: str,
    *,
    template_key: str | None = None,
    requester: str | None = None,
) -> None:
    """FORBIDDEN unless `allows`; the message names the permission and who holds it."""
    if not allows(grants, principal, permission, template_key=template_key, requester=requester):
        who = sorted(grants.grantees(permission, template_key))
        raise forbidden(
            f"{what} needs the {permission.value} permission"
            + (f" (held by: {', '.join(who)})" if who else " (granted to nobody)")
        )


def check_grantees(values: Iterable[str], permission: Permission) -> frozenset[str]:
    """Validate the grantees of a permission to store: role names, `*`, or `@requester` for
    item permissions; at most MAX_GRANTEES (INVALID_INPUT with every problem)."""
    values = list(values)
    problems: list[Problem] = []
    if len(values) > MAX_GRANTEES:
        problems.append(Problem(f"at most {MAX_GRANTEES} grantees", "grantees"))
    for i, value in enumerate(values):
        if value == REQUESTER and not SPEC[permission].per_template:
            problems.append(
                Problem(f"{REQUESTER} applies to item permissions only", f"grantees[{i}]")
            )
        elif value not in (EVERYONE, REQUESTER) and not _ROLE.fullmatch(value):
            problems.append(
                Problem(
                    "a grantee is *, @requester or a role name (letters, digits, _ . : / -; "
                    "at most 100)",
                    f"grantees[{i}]",
                )
            )
    if problems:
        raise DomainError(
            ErrorCode.INVALID_INPUT, problems[0].message, "grantees", problems=problems
        )
    return frozenset(values)


def check_template_scope(permission: Permission, template_key: str | None) -> str:
    """The stored template key of a grant ('' for the tenant's); INVALID_INPUT for a
    tenant-wide permission set on a template."""
    key = (template_key or "").strip()
    if key and not SPEC[permission].per_template:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"{permission.value} is set for the whole tenant, not per template",
            "templateKey",
        )
    if len(key) > 200:
        raise DomainError(ErrorCode.INVALID_INPUT, "template key too long", "templateKey")
    return key


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
    grants: Grants,
) -> bool:
    """Readers of an item: its requester, anyone assigned to or who acted on a step, holders
    of `read_all_items`.

    Nothing is ever readable across tenants.
    """
    if principal.tenant_id != tenant_id:
        return False
    if principal.user_id == requester_id or allows(grants, principal, Permission.READ_ALL_ITEMS):
        return True
    if principal.user_id in set(participants):
        return True
    return any(a.matches(principal) for a in step_assignees)


def render_markdown() -> str:
    """docs/reference/permissions.md, generated from SPECS."""
    lines = [
        "# Permissions",
        "",
        "Generated from `backend/signoff/domain/permissions.py` by `signoff docs permissions`;",
        "a test fails when this file and the code disagree.",
        "",
        "Each permission is granted to *grantees*: role names (from the bearer token's `roles`),",
        f"`{EVERYONE}` (every authenticated user of the tenant) or `{REQUESTER}` (the requester",
        "of the item acted on; item permissions only). A tenant's administrators set them with",
        "`setPermission` (or `signoff permissions set`); every change is an audit event",
        "(`permission.set`, with the grantees before and after).",
        "",
        "Which grantees apply, for an action on an item of template `K`:",
        "",
        "1. the grant set for template `K`, if the permission is *per template* and one is set",
        "   (it replaces the tenant's: it may narrow or widen it);",
        "2. else the tenant's grant, if one is set;",
        "3. else the default below (the roles named by the settings, so a deployment that",
        "   never sets a grant behaves as its settings say).",
        "",
        "Setting a grant to an empty list grants the permission to nobody; resetting it",
        "(`grantees: null`) returns to the next rule. Holding a permission is necessary, not",
        "always sufficient: deciding also takes a seat on the step, overriding a justification,",
        "and no one acts on their own item's review (separation of duties).",
        "",
        "The command line (`signoff templates load`, `signoff retention`,",
        "`signoff permissions`) acts as an operator, who holds: "
        + ", ".join(f"`{p.value}`" for p in sorted(OPERATOR_PERMISSIONS))
        + ".",
        "",
        "| permission | per template | default grantees | allows | guards |",
        "| --- | --- | --- | --- | --- |",
    ]
    for spec in SPECS:
        defaults = ", ".join(
            f"`SIGNOFF_{d.removeprefix('settings:').upper()}`"
            if d.startswith("settings:")
            else f"`{d}`"
            for d in spec.defaults
        )
        guards = ", ".join(f"`{g}`" for g in spec.guards)
        lines.append(
            f"| `{spec.permission.value}` | {'yes' if spec.per_template else 'no'} | "
            f"{defaults} | {spec.summary} | {guards} |"
        )
    lines.append("")
    return "\n".join(lines)

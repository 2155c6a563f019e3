"""Queries of retention: policies, legal holds, the items due, and the removal of content."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from signoff.db import sql
from signoff.domain.retention import (
    RETAINED_STATES,
    ItemRetentionRecord,
    LegalHoldRecord,
    RetentionAction,
    RetentionPolicy,
)

# The literal list of the partial index `workflow_item_retention` (a parameter would not let
# the planner use it).
_RETAINED = ", ".join(f"'{s.value}'" for s in sorted(RETAINED_STATES))


@dataclass(frozen=True)
class RetentionFacts:
    """What retention needs to know of a locked item besides the item itself."""

    template_key: str
    held: bool
    applied: bool


def _policy(row: Any) -> RetentionPolicy:
    return RetentionPolicy(row["template_key"], int(row["days"]), RetentionAction(row["action"]))


async def put_policy(
    tenant_id: str, policy: RetentionPolicy, updated_by: str, now: datetime
) -> RetentionPolicy | None:
    """Create or replace the tenant's policy for `policy.template_key`; the one replaced."""
    before = await policy_of(tenant_id, policy.template_key)
    await sql.execute(
        """INSERT INTO retention_policy (id, tenant_id, template_key, days, action, updated_by,
            updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (tenant_id, template_key) DO UPDATE SET days = excluded.days,
            action = excluded.action, updated_by = excluded.updated_by,
            updated_at = excluded.updated_at""",
        uuid.uuid4(),
        tenant_id,
        policy.template_key,
        policy.days,
        policy.action.value,
        updated_by,
        now,
    )
    return before


async def delete_policy(tenant_id: str, template_key: str) -> RetentionPolicy | None:
    """Remove the tenant's policy for `template_key`; the one removed, if any."""
    row = await sql.fetchrow(
        """DELETE FROM retention_policy WHERE tenant_id = $1 AND template_key = $2
        RETURNING template_key, days, action""",
        tenant_id,
        template_key,
    )
    return _policy(row) if row else None


async def policy_of(tenant_id: str, template_key: str) -> RetentionPolicy | None:
    """The tenant's policy stated for exactly `template_key` ('' for the default)."""
    row = await sql.fetchrow(
        """SELECT template_key, days, action FROM retention_policy
        WHERE tenant_id = $1 AND template_key = $2""",
        tenant_id,
        template_key,
    )
    return _policy(row) if row else None


async def policies_of(tenant_id: str) -> list[RetentionPolicy]:
    """The tenant's policies, the default first, then by template key."""
    rows = await sql.fetch(
        """SELECT template_key, days, action FROM retention_policy WHERE tenant_id = $1
        ORDER BY template_key""",
        tenant_id,
    )
    return [_policy(r) for r in rows]


async def tenants_with_policies() -> list[str]:
    """Every tenant that has at least one retention policy."""
    rows = await sql.fetch("SELECT DISTINCT tenant_id FROM retention_policy ORDER BY tenant_id")
    return [str(r["tenant_id"]) for r in rows]


async def due_candidates(tenant_id: str, now: datetime, limit: int) -> list[UUID]:
    """Decided items of the tenant that its policies make due at `now`, oldest change first,
    not on hold and not handled yet (the service decides again under the item's lock)."""
    rows = await sql.fetch(
        f"""SELECT i.id FROM workflow_item i
        JOIN template t ON t.id = i.template_id
        JOIN LATERAL (SELECT p.days FROM retention_policy p
            WHERE p.tenant_id = i.tenant_id AND p.template_key IN (t.key, '')
            ORDER BY p.template_key DESC LIMIT 1) p ON true
        WHERE i.tenant_id = $1
          AND i.state IN ({_RETAINED})
          AND i.updated_at <= $2::timestamptz - make_interval(days =>
              (SELECT min(days) FROM retention_policy WHERE tenant_id = $1))
          AND i.updated_at <= $2::timestamptz - make_interval(days => p.days)
          AND NOT EXISTS (SELECT 1 FROM item_retention r WHERE r.item_id = i.id)
          AND NOT EXISTS (SELECT 1 FROM legal_hold h WHERE h.item_id = i.id)
        ORDER BY i.updated_at, i.id LIMIT $3""",
        tenant_id,
        now,
        limit,
    )
    return [r["id"] for r in rows]


async def facts_of(tenant_id: str, item_id: UUID, template_id: UUID) -> RetentionFacts:
    """The item's template key, whether it is on hold and whether retention handled it."""
    row = await sql.fetchrow(
        """SELECT (SELECT key FROM template WHERE id = $3) AS template_key,
            EXISTS (SELECT 1 FROM legal_hold WHERE tenant_id = $1 AND item_id = $2) AS held,
            EXISTS (SELECT 1 FROM item_retention WHERE tenant_id = $1 AND item_id = $2)
                AS applied""",
        tenant_id,
        item_id,
        template_id,
    )
    assert row is not None
    return RetentionFacts(str(row["template_key"]), bool(row["held"]), bool(row["applied"]))


async def replace_payload(
    tenant_id: str, item_id: UUID, payload: dict[str, Any], now: datetime
) -> int:
    """Write the item's remaining payload (version bumped); its new version."""
    version = await sql.fetchrow(
        """UPDATE workflow_item SET payload = $3::jsonb, version = version + 1, updated_at = $4
        WHERE tenant_id = $1 AND id = $2 RETURNING version""",
        tenant_id,
        item_id,
        sql.dumps(payload),
        now,
    )
    assert version is not None
    return int(version["version"])


async def purge_comment_bodies(tenant_id: str, item_id: UUID, now: datetime) -> int:
    """Remove the text of every revision of the item's comments; how many were removed."""
    rows = await sql.fetch(
        """UPDATE comment_revision r SET body = NULL, purged_at = $3
        FROM comment c
        WHERE c.tenant_id = $1 AND c.item_id = $2 AND r.comment_id = c.id
          AND r.tenant_id = $1 AND r.purged_at IS NULL
        RETURNING r.id""",
        tenant_id,
        item_id,
        now,
    )
    return len(rows)


async def purge_evidence(tenant_id: str, item_id: UUID, now: datetime) -> int:
    """Mark the item's evidence files purged and remove their descriptions; how many. Their
    stored objects are deleted after commit (`objects_to_delete`)."""
    rows = await sql.fetch(
        """UPDATE evidence SET description = NULL, purged_at = $3
        WHERE tenant_id = $1 AND item_id = $2 AND purged_at IS NULL RETURNING id""",
        tenant_id,
        item_id,
        now,
    )
    return len(rows)


async def mark_review_snapshots(tenant_id: str, item_id: UUID, now: datetime) -> int:
    """Mark the snapshots of the incident reviews that reopened the item (they hold its
    history) for redaction; how many. They are rewritten after commit
    (`snapshots_to_redact`)."""
    rows = await sql.fetch(
        """UPDATE evidence e SET redaction_due_at = $3
        FROM incident_review r
        WHERE r.tenant_id = $1 AND r.reviewed_item_id = $2 AND e.id = r.snapshot_evidence_id
          AND e.tenant_id = $1 AND e.purged_at IS NULL
        RETURNING e.id""",
        tenant_id,
        item_id,
        now,
    )
    return len(rows)


@dataclass(frozen=True)
class SnapshotToRedact:
    """A review's snapshot whose reviewed item's content retention removed."""

    evidence_id: UUID
    review_item_id: UUID
    reviewed_item_id: UUID
    storage_key: str
    sha256: str


async def snapshots_to_redact(tenant_id: str, limit: int = 100) -> list[SnapshotToRedact]:
    """The tenant's review snapshots marked for redaction whose object is still stored."""
    rows = await sql.fetch(
        """SELECT e.id, e.item_id, r.reviewed_item_id, e.storage_key, e.sha256
        FROM evidence e JOIN incident_review r ON r.snapshot_evidence_id = e.id
        WHERE e.tenant_id = $1 AND e.redaction_due_at IS NOT NULL AND e.purged_at IS NULL
          AND e.storage_key IS NOT NULL AND r.tenant_id = $1
        ORDER BY e.redaction_due_at LIMIT $2""",
        tenant_id,
        limit,
    )
    return [
        SnapshotToRedact(
            r["id"], r["item_id"], r["reviewed_item_id"], str(r["storage_key"]), r["sha256"]
        )
        for r in rows
    ]


async def payload_of(tenant_id: str, item_id: UUID) -> dict[str, Any]:
    """An item's payload as it is stored now."""
    row = await sql.fetchrow(
        "SELECT payload FROM workflow_item WHERE tenant_id = $1 AND id = $2", tenant_id, item_id
    )
    return sql.loads(row["payload"]) if row else {}


async def snapshot_redacted(tenant_id: str, evidence_id: UUID, sha256: str, size: int) -> bool:
    """Record a snapshot's rewritten content; False when another run already did."""
    row = await sql.fetchrow(
        """UPDATE evidence SET sha256 = $3, size = $4, redaction_due_at = NULL
        WHERE tenant_id = $1 AND id = $2 AND redaction_due_at IS NOT NULL AND purged_at IS NULL
        RETURNING id""",
        tenant_id,
        evidence_id,
        sha256,
        size,
    )
    return row is not None


async def objects_to_delete(tenant_id: str, limit: int = 500) -> list[tuple[UUID, str]]:
    """(evidence id, storage key) of purged evidence whose object is still stored."""
    rows = await sql.fetch(
        """SELECT id, storage_key FROM evidence
        WHERE tenant_id = $1 AND purged_at IS NOT NULL AND storage_key IS NOT NULL
        ORDER BY purged_at LIMIT $2""",
        tenant_id,
        limit,
    )
    return [(r["id"], str(r["storage_key"])) for r in rows]


async def forget_object(tenant_id: str, evidence_id: UUID) -> None:
    """Record that a purged evidence file's object is deleted."""
    await sql.execute(
        "UPDATE evidence SET storage_key = NULL WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        evidence_id,
    )


async def record_applied(
    tenant_id: str,
    item_id: UUID,
    policy: RetentionPolicy,
    payload_sha256: str,
    now: datetime,
) -> None:
    """Remember that `policy` was applied to the item."""
    await sql.execute(
        """INSERT INTO item_retention (item_id, tenant_id, action, policy_key, days,
            payload_sha256, applied_at) VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        item_id,
        tenant_id,
        policy.action.value,
        policy.template_key,
        policy.days,
        payload_sha256,
        now,
    )


async def retention_of(tenant_id: str, item_id: UUID) -> ItemRetentionRecord | None:
    """What retention did to the item, if anything."""
    row = await sql.fetchrow(
        "SELECT * FROM item_retention WHERE tenant_id = $1 AND item_id = $2", tenant_id, item_id
    )
    if row is None:
        return None
    return ItemRetentionRecord(
        row["item_id"],
        RetentionAction(row["action"]),
        row["policy_key"],
        int(row["days"]),
        row["payload_sha256"],
        row["applied_at"],
    )


async def hold_of(tenant_id: str, item_id: UUID) -> LegalHoldRecord | None:
    """The item's legal hold, if it is on one."""
    row = await sql.fetchrow(
        "SELECT * FROM legal_hold WHERE tenant_id = $1 AND item_id = $2", tenant_id, item_id
    )
    if row is None:
        return None
    return LegalHoldRecord(row["item_id"], row["reason"], row["placed_by"], row["placed_at"])


async def place_hold(
    tenant_id: str, item_id: UUID, reason: str, placed_by: str, now: datetime
) -> LegalHoldRecord:
    """Put the item on hold (the caller holds the item's lock and checked there is none)."""
    await sql.execute(
        """INSERT INTO legal_hold (item_id, tenant_id, reason, placed_by, placed_at)
        VALUES ($1, $2, $3, $4, $5)""",
        item_id,
        tenant_id,
        reason,
        placed_by,
        now,
    )
    return LegalHoldRecord(item_id, reason, placed_by, now)


async def release_hold(tenant_id: str, item_id: UUID) -> LegalHoldRecord | None:
    """Take the item off hold; the hold released, if there was one."""
    row = await sql.fetchrow(
        "DELETE FROM legal_hold WHERE tenant_id = $1 AND item_id = $2 RETURNING *",
        tenant_id,
        item_id,
    )
    if row is None:
        return None
    return LegalHoldRecord(row["item_id"], row["reason"], row["placed_by"], row["placed_at"])


async def events_with_payload_copies(tenant_id: str, item_id: UUID) -> list[tuple[int, Any]]:
    """(seq, data) of the item's audit events not yet redacted whose data holds a copy of a
    payload."""
    rows = await sql.fetch(
        """SELECT seq, data FROM audit_event
        WHERE tenant_id = $1 AND item_id = $2 AND redacted_at IS NULL
          AND (data ? 'previous_payload' OR data ? 'payload')
        ORDER BY seq""",
        tenant_id,
        item_id,
    )
    return [(int(r["seq"]), sql.loads(r["data"])) for r in rows]

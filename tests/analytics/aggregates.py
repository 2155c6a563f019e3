"""The invariant of the analytics' maintained aggregates and copies (migrations `2026-12-10T61`
and `T62`): whatever happened, `analytics_day`, `item_tally`, `decision_response` and
`step_deadline` equal their recomputation from scratch over the audit trail, the items, the
steps and the decisions, and a statement bound to a tenant sees only that
tenant's rows of them (row-level security, as the application's role)."""

from __future__ import annotations

from typing import Any

from signoff.db import sql
from signoff.db.engine import ENGINE
from signoff.domain import analytics as model
from signoff.services import scopes

COUNTED = ", ".join(f"'{a}'" for a in model.COUNTED_ACTIONS)

# Every statement below is written without a tenant condition: row-level security alone must
# keep the other tenants' rows out.
MAINTAINED_DAYS = """
SELECT tenant_id, day, action, template_id, reason, level, n FROM analytics_day WHERE n <> 0
"""
RECOMPUTED_DAYS = f"""
SELECT e.tenant_id, (e.occurred_at AT TIME ZONE 'UTC')::date AS day, e.action, i.template_id,
    CASE WHEN e.action = 'step.reject' THEN e.reason END AS reason,
    CASE WHEN e.action = 'step.escalate' AND jsonb_typeof(e.data -> 'level') = 'number'
         THEN (e.data ->> 'level')::numeric::int END AS level,
    count(*) AS n
FROM audit_event e LEFT JOIN workflow_item i ON i.id = e.item_id
WHERE e.action IN ({COUNTED})
GROUP BY 1, 2, 3, 4, 5, 6
"""
MAINTAINED_TALLIES = """
SELECT tenant_id, item_id, template_id, submitted_at, steps, decision_steps, human_decisions
FROM item_tally
"""
RECOMPUTED_TALLIES = """
SELECT i.tenant_id, i.id AS item_id, i.template_id, i.created_at AS submitted_at,
    (SELECT count(*) FROM step s WHERE s.item_id = i.id) AS steps,
    (SELECT count(DISTINCT d.step_id) FROM decision d
     WHERE d.item_id = i.id AND d.actor_id <> 'system') AS decision_steps,
    (SELECT count(*) FROM decision d
     WHERE d.item_id = i.id AND d.actor_id <> 'system') AS human_decisions
FROM workflow_item i
"""
MAINTAINED_RESPONSES = """
SELECT tenant_id, decision_id, decided_at, template_id, actor_id, seconds FROM decision_response
"""
RECOMPUTED_RESPONSES = """
SELECT d.tenant_id, d.id AS decision_id, d.created_at AS decided_at, i.template_id, d.actor_id,
    extract(epoch FROM d.created_at - d.step_activated_at)::float8 AS seconds
FROM decision d JOIN workflow_item i ON i.id = d.item_id
WHERE d.actor_id <> 'system'
"""
MAINTAINED_DEADLINES = """
SELECT tenant_id, step_id, template_id, due_at, decided_at FROM step_deadline
"""
RECOMPUTED_DEADLINES = """
SELECT s.tenant_id, s.id AS step_id, i.template_id, s.due_at, s.decided_at
FROM step s JOIN workflow_item i ON i.id = s.item_id
WHERE s.due_at IS NOT NULL
"""
COPIES = (
    (MAINTAINED_DAYS, RECOMPUTED_DAYS),
    (MAINTAINED_TALLIES, RECOMPUTED_TALLIES),
    (MAINTAINED_RESPONSES, RECOMPUTED_RESPONSES),
    (MAINTAINED_DEADLINES, RECOMPUTED_DEADLINES),
)


def _key(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(v) for v in row.values())


async def _rows(statement: str) -> list[dict[str, Any]]:
    return sorted((dict(r) for r in await sql.fetch(statement)), key=_key)


async def assert_maintained(tenant: str) -> None:
    """The tenant's maintained aggregates equal their recomputation, and hold no other
    tenant's rows."""
    with scopes.for_tenant(tenant):
        async with ENGINE.transaction():
            pairs = [(await _rows(kept), await _rows(recomputed)) for kept, recomputed in COPIES]
            negative = await sql.fetchrow("SELECT count(*) AS n FROM analytics_day WHERE n < 0")
            trail = await sql.fetch("SELECT DISTINCT tenant_id FROM audit_event")
    # the statements were bound to the tenant: they saw its trail (its templates' events at
    # least), and nothing else
    assert [r["tenant_id"] for r in trail] == [tenant]
    for kept, recomputed in pairs:
        assert kept == recomputed
        assert {r["tenant_id"] for r in kept} <= {tenant}
    assert negative is not None and negative["n"] == 0

"""An inbox page is an index range scan from its cursor: the plan merges the reader's principal
ranges in order and never sorts the reader's entries, whatever the order or the cursor."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from signoff.db import sql
from signoff.db.inbox import (
    ClaimState,
    InboxFilters,
    InboxOrder,
    InboxPrincipal,
    InboxSortField,
    Keyset,
    page_statement,
)
from tests.conftest import bulk_tenant

ITEMS = 4000


async def load_items(tenant: str, template_id: UUID, count: int, assignees: dict) -> None:
    """`count` pending items with one active step each, written in two statements."""
    await sql.execute(
        """INSERT INTO workflow_item (id, tenant_id, template_id, kind, title, state, priority,
            risk, requester_id, due_at, created_at)
        SELECT gen_random_uuid(), $1, $2, 'approval', 'item ' || n, 'pending', n % 10,
            (ARRAY['low', 'medium', 'high', 'critical'])[1 + n % 4], 'dave',
            CASE WHEN n % 3 = 0 THEN NULL ELSE now() + n * interval '1 minute' END,
            now() - n * interval '1 second'
        FROM generate_series(1, $3) AS n""",
        tenant,
        template_id,
        count,
    )
    await sql.execute(
        """INSERT INTO step (tenant_id, item_id, key, name, kind, position, state, assignees,
            due_at)
        SELECT i.tenant_id, i.id, 'review', 'Review', 'approval', 0, 'active', $2::jsonb,
            CASE WHEN random() < 0.5 THEN i.due_at END
        FROM workflow_item i WHERE i.tenant_id = $1""",
        tenant,
        json.dumps(assignees),
    )


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []):
        out += nodes(child)
    return out


def outer_path(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The node and its outer (driving) children down to a leaf: the path rows stream along."""
    path = [plan]
    while plan.get("Plans"):
        plan = plan["Plans"][0]
        path.append(plan)
    return path


@pytest.fixture(scope="module")
async def big_role_inbox(database_url):
    """A tenant where the role `approver` (and the user zoe) has 4,000 active steps."""
    tenant, template = await bulk_tenant("plan")
    await load_items(tenant, template, ITEMS, {"roles": ["approver"], "users": ["zoe"]})
    await sql.execute("ANALYZE inbox_entry")
    return tenant


@pytest.mark.parametrize("field", list(InboxSortField))
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize(
    "filters", [InboxFilters(), InboxFilters(claim=ClaimState.UNCLAIMED, states=("pending",))]
)
async def test_a_page_is_an_ordered_index_scan_without_a_sort(
    big_role_inbox, field, descending, filters
):
    who = InboxPrincipal(big_role_inbox, "bob", groups=("ops",), roles=("approver", "auditor"))
    order = InboxOrder(field, descending)
    now = datetime.now(UTC)
    statement, values = page_statement(who, filters, order, after=None, limit=20, now=now)
    first = await sql.fetch(statement, *values)
    assert len(first) == 21  # the page and one more: whether a next page exists
    cursor = Keyset(first[19]["sort_key"], first[19]["id"])
    for after in (None, cursor):
        statement, values = page_statement(who, filters, order, after=after, limit=20, now=now)
        rows = await sql.fetch(f"EXPLAIN (FORMAT JSON) {statement}", *values)
        plan = json.loads(rows[0][0])[0]["Plan"]
        # the page: a Limit over the Merge Append of the principals' ranges, nothing sorted
        page = next(n for n in nodes(plan) if n["Node Type"] == "Limit")
        merged = page["Plans"][0]
        assert merged["Node Type"] == "Merge Append", merged["Node Type"]
        assert len(merged["Plans"]) == 4  # bob, ops, approver, auditor
        for branch in merged["Plans"]:
            # each range: a Limit over rows streamed from an index scan in the page's order
            kinds = [n["Node Type"] for n in outer_path(branch)]
            assert "Sort" not in kinds, kinds
            assert "Limit" in kinds, kinds
            scan = outer_path(branch)[-1]
            assert scan["Node Type"] == "Index Scan", kinds
            assert scan["Index Name"] == f"inbox_entry_{order.field.value}", scan
            assert scan["Scan Direction"] == ("Backward" if descending else "Forward")

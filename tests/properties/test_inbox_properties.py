"""Property of the inbox entries on a real PostgreSQL: after random histories (submissions,
votes, claims, hand-overs, delegations, reassignments, escalations and timeouts as time passes,
resubmissions, cancellations, overrides) every person's inbox read page by page through the
entries equals the inbox's definition computed straight from steps, items and decisions by a
slow query; and the counts agree with it (exact under the limit, flagged above it)."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from signoff.db import inbox as inbox_repo
from signoff.db import sql
from signoff.db.inbox import (
    ClaimState,
    InboxFilters,
    InboxOrder,
    InboxPrincipal,
    InboxSortField,
    ItemScope,
)
from signoff.domain.actors import Actor, Principal
from signoff.domain.errors import DomainError
from signoff.domain.templates import plan_to_template
from signoff.services import engine
from signoff.services import items as item_services
from signoff.services import timers as timer_services
from signoff.services.context import ServiceContext
from signoff.services.templates import definition_of, save_template
from tests.properties.test_progression_properties import (
    PEOPLE,
    REQUESTER,
    _call,
    moves,
    templates,
)

NO_DUE = datetime(9999, 12, 31, tzinfo=UTC)
RANK = {"critical": 3, "high": 2, "medium": 1}

REFERENCE = """
SELECT i.id, i.priority, i.risk, i.created_at, i.state, i.kind,
    min(coalesce(s.due_at, i.due_at)) AS due,
    bool_or(s.claimed_by = $2) AS mine,
    bool_and(s.claimed_by IS NULL) AS unclaimed
FROM step s JOIN workflow_item i ON i.id = s.item_id
WHERE s.tenant_id = $1 AND s.state = 'active'
  AND (s.assignees -> 'users' ? $2 OR s.assignees -> 'delegates' ? $2
       OR s.assignees -> 'groups' ?| $3::text[] OR s.assignees -> 'roles' ?| $4::text[])
  AND NOT EXISTS (
      SELECT 1 FROM decision d
      WHERE d.step_id = s.id AND d.revision = i.revision AND d.actor_id = $2
        AND d.outcome IN ('approve', 'reject'))
GROUP BY i.id"""

# The item scopes by their definitions: the items a person submitted, and those they decided on.
SCOPES = {
    ItemScope.REQUESTED: "i.requester_id = $2",
    ItemScope.DECIDED: (
        "EXISTS (SELECT 1 FROM decision d WHERE d.item_id = i.id AND d.actor_id = $2)"
    ),
}


async def reference_scope(tenant: str, user: str, scope: ItemScope, now: datetime) -> list[Any]:
    rows = await sql.fetch(
        f"""SELECT i.id, i.priority, i.risk, i.created_at, i.state, i.kind, i.due_at AS due
        FROM workflow_item i WHERE i.tenant_id = $1 AND {SCOPES[scope]}""",
        tenant,
        user,
    )
    return [
        {**dict(r), "overdue": r["due"] is not None and r["due"] < now, "claim": None} for r in rows
    ]


async def reference_inbox(who: InboxPrincipal, now: datetime) -> list[dict[str, Any]]:
    """The inbox by its definition (docs/inbox.md), unordered."""
    rows = await sql.fetch(REFERENCE, who.tenant_id, who.user_id, list(who.groups), list(who.roles))
    out = []
    for r in rows:
        claim = "mine" if r["mine"] else "unclaimed" if r["unclaimed"] else "others"
        out.append({**dict(r), "overdue": r["due"] is not None and r["due"] < now, "claim": claim})
    return out


def sort_value(row: dict[str, Any], field: InboxSortField) -> Any:
    if field is InboxSortField.DUE:
        return row["due"] or NO_DUE
    if field is InboxSortField.PRIORITY:
        return row["priority"]
    if field is InboxSortField.RISK:
        return RANK.get(row["risk"], 0)
    return row["created_at"]


async def paged(
    who: InboxPrincipal,
    filters: InboxFilters,
    order: InboxOrder,
    now: datetime,
    size: int,
    scope: ItemScope | None = None,
) -> list[tuple[Any, ...]]:
    """Every page of the inbox (or of an item scope) through the entries, following the
    cursors."""
    out: list[tuple[Any, ...]] = []
    after = None
    for _ in range(200):
        rows, more = await inbox_repo.inbox_page(
            who, filters, order, after=after, limit=size, now=now, scope=scope
        )
        out += [(r["id"], r["inbox_due"], r["inbox_overdue"], r["inbox_claim"]) for r in rows]
        if not more:
            return out
        assert rows, "a page says more follow but is empty"
        after = inbox_repo.Keyset(rows[-1]["sort_key"], rows[-1]["id"])
    raise AssertionError("paging did not end")


async def fire_due(ctx: ServiceContext, item_ids: list[uuid.UUID]) -> None:
    rows = await sql.fetch(
        """SELECT id, token FROM timer WHERE item_id = ANY($1::uuid[]) AND status = 'armed'
        AND due_at <= $2 ORDER BY due_at, kind""",
        item_ids,
        ctx.clock.now(),
    )
    for row in rows:
        await timer_services.fire_timer(ctx, row["id"], row["token"])


filters_drawn = st.builds(
    InboxFilters,
    claim=st.none() | st.sampled_from(list(ClaimState)),
    overdue=st.none() | st.booleans(),
    states=st.sampled_from([(), ("pending",)]),
)


@pytest.mark.timeout(600)
@hsettings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    document=templates(),
    sequence=st.lists(st.tuples(st.integers(0, 2), moves()), min_size=2, max_size=14),
    field=st.sampled_from(list(InboxSortField)),
    descending=st.booleans(),
    filters=filters_drawn,
    size=st.integers(1, 3),
    deadlines=st.lists(
        st.tuples(
            st.booleans(), st.integers(0, 2), st.integers(0, 4), st.none() | st.integers(-90, 90)
        ),
        max_size=6,
    ),
)
async def test_the_entries_give_every_person_the_inbox_the_definition_describes(
    services, tenant, clock, document, sequence, field, descending, filters, size, deadlines
):
    admin = Actor(Principal("adm", tenant, frozenset({"admin"})))
    plan = document.pop("plan", None)
    version = await save_template(admin, services, document, publish=True)
    if plan is not None:
        plan = {"steps": [{k: v for k, v in p.items() if v is not None} for p in plan]}
        plan_to_template(plan, definition_of(version, services.settings))
    requester = Actor(Principal(REQUESTER, tenant, PEOPLE[REQUESTER].roles))
    items = []
    for n in range(3):
        view = await item_services.submit_item(
            requester,
            services,
            item_services.SubmitItemInput(
                template_key=document["key"], title=f"item {n}", plan=plan, priority=n % 2
            ),
        )
        items.append(view.id)
        clock.advance(timedelta(seconds=1))
    for target, move in sequence:
        if move[0] == "time":
            clock.advance(timedelta(minutes=move[1]))
            await fire_due(services, items)
            continue
        view = await engine.load_view(admin, services, items[target])
        call = _call(move, view, services, tenant)
        if call is None:
            continue
        with contextlib.suppress(DomainError):  # a refused action is part of a history
            await call()

    # Deadlines moved by hand (as an SLA change or a data fix would), so that items often
    # reach a person through several steps with different due times, some without one.
    for on_item, target, position, minutes in deadlines:
        due = None if minutes is None else clock.now() + timedelta(minutes=minutes)
        if on_item:
            await sql.execute(
                "UPDATE workflow_item SET due_at = $2 WHERE id = $1", items[target], due
            )
        else:
            await sql.execute(
                "UPDATE step SET due_at = $3 WHERE item_id = $1 AND position = $2",
                items[target],
                position,
                due,
            )

    now = clock.now()
    order = InboxOrder(field, descending)
    for person in PEOPLE.values():
        who = InboxPrincipal(
            tenant, person.user_id, tuple(sorted(person.groups)), tuple(sorted(person.roles))
        )
        expected = [
            r
            for r in await reference_inbox(who, now)
            if (filters.claim is None or r["claim"] == filters.claim.value)
            and (filters.overdue is None or r["overdue"] == filters.overdue)
            and (not filters.states or r["state"] in filters.states)
        ]
        expected.sort(key=lambda r: (sort_value(r, field), r["id"]), reverse=descending)
        want = [(r["id"], r["due"], r["overdue"], r["claim"]) for r in expected]
        assert await paged(who, filters, order, now, size) == want, person.user_id

        counts = await inbox_repo.inbox_counts(who, filters, order, now, limit=1000)
        assert counts.exact and counts.total == len(expected)
        for facet, column in (("state", "state"), ("kind", "kind"), ("risk", "risk")):
            wanted: dict[str, int] = {}
            for r in expected:
                wanted[r[column]] = wanted.get(r[column], 0) + 1
            assert counts.facets[facet] == wanted, facet
        claims: dict[str, int] = {}
        for r in expected:
            claims[r["claim"]] = claims.get(r["claim"], 0) + 1
        assert counts.facets["claim"] == claims
        capped = await inbox_repo.inbox_counts(who, filters, order, now, limit=2)
        assert capped.exact == (len(expected) <= 2)
        assert capped.total == min(len(expected), 2)

        # the item scopes (requests, history): same entries, same filters (no claim)
        plain = dataclasses.replace(filters, claim=None)
        for scope in ItemScope:
            listed = [
                r
                for r in await reference_scope(tenant, person.user_id, scope, now)
                if (plain.overdue is None or r["overdue"] == plain.overdue)
                and (not plain.states or r["state"] in plain.states)
            ]
            listed.sort(key=lambda r: (sort_value(r, field), r["id"]), reverse=descending)
            want = [(r["id"], r["due"], r["overdue"], None) for r in listed]
            got = await paged(who, plain, order, now, size, scope)
            assert got == want, (person.user_id, scope)
            counts = await inbox_repo.inbox_counts(who, plain, order, now, limit=1000, scope=scope)
            assert counts.total == len(listed) and counts.facets["claim"] == {}

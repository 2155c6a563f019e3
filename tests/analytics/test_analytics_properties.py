"""The SQL of the approval analytics against the definitions written out in plain Python, over
random histories of two tenants made through the real services (random people voting,
resubmitting, overriding, time passing, timers firing, events redacted) and random questions
about them, whose periods cross UTC midnights (whole days are read from the maintained
`analytics_day`, their ends from the trail). The maintained aggregates themselves are held
equal to a recomputation from scratch in SQL (tests/analytics/aggregates.py)."""

from __future__ import annotations

import math
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from signoff.db import audit as audit_repo
from signoff.db import sql
from signoff.db.engine import ENGINE
from signoff.domain import analytics as model
from signoff.domain.actors import SYSTEM_USER
from signoff.domain.audit import redaction_marker
from signoff.domain.clock import ManualClock
from signoff.domain.errors import DomainError
from signoff.services import analytics, overrides, scopes
from signoff.settings import Settings
from tests.analytics.aggregates import assert_maintained
from tests.analytics.history import ADMIN, History
from tests.conftest import actor

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
REASONS = ("too risky", "no ticket", "wrong window")

vote = st.tuples(
    st.just("vote"),
    st.integers(0, 5),
    st.sampled_from(["ann", "ann", "ben"]),
    st.sampled_from(["approve", "reject", "request_changes"]),
    st.sampled_from(REASONS),
)
move = st.tuples(
    st.integers(0, 1),  # which tenant moves
    st.integers(0, 300),  # minutes passing first on that tenant's clock (timers fire)
    st.one_of(
        st.tuples(st.just("submit"), st.sampled_from(["flow", "other"])),
        vote,
        vote,
        st.tuples(st.just("resubmit"), st.integers(0, 5)),
        st.tuples(st.just("override"), st.integers(0, 5)),
        st.tuples(st.just("redact"), st.integers(0, 9), st.sampled_from(["reason", "level"])),
    ),
)
JUSTIFICATION = "the change window closes tonight and the risk is accepted"


async def redact(h: History, index: int, what: str) -> None:
    """Redact the `index`-th rejection's reason or escalation's rung (the one UPDATE the trail
    allows), as retention or an operator would."""
    action = model.STEP_REJECT if what == "reason" else model.ESCALATION
    with scopes.for_tenant(h.tenant):
        async with ENGINE.transaction():
            events = await sql.fetch(
                "SELECT seq, data FROM audit_event WHERE tenant_id = $1 AND action = $2 "
                "AND redacted_at IS NULL ORDER BY seq",
                h.tenant,
                action,
            )
            if not events:
                return
            event = events[index % len(events)]
            seq, at = event["seq"], h.clock.now()
            if what == "reason":
                await audit_repo.redact_event(h.tenant, seq, at=at, clear=("reason",))
                return
            data = sql.loads(event["data"]) if isinstance(event["data"], str) else event["data"]
            if "level" in data:
                data = {**data, "level": redaction_marker(data["level"])}
                await audit_repo.redact_event(h.tenant, seq, at=at, data=data)


async def play(histories: list[History], moves: list[tuple[int, int, tuple[Any, ...]]]) -> None:
    items: list[list[Any]] = [[] for _ in histories]
    for who, wait, m in moves:
        h, mine = histories[who], items[who]
        await h.at(timedelta(minutes=wait), h.clock.now())
        try:
            if m[0] == "submit":
                mine.append(await h.submit(m[1]))
            elif m[0] == "vote" and mine:
                view = mine[m[1] % len(mine)]
                await h.vote(view, m[2], m[3], m[4])
            elif m[0] == "resubmit" and mine:
                await h.resubmit(mine[m[1] % len(mine)].item.id)
            elif m[0] == "override" and mine:
                step = mine[m[1] % len(mine)].steps[0]
                await overrides.override_step(
                    actor(h.tenant, *ADMIN), h.ctx, overrides.OverrideInput(step.id, JUSTIFICATION)
                )
            elif m[0] == "redact":
                await redact(h, m[1], m[2])
        except DomainError:
            pass  # a refused action changes nothing; the history goes on


def percentile(values: list[float], p: float) -> float | None:
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    rank = p * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


async def rows(query: str, tenant: str) -> list[dict[str, Any]]:
    return [sql.record_dict(r, ("data",)) for r in await sql.fetch(query, tenant)]


async def expected(tenant: str, q: model.AnalyticsQuestion, now: datetime) -> dict[str, Any]:
    """Every figure, by its definition in docs/operations/analytics.md, from the raw rows."""
    keys = {
        r["id"]: r["key"] for r in await rows("SELECT * FROM template WHERE tenant_id=$1", tenant)
    }
    items = {
        r["id"]: r for r in await rows("SELECT * FROM workflow_item WHERE tenant_id=$1", tenant)
    }
    steps = await rows("SELECT * FROM step WHERE tenant_id=$1", tenant)
    decisions = await rows("SELECT * FROM decision WHERE tenant_id=$1", tenant)
    events = await rows("SELECT * FROM audit_event WHERE tenant_id=$1 ORDER BY seq", tenant)
    inbox = await rows("SELECT * FROM inbox_entry WHERE tenant_id=$1", tenant)

    def ours(item_id: Any) -> bool:
        item = items.get(item_id)
        return item is not None and q.template_key in (None, keys[item["template_id"]])

    def within(t: datetime) -> bool:
        return q.start <= t < q.end

    period = [e for e in events if within(e["occurred_at"]) and ours(e["item_id"])]
    count = Counter(e["action"] for e in period)
    waits = [
        (e["occurred_at"] - items[e["item_id"]]["created_at"]).total_seconds()
        for e in period
        if e["action"] in model.ITEM_DECISIONS
    ]
    reasons = Counter(e["reason"] for e in period if e["action"] == model.STEP_REJECT)
    top = sorted(reasons.items(), key=lambda rc: (-rc[1], rc[0] is None, rc[0] or ""))
    levels = Counter(
        e["data"].get("level") if isinstance(e["data"].get("level"), int) else None
        for e in period
        if e["action"] == model.ESCALATION
    )
    due = [
        s
        for s in steps
        if s["due_at"] is not None
        and q.start <= s["due_at"] < min(q.end, now)
        and ours(s["item_id"])
    ]
    breached = [s for s in due if s["decided_at"] is None or s["decided_at"] > s["due_at"]]

    def activated(step_id: Any, at: datetime, by: str) -> datetime:
        # the latest activation before the decision in the trail's order: one at the same
        # moment after it (the requester resubmitting in the same instant) is not what the
        # decision answered
        own = [
            e["seq"]
            for e in events
            if e["step_id"] == step_id
            and e["actor_id"] == by
            and e["occurred_at"] == at
            and e["action"] not in model.ACTIVATIONS
        ]
        before = min(own) if own else math.inf
        return max(
            e["occurred_at"]
            for e in events
            if e["step_id"] == step_id
            and e["action"] in model.ACTIVATIONS
            and e["occurred_at"] <= at
            and e["seq"] < before
        )

    responses: dict[str, list[float]] = {}
    for d in decisions:
        if within(d["created_at"]) and d["actor_id"] != SYSTEM_USER and ours(d["item_id"]):
            since = activated(d["step_id"], d["created_at"], d["actor_id"])
            wait = (d["created_at"] - since).total_seconds()
            responses.setdefault(d["actor_id"], []).append(wait)
    open_steps = Counter(
        x["principal"][2:]
        for x in inbox
        if x["principal"].startswith("u:") and q.template_key in (None, keys[x["template_id"]])
    )
    people = set(responses) | set(open_steps)
    load = sorted(
        (
            (
                p,
                open_steps.get(p, 0),
                len(responses.get(p, [])),
                percentile(responses.get(p, []), 0.5),
            )
            for p in people
        ),
        key=lambda r: (-r[2], -r[1], r[0]),
    )
    cutoff = now - q.stuck_after
    stuck = sorted(
        (
            (i["updated_at"], str(i["id"]))
            for i in items.values()
            if i["state"] in model.OPEN_ITEM_STATES and i["updated_at"] < cutoff and ours(i["id"])
        ),
    )
    # submitted in the period: created in it (the submission's time, as time to decision)
    submitted = {i for i, item in items.items() if within(item["created_at"]) and ours(i)}
    their_steps = [s for s in steps if s["item_id"] in submitted]
    human = [d for d in decisions if d["item_id"] in submitted and d["actor_id"] != SYSTEM_USER]
    return {
        "submitted": count[model.SUBMITTED],
        "ttd": (len(waits), percentile(waits, 0.5), percentile(waits, 0.9)),
        "outcomes": (
            count[model.STEP_APPROVE],
            count[model.STEP_REJECT],
            count[model.STEP_CHANGES],
        ),
        "reasons": top[: q.top_reasons],
        "sla": (len(due), len(breached)),
        "levels": sorted(levels.items(), key=lambda lc: (lc[0] is None, lc[0] or 0)),
        "reviewers": load[: q.reviewers],
        "stuck": (len(stuck), [i for _, i in stuck[: q.stuck_items]]),
        "fatigue": (
            len(submitted),
            len(their_steps),
            len({d["step_id"] for d in human}),
            len(human),
        ),
    }


def figures(a: model.ApprovalAnalytics) -> dict[str, Any]:
    return {
        "submitted": a.submitted,
        "ttd": (
            a.time_to_decision.count,
            a.time_to_decision.p50_seconds,
            a.time_to_decision.p90_seconds,
        ),
        "outcomes": (a.outcomes.approvals, a.outcomes.rejections, a.outcomes.change_requests),
        "reasons": [(r.reason, r.count) for r in a.top_rejection_reasons],
        "sla": (a.sla.due, a.sla.breached),
        "levels": [(e.level, e.count) for e in a.escalations],
        "reviewers": [
            (r.user_id, r.open_steps, r.decisions, r.median_response_seconds) for r in a.reviewers
        ],
        "stuck": (a.stuck_count, [s.item_id for s in a.stuck]),
        "fatigue": (
            a.fatigue.items,
            a.fatigue.steps,
            a.fatigue.decision_steps,
            a.fatigue.human_decisions,
        ),
    }


def close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, abs_tol=1e-6)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# fifteen histories of two tenants through the real services: minutes on a loaded machine
@pytest.mark.timeout(900)
@hypothesis_settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    moves=st.lists(move, min_size=4, max_size=30),
    start=st.one_of(st.integers(-600, 2400), st.sampled_from([-480, 960, 2400])),
    length=st.one_of(st.integers(30, 4 * 24 * 60), st.sampled_from([1440, 2880])),
    template=st.sampled_from([None, "flow", "other"]),
    stuck_minutes=st.integers(1, 600),
    top=st.integers(0, 3),
    reviewers=st.integers(0, 3),
)
@example(  # ann asks for changes a minute in; the requester resubmits in the same instant
    moves=[
        (0, 0, ("submit", "flow")),
        (1, 0, ("submit", "flow")),
        (1, 1, ("vote", 0, "ann", "request_changes", "too risky")),
        (1, 0, ("resubmit", 0)),
    ],
    start=0,
    length=30,
    template=None,
    stuck_minutes=1,
    top=0,
    reviewers=1,
)
async def test_the_sql_agrees_with_the_definitions(
    settings: Settings,
    moves: list[tuple[int, int, tuple[Any, ...]]],
    start: int,
    length: int,
    template: str | None,
    stuck_minutes: int,
    top: int,
    reviewers: int,
) -> None:
    # two tenants with the same templates, people and times: neither's figures may hold the
    # other's events (each answer is compared with its own tenant's rows only)
    histories = [History(f"p{uuid.uuid4().hex[:12]}", settings, ManualClock(T0)) for _ in "ab"]
    for h in histories:
        await h.templates()
    await play(histories, moves)
    question = model.AnalyticsQuestion(
        start=T0 + timedelta(minutes=start),
        end=T0 + timedelta(minutes=start + length),
        template_key=template,
        stuck_after=timedelta(minutes=stuck_minutes),
        top_reasons=top,
        reviewers=reviewers,
        stuck_items=2,
    )
    for h in histories:
        got = await analytics.approval_analytics(actor(h.tenant, "boss", "admin"), h.ctx, question)
        want = await expected(h.tenant, question, h.clock.now())
        mine = figures(got)
        assert {k: v for k, v in mine.items() if not close(v, want[k])} == {}, (mine, want)
        assert replace(question) == got.question
        await assert_maintained(h.tenant)

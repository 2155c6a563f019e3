"""analytics: `approvalAnalytics` over 1,000,000 audit events, beside a COUNT(*) of the period.

One tenant holds 100,000 items of the demo `change-approval` template submitted over 90 days,
each with its step and ten audit events (1,000,000 events): submission, activation, a claim, a
comment, a reminder, an escalation (a quarter of them, levels 1-3) or a reassignment, a vote,
the step's outcome (70% approved, 20% rejected with one of five reasons, 10% sent back for
changes) and the item's; every 20th item is still in review (claims and comments instead of
outcomes), so stuck items, open steps and SLA breaches exist. Decisions are spread over 200
reviewers.

The signoff side is the whole question (`services/analytics.py::approval_analytics`: its
nine statements in one snapshot, as the `signoff_app` role under row-level security) for the
last 30 days, once for every template and once for `change-approval`, called in a loop by one
client. The baseline, in the same rounds, is `SELECT count(*)` of the same tenant's events in
the same period through plain asyncpg as the tables' owner: the cost of merely touching the
period's events (no index serves it, so it scans the table).

Loading goes through SQL, not the service layer: one prototype item is submitted through the
service layer, then `generate_series` writes the items, steps, decisions and events in four
statements (the events with stand-in hashes: the chain is not what is measured; the tables'
triggers keep `item_decision`, the daily counts, the items' tallies and the copies of
decisions and deadlines as they do for every change; each decision carries its step's
activation time, the submission's, as the engine stores it). The plans of the nine
statements (`EXPLAIN`) are recorded with the indexes they use.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from signoff.bench import BenchEnv, Figure, Scenario, ScenarioResult, Target, alternate
from signoff.bench.model import percentile
from signoff.db import sql
from signoff.domain.actors import Actor, Principal
from signoff.domain.analytics import AnalyticsQuestion
from signoff.services.analytics import approval_analytics
from signoff.services.context import ServiceContext
from signoff.services.items import SubmitItemInput, submit_item
from signoff.services.templates import load_templates

log = logging.getLogger("signoff.bench")

DEMO_TEMPLATES = Path(__file__).resolve().parents[2] / "demo"
TENANT = "analytics-bench"
EVENTS_PER_ITEM = 10
DAYS = 90
PERIOD_DAYS = 30
REVIEWERS = 200
P50_BOUND_MS = 500.0
INDEXES = (
    "audit_event_analytics",
    "audit_event_activation",
    "item_decision_period",
    "decision_tenant_time",
    "step_tenant_due",
    "workflow_item_open_updated",
    "analytics_day_key",
    "item_tally_period",
    "decision_response_period",
    "step_deadline_period",
)

# Items are numbered 1..N, submitted N..1 steps of `spacing` seconds before the prototype's
# time; ids derive from the number so steps, decisions and events can name their item.
# `outcome`: 0 in review (every 20th), else approve (70%), reject (20%), request changes.
OUTCOME = """CASE WHEN n % 20 = 0 THEN 'open' WHEN n % 10 < 7 THEN 'approve'
    WHEN n % 10 < 9 THEN 'reject' ELSE 'request_changes' END"""
LOAD_ITEMS = f"""
INSERT INTO workflow_item (id, tenant_id, environment, template_id, kind, title, state,
    priority, risk, requester_id, payload, plan, external_ref, revision, version, due_at,
    created_at, updated_at)
SELECT md5('item-' || n)::uuid, p.tenant_id, p.environment, p.template_id, p.kind,
    'Change ' || n,
    CASE {OUTCOME} WHEN 'open' THEN 'pending' WHEN 'approve' THEN 'approved'
        WHEN 'reject' THEN 'rejected' ELSE 'changes_requested' END,
    n % 10, p.risk, 'requester-' || n % 500, p.payload, NULL, NULL, 1, 1, NULL,
    p.created_at - ($2::int - n) * $3::float8 * interval '1 second',
    p.created_at - ($2::int - n) * $3::float8 * interval '1 second'
        + CASE WHEN n % 20 = 0 THEN interval '2 hours' ELSE (n % 12 + 1) * interval '1 hour' END
FROM workflow_item p, generate_series(1, $2::int) AS n
WHERE p.id = $1
"""
LOAD_STEPS = f"""
INSERT INTO step (id, tenant_id, item_id, key, name, kind, position, state, assignees, quorum,
    risk, sensitive, action, params, original_params, claimed_by, decision_value, result, error,
    attempts, escalation_level, escalation_plan, activated_at, due_at, decided_at, version,
    created_at, updated_at, seats, needed, declared_risk, waived, hold)
SELECT md5('step-' || n)::uuid, p.tenant_id, i.id, p.key, p.name, p.kind, p.position,
    CASE {OUTCOME} WHEN 'open' THEN 'active' WHEN 'approve' THEN 'approved'
        WHEN 'reject' THEN 'rejected' ELSE 'changes_requested' END,
    jsonb_build_object('users', jsonb_build_array('user-' || n % $3::int),
                       'roles', jsonb_build_array('change-approver')),
    p.quorum, p.risk, p.sensitive, p.action, p.params, p.original_params, NULL, NULL, NULL,
    NULL, 0, 0, p.escalation_plan, i.created_at, i.created_at + interval '8 hours',
    CASE WHEN n % 20 = 0 THEN NULL ELSE i.updated_at END,
    1, i.created_at, i.updated_at, p.seats, p.needed, p.declared_risk, p.waived, p.hold
FROM step p, generate_series(1, $2::int) AS n
JOIN workflow_item i ON i.id = md5('item-' || n)::uuid
WHERE p.item_id = $1
"""
LOAD_DECISIONS = f"""
INSERT INTO decision (id, tenant_id, item_id, step_id, revision, actor_id, acting_for, outcome,
    reason, rule, created_at, seat, step_activated_at)
SELECT md5('decision-' || n)::uuid, i.tenant_id, i.id, md5('step-' || n)::uuid, 1,
    'user-' || n % $2::int, NULL, {OUTCOME}, NULL, NULL, i.updated_at, 0, i.created_at
FROM generate_series(1, $1::int) AS n
JOIN workflow_item i ON i.id = md5('item-' || n)::uuid
WHERE n % 20 <> 0
"""
# k = 1..10: the ten events of item n, at its submission time plus a few minutes to hours.
LOAD_EVENTS = f"""
INSERT INTO audit_event (tenant_id, seq, item_id, step_id, action, actor_id, reason, data,
    occurred_at, prev_hash, hash, content_digest)
SELECT $1, $3::bigint + (n - 1) * 10 + k, i.id,
    CASE WHEN k IN (1, 10) THEN NULL ELSE md5('step-' || n)::uuid END,
    CASE k
        WHEN 1 THEN 'item.submitted'
        WHEN 2 THEN 'step.activate'
        WHEN 3 THEN 'step.claim'
        WHEN 4 THEN 'comment.created'
        WHEN 5 THEN 'timer.reminder'
        WHEN 6 THEN CASE WHEN n % 4 = 0 THEN 'step.escalate' ELSE 'step.reassign' END
        WHEN 7 THEN 'step.vote'
        WHEN 8 THEN CASE o.outcome WHEN 'open' THEN 'step.claim'
                        ELSE 'step.' || o.outcome END
        ELSE CASE WHEN o.outcome = 'open' THEN 'comment.created'
                  WHEN k = 9 THEN 'item.' || o.outcome ELSE 'notification.sent' END
    END,
    CASE WHEN k IN (7, 8) THEN 'user-' || n % $4::int ELSE 'system' END,
    CASE WHEN k = 8 AND o.outcome = 'reject'
         THEN (ARRAY['too risky', 'no rollback plan', 'wrong window', 'missing ticket',
                     'needs CAB'])[1 + n % 5] END,
    CASE WHEN k = 6 AND n % 4 = 0 THEN jsonb_build_object('level', 1 + n % 3)
         ELSE jsonb_build_object('step', 'review') END,
    i.created_at + CASE WHEN k <= 2 THEN interval '0'
                        WHEN k < 8 THEN (k - 2) * interval '10 minutes'
                        ELSE i.updated_at - i.created_at END,
    'bench', 'bench', md5('e' || n || '-' || k) || md5('d' || n || '-' || k)
FROM generate_series(1, $2::int) AS n
CROSS JOIN generate_series(1, 10) AS k
JOIN workflow_item i ON i.id = md5('item-' || n)::uuid
CROSS JOIN LATERAL (SELECT {OUTCOME} AS outcome) o
"""


async def load(env: BenchEnv, items: int) -> datetime:
    """The tenant's templates, one prototype item through the service layer, then `items`
    items of 90 days with their steps, decisions and ten events each. Returns the time of the
    newest item (the end of the history)."""
    ctx = await env.services()
    admin = Actor(Principal("admin", TENANT, roles=frozenset(env.settings.admin_roles)))
    await load_templates(admin, ctx, DEMO_TEMPLATES)
    prototype = await submit_item(
        Actor(Principal("requester-0", TENANT)),
        ctx,
        SubmitItemInput(
            template_key="change-approval",
            title="Prototype",
            payload={"title": "Prototype", "system": "bench", "rollback_plan": "undo"},
        ),
    )
    conn = await env.connect()
    head = int(await conn.fetchval("SELECT max(seq) FROM audit_event WHERE tenant_id = $1", TENANT))
    spacing = DAYS * 86400 / items
    started = time.perf_counter()
    # statistics before and after each bulk statement: its triggers look rows up by item, and
    # plans made without column statistics can scan the tenant's rows per item
    await conn.execute("ANALYZE workflow_item, step, decision")
    await conn.execute(LOAD_ITEMS, prototype.id, items, spacing)
    await conn.execute("ANALYZE workflow_item")
    await conn.execute(LOAD_STEPS, prototype.id, items, REVIEWERS)
    await conn.execute("ANALYZE step")
    await conn.execute(LOAD_DECISIONS, items, REVIEWERS)
    await conn.execute("ANALYZE decision")
    await conn.execute(LOAD_EVENTS, TENANT, items, head, REVIEWERS)
    log.info("analytics: loaded in %.0f s", time.perf_counter() - started)
    await conn.execute(
        "VACUUM ANALYZE workflow_item, step, decision, audit_event, inbox_entry, item_decision, "
        "analytics_day, item_tally, decision_response, step_deadline"
    )
    return prototype.item.created_at


def question(end: datetime, template: str | None) -> AnalyticsQuestion:
    """The last 30 days of the history."""
    return AnalyticsQuestion(
        start=end - timedelta(days=PERIOD_DAYS), end=end, template_key=template, reviewers=20
    )


async def statements_of(ctx: ServiceContext, admin: Actor, q: AnalyticsQuestion) -> list[Any]:
    """The statements one question sends, with their arguments (recorded, not changed)."""
    sent: list[tuple[str, tuple[Any, ...]]] = []
    original = sql.fetch

    async def recording(statement: str, *args: Any) -> list[asyncpg.Record]:
        sent.append((statement, args))
        return await original(statement, *args)

    sql.fetch = recording  # type: ignore[assignment]
    try:
        await approval_analytics(admin, ctx, q)
    finally:
        sql.fetch = original  # type: ignore[assignment]
    # the analytics' own statements (not the snapshot's head, the template lookup or the
    # permission check's read of the tenant's grants)
    skipped = ("max(seq)", "FROM template WHERE", "FROM permission_grant")
    return [s for s in sent if not any(part in s[0] for part in skipped)]


async def plans(env: BenchEnv, statements: list[Any]) -> list[dict[str, Any]]:
    """EXPLAIN (ANALYZE) of each statement as the application's role sees it."""
    conn = await asyncpg.connect(env.app_database_url)
    out = []
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await conn.execute("SELECT set_config('signoff.tenant', $1, true)", TENANT)
            for statement, args in statements:
                text = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, *args)
                plan = json.loads(text)[0]
                used = sorted({i for i in INDEXES if i in json.dumps(plan)})
                head = " ".join(statement.split())[:60]
                out.append({"statement": head, "ms": plan["Execution Time"], "indexes": used})
    finally:
        await conn.close()
    return out


def timed(
    call: Callable[[], Awaitable[Any]], seconds: float
) -> Callable[[], Awaitable[dict[str, float]]]:
    async def measure() -> dict[str, float]:
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or len(latencies) < 3:
            sent = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - sent)
        return {
            "p50_ms": percentile(latencies, 50) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000,
            "calls": float(len(latencies)),
        }

    return measure


async def run(env: BenchEnv) -> ScenarioResult:
    result = SCENARIO.result()
    items = env.size(100_000, 10_000)
    seconds = env.size(15.0, 3.0)
    started = time.perf_counter()
    end = await load(env, items)
    loaded = time.perf_counter() - started
    ctx = await env.services()
    admin = Actor(Principal("analyst", TENANT, roles=frozenset(env.settings.auditor_roles)))
    conn = await env.connect()
    events = int(
        await conn.fetchval("SELECT count(*) FROM audit_event WHERE tenant_id = $1", TENANT)
    )
    for template in (None, "change-approval"):
        q = question(end, template)
        label = "every template" if template is None else f"template {template}"

        async def signoff(q: AnalyticsQuestion = q) -> None:
            await approval_analytics(admin, ctx, q)

        async def count(q: AnalyticsQuestion = q) -> None:
            await conn.fetchval(
                "SELECT count(*) FROM audit_event WHERE tenant_id = $1 AND occurred_at >= $2 "
                "AND occurred_at < $3",
                TENANT,
                q.start,
                q.end,
            )

        runs = await alternate(
            env.repeats, signoff=timed(signoff, seconds), count=timed(count, seconds)
        )
        baseline = Figure(
            f"COUNT(*) of the period's events p50, {label}", "ms", "lower",
            runs.series("count", "p50_ms"),
        )  # fmt: skip
        result.add(
            Figure(
                f"approvalAnalytics p50, {label}",
                "ms",
                "lower",
                runs.series("signoff", "p50_ms"),
                baseline=baseline,
                target=Target.at_most(P50_BOUND_MS),
                if_missed="the nine statements together take longer than the bound: see the "
                "plans below for the statement that does not stay within its index range.",
            )
        )
        result.add(
            Figure(
                f"approvalAnalytics p50 over COUNT(*) p50, {label}",
                "ms",
                "lower",
                runs.series("signoff", "p50_ms"),
                baseline=baseline,
                target=Target.ratio_at_most(1.0),
                if_missed="the question runs nine statements, each an index range of its own "
                "(the rollup's days and the trail's two partial days, the tallies, the copies of "
                "decisions and deadlines, the open items and inbox entries), where the count "
                "reads the period's events once in one sequential pass.",
            )
        )
        result.add(
            Figure(
                f"approvalAnalytics p99, {label}",
                "ms",
                "lower",
                runs.series("signoff", "p99_ms"),
                baseline=Figure(
                    f"COUNT(*) p99, {label}", "ms", "lower", runs.series("count", "p99_ms")
                ),
            )
        )
        for plan in await plans(env, await statements_of(ctx, admin, q)):
            result.note(
                f"{label}: `{plan['statement']}…` ran in {plan['ms']:.1f} ms (EXPLAIN ANALYZE), "
                f"indexes: {', '.join(plan['indexes']) or 'none of the analytics indexes'}."
            )
        result.note(f"{label}: order of runs {' '.join(runs.order())}.")
    result.parameters = {
        "audit events": f"{events:,}",
        "items": f"{items:,}",
        "history (days)": DAYS,
        "period asked (days)": PERIOD_DAYS,
        "reviewers": REVIEWERS,
        "seconds per run": seconds,
        "loaded in (s)": round(loaded),
    }
    result.note(
        "One client calls the service in-process (no HTTP, no GraphQL) as the application's "
        "role, under row-level security; the baseline runs as the tables' owner. Both share "
        "the 2-core machine with the database and other work."
    )
    return result


SCENARIO = Scenario(
    name="analytics",
    title="- approvalAnalytics over 1,000,000 audit events beside a COUNT(*) of the period",
    run=run,
    description=__doc__ or "",
)

"""decisions: approveStep through the GraphQL API at 32 clients, beside pgbench.

Each client approves steps nobody else touches (its own items of the demo `change-approval`
template, copied in SQL beforehand from one submitted through the service layer: see
`Stock`), so what is measured is the cost of a decision, not a fight over one item. Four
configurations: one tenant or spread over eight, one or two API processes (the clients spread
round-robin over the processes, as a load balancer would), with two workers running throughout
as in production. Beside them, in the same rounds, pgbench runs the minimal decision
transaction (`PGBENCH_SCRIPT`) on the same database with the same number of clients.
"""

from __future__ import annotations

import hashlib
import logging
import math
import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from signoff.api import ids
from signoff.bench import BenchEnv, Figure, Runs, Scenario, ScenarioResult, Target, alternate
from signoff.bench.env import Process
from signoff.bench.load import LoadResult, Request, closed_loop, graphql
from signoff.bench.model import Better
from signoff.domain.actors import Actor, Principal
from signoff.domain.states import StepState
from signoff.services.context import ServiceContext
from signoff.services.items import SubmitItemInput, submit_item
from signoff.services.templates import load_templates

log = logging.getLogger("signoff.bench")

DEMO_TEMPLATES = Path(__file__).resolve().parents[2] / "demo"
TEMPLATE = "change-approval"
APPROVER_ROLE = "change-approver"
CLIENTS = 32
# pgbench gets as many connections as one API process's pool (SIGNOFF_DB_POOL_MAX): the most
# the database sees from one process, and a number a shared server's max_connections allows
PGBENCH_CLIENTS = 10
MIN_STEPS_PER_CLIENT = 40

APPROVE = """mutation Approve($input: DecideStepInput!) {
  approveStep(input: $input) { item { id state } errors { code message } }
}"""

# The minimal decision transaction on the real tables: lock the item, insert the decision,
# update the step, insert the audit event and notify — the last two through `audit_append`,
# which numbers, chains and announces the event inside the transaction, so one tenant's
# pgbench transactions take turns at its chain head through their commits (pgbench sends END
# after it, one local round trip inside the lock). signoff numbered its events that way until
# migration 2026-12-10T21; it now stages them with its COMMIT and a sequencer numbers them
# after it. The baseline is kept as it was, so that ratios compare across that change. Targets cycle
# through a table of existing steps; the actor id is unique per transaction so the
# one-vote-per-person index never refuses. The event's content digest is a digest of its
# actor, not of its canonical content: these events live in pgbench's own tenants.
PGBENCH_SCRIPT = """\
SELECT s.k, t.tenant_id, t.item_id, t.step_id
  FROM (SELECT nextval('bench_decision_seq') AS k) s
  JOIN bench_decision_target t ON t.n = :base + s.k % :targets
\\gset
BEGIN;
SELECT id FROM workflow_item WHERE id = :item_id FOR UPDATE;
INSERT INTO decision (tenant_id, item_id, step_id, revision, actor_id, outcome, created_at)
  VALUES (:tenant_id, :item_id, :step_id, 1, 'pgbench-' || :k, 'approve', now());
UPDATE step SET state = 'approved', decided_at = now(), version = version + 1,
  updated_at = now() WHERE id = :step_id;
SELECT first_seq FROM audit_append(:tenant_id, 'signoff_events',
  ARRAY[:item_id::uuid], ARRAY[:step_id::uuid], ARRAY['step.approved'],
  ARRAY['pgbench-' || :k], '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{NULL}',
  ARRAY['{"outcome": "approve"}'::jsonb], ARRAY[now()],
  ARRAY[encode(sha256(convert_to('pgbench-' || :k, 'UTF8')), 'hex')]);
END;
"""

PGBENCH_SETUP = """
CREATE TABLE IF NOT EXISTS bench_decision_target (
    n integer PRIMARY KEY, tenant_id text NOT NULL, item_id uuid NOT NULL, step_id uuid NOT NULL
);
CREATE SEQUENCE IF NOT EXISTS bench_decision_seq;
-- a --reuse run finds the targets an earlier run listed (their steps are decided): start over
TRUNCATE bench_decision_target;
"""


@dataclass(frozen=True)
class Layout:
    """One tenant layout: the tenants of the API side and of the pgbench side."""

    label: str
    api_tenants: list[str]
    pgbench_tenants: list[str]


def layouts() -> list[Layout]:
    return [
        Layout("1 tenant", ["dec-one"], ["pgb-one"]),
        Layout(
            "8 tenants",
            [f"dec-eight-{i}" for i in range(8)],
            [f"pgb-eight-{i}" for i in range(8)],
        ),
    ]


def client_tenant(layout: Layout, client: int) -> str:
    return layout.api_tenants[client % len(layout.api_tenants)]


class Stock:
    """Open change-approval items by the thousand: one prototype per tenant goes through the
    service layer (so it is exactly what a submission writes), then SQL copies it with every
    row that names it (its steps, its timers), each copy under fresh ids. The inbox entries
    and analytics tallies of the copies are written by their triggers, as for a real write;
    the prototype's audit events are not copied (the copies' first events are the approvals
    measured)."""

    # rows maintained by the database itself, or the trail, which a copy must not duplicate
    SKIPPED = ("audit_event", "audit_pending", "inbox_entry", "item_tally")

    def __init__(self, ctx: ServiceContext, conn: Any) -> None:
        self.ctx = ctx
        self.conn = conn
        self._prototypes: dict[str, tuple[UUID, UUID]] = {}
        self._copies: dict[str, str] | None = None

    async def open(self, tenant: str, count: int) -> list[tuple[str, str]]:
        """`count` new items in `tenant`; (item id, active step id) of each."""
        item, step = await self._prototype(tenant)
        copies = [uuid4() for _ in range(count)]
        async with self.conn.transaction():
            for statement in (await self._statements()).values():
                await self.conn.execute(statement, item, copies)
        # Statistics for what the copies added. Without them (a new database, no autovacuum)
        # the plans this session's triggers cached while the tables were nearly empty stayed
        # (nothing invalidated them): the inbox trigger, run for every copied step, found its
        # item by a scan of the whole item table, and loading 30,000 items read billions of
        # rows. An ANALYZE invalidates those plans; the next copy plans with the real sizes.
        await self.conn.execute("ANALYZE workflow_item, step, timer, inbox_entry, item_tally")
        return [(str(c), str(copied_id(c, step))) for c in copies]

    async def _prototype(self, tenant: str) -> tuple[UUID, UUID]:
        if tenant not in self._prototypes:
            view = await submit_item(
                Actor(Principal("requester-0", tenant)),
                self.ctx,
                SubmitItemInput(
                    template_key=TEMPLATE,
                    title="Change",
                    payload={"title": "Change", "system": "bench", "rollback_plan": "undo"},
                ),
            )
            active = [s for s in view.steps if s.state == StepState.ACTIVE]
            if len(active) != 1:
                raise RuntimeError(f"expected one active step, got {view.steps}")
            self._prototypes[tenant] = (view.id, active[0].id)
        return self._prototypes[tenant]

    async def _statements(self) -> dict[str, str]:
        """One INSERT ... SELECT per table that has rows of an item, items first."""
        if self._copies is None:
            rows = await self.conn.fetch(
                """SELECT c.table_name, c.column_name, c.data_type, c.column_default
                FROM information_schema.columns c
                JOIN information_schema.tables t
                  ON t.table_name = c.table_name AND t.table_schema = c.table_schema
                WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
                  AND c.is_generated = 'NEVER'
                  AND c.table_name IN (SELECT table_name FROM information_schema.columns
                                       WHERE table_schema = current_schema()
                                         AND column_name = 'item_id')
                ORDER BY c.table_name, c.ordinal_position"""
            )
            columns: dict[str, list[Any]] = {"workflow_item": []}
            for row in rows:
                if row["table_name"] not in self.SKIPPED:
                    columns.setdefault(row["table_name"], []).append(row)
            columns["workflow_item"] = list(
                await self.conn.fetch(
                    """SELECT table_name, column_name, data_type, column_default
                    FROM information_schema.columns WHERE table_schema = current_schema()
                      AND table_name = 'workflow_item' AND is_generated = 'NEVER'
                    ORDER BY ordinal_position"""
                )
            )
            self._copies = {
                table: copy_statement(table, cols)
                for table, cols in sorted(
                    columns.items(),
                    key=lambda kv: (kv[0] != "workflow_item", kv[0] != "step", kv[0]),
                )
            }
        return self._copies


def copied_id(copy: UUID, original: UUID) -> UUID:
    """The id a copy gives the row `original` of its prototype (as `copy_statement` does)."""
    return UUID(hashlib.md5(f"{copy}{original}".encode(), usedforsecurity=False).hexdigest())


def copy_statement(table: str, columns: list[Any]) -> str:
    """INSERT the rows of prototype item $1 in `table` once per id in $2 (uuid[]): the item's
    own id becomes the copy's, ids of its rows derive from the copy's and theirs."""
    key = "id" if table == "workflow_item" else "item_id"
    names, values = [], []
    for col in columns:
        name, kind = col["column_name"], col["data_type"]
        if name == "id" and kind != "uuid":
            continue  # a serial: its default numbers the copy
        if (name == "id" and table == "workflow_item") or name == "item_id":
            value = "c.id"
        elif kind == "uuid" and name in ("id", "step_id"):
            value = f"md5(c.id::text || p.{name}::text)::uuid"
        elif name == "token":
            value = "md5(c.id::text || p.token)"
        else:
            value = f"p.{name}"
        names.append(name)
        values.append(value)
    # The prototype's rows are read once (MATERIALIZED): without statistics (a new database,
    # no autovacuum) the planner joined the copies' ids to a scan of the whole table, once per
    # id, and a table without an index on item_id (timer) made the load quadratic.
    return (
        f"WITH p AS MATERIALIZED (SELECT * FROM {table} WHERE {key} = $1) "
        f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(values)} "
        f"FROM p, unnest($2::uuid[]) AS c(id)"
    )


async def assignments(
    stock: Stock, layout: Layout, runs: int, per_client: int
) -> list[list[list[str]]]:
    """For each of `runs` runs, for each client, the global ids of steps only it approves."""
    wanted: dict[str, int] = {}
    for client in range(CLIENTS):
        tenant = client_tenant(layout, client)
        wanted[tenant] = wanted.get(tenant, 0) + runs * per_client
    opened = {
        tenant: [ids.encode("Step", step) for _, step in await stock.open(tenant, count)]
        for tenant, count in wanted.items()
    }
    out: list[list[list[str]]] = []
    for _ in range(runs):
        per_run: list[list[str]] = []
        for client in range(CLIENTS):
            left = opened[client_tenant(layout, client)]
            per_run.append(left[:per_client])
            del left[:per_client]
        out.append(per_run)
    return out


def approved(response: Any) -> str | None:
    """A successful approval: HTTP 200, no errors, and the item approved."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    body = response.json()
    if body.get("errors"):
        return f"errors: {str(body['errors'])[:200]}"
    payload = body["data"]["approveStep"]
    if payload["errors"]:
        return f"refused: {payload['errors'][0]}"
    if str(payload["item"]["state"]).lower() != "approved":
        return f"item is {payload['item']['state']}"
    return None


@dataclass
class ApiSide:
    """What an API measurement needs: where to send, as whom, and its tally."""

    env: BenchEnv
    layout: Layout
    seconds: float
    warmup: float
    processes: list[Process]
    watched: list[Process]
    successes: int = 0
    exhausted_runs: int = 0
    error_samples: list[str] = field(default_factory=list)
    lock_waits: Counter[str] = field(default_factory=Counter)

    def measurement(self, pool: list[list[list[str]]]) -> Callable[[], Awaitable[dict[str, float]]]:
        """A measurement for `alternate` that takes the next run's steps from `pool`."""

        async def measure() -> dict[str, float]:
            return await self.run(pool.pop())

        return measure

    def tokens(self) -> list[str]:
        return [
            self.env.token(client_tenant(self.layout, c), f"approver-{c}", roles=[APPROVER_ROLE])
            for c in range(CLIENTS)
        ]

    async def run(self, steps: list[list[str]]) -> dict[str, float]:
        tokens = self.tokens()
        ran_out: set[int] = set()

        def request(client: int, n: int) -> Request | None:
            if n >= len(steps[client]):
                ran_out.add(client)
                return None
            return graphql(APPROVE, {"input": {"stepId": steps[client][n]}}, tokens[client])

        cpu_before = self._cpu()
        async with self.env.sample_activity() as sampler:
            load: LoadResult = await closed_loop(
                [p.url for p in self.processes],
                clients=CLIENTS,
                seconds=self.seconds,
                warmup=self.warmup,
                request=request,
                check=approved,
            )
        activity = sampler.activity
        self.lock_waits.update(activity.locks)
        cpu = {k: v - cpu_before[k] for k, v in self._cpu().items()}
        self.successes += load.completed + load.warmup_ok
        self.error_samples += load.error_samples[: 3 - len(self.error_samples)]
        if ran_out:
            self.exhausted_runs += 1
        done = max(load.completed + load.warmup_ok + load.errors + load.warmup_errors, 1)
        return {
            **load.figures(),
            "api_cpu_ms": cpu["api"] * 1000 / done,
            "worker_cpu_ms": cpu["workers"] * 1000 / done,
            "client_cpu_ms": cpu["client"] * 1000 / done,
            "busy_connections": activity.mean_busy,
            "running": activity.share("running"),
            "idle_in_transaction": activity.share("idle in transaction"),
            "lock_wait": activity.share("lock"),
        }

    def _cpu(self) -> dict[str, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "api": sum(p.cpu_seconds() for p in self.watched if p.kind == "serve"),
            "workers": sum(p.cpu_seconds() for p in self.watched if p.kind == "worker"),
            "client": usage.ru_utime + usage.ru_stime,
        }


async def pgbench_targets(
    env: BenchEnv, stock: Stock, layout: Layout, base: int, count: int
) -> int:
    """Open `count` items in the layout's pgbench tenants and list their steps as targets."""
    rows = []
    share = math.ceil(count / len(layout.pgbench_tenants))
    for tenant in layout.pgbench_tenants:
        rows += [(tenant, item, step) for item, step in await stock.open(tenant, share)]
    conn = await env.connect()
    await conn.executemany(
        "INSERT INTO bench_decision_target (n, tenant_id, item_id, step_id) "
        "VALUES ($1, $2, $3::uuid, $4::uuid)",
        [(base + i, tenant, item, step) for i, (tenant, item, step) in enumerate(rows)],
    )
    return len(rows)


async def calibrate(
    env: BenchEnv, stock: Stock, api: list[Process], watched: list[Process]
) -> tuple[ApiSide, float]:
    """Approvals/s of the fastest configuration, measured briefly, to size the item pools."""
    layout = layouts()[1]
    [steps] = await assignments(stock, layout, 1, env.size(40, 10))
    # a warm-up first: the processes' first requests fill their caches (templates, tokens)
    side = ApiSide(env, layout, env.size(5.0, 3.0), env.size(2.0, 1.0), api, watched)
    figures = await side.run(steps)
    return side, max(figures["throughput"], 1.0)


async def run(env: BenchEnv) -> ScenarioResult:
    result = SCENARIO.result()
    seconds, warmup = env.size(15.0, 3.0), env.size(2.0, 1.0)
    started = time.perf_counter()
    ctx = await env.services(max_open_items_per_requester=10**9)
    for layout in layouts():
        for tenant in layout.api_tenants + layout.pgbench_tenants:
            admin = Actor(Principal("admin", tenant, roles=frozenset(env.settings.admin_roles)))
            await load_templates(admin, ctx, DEMO_TEMPLATES)
    conn = await env.connect()
    await conn.execute(PGBENCH_SETUP)
    # a --reuse run finds the decisions of earlier runs: the check counts this run's only
    before = await _approver_decisions(conn)
    stock = Stock(ctx, conn)
    api = await env.start_api(2)
    workers = await env.start_workers(2)
    watched = api + workers
    log.info("decisions: set up in %.0f s; calibrating", time.perf_counter() - started)
    calibration, rate = await calibrate(env, stock, api, watched)
    # enough distinct steps for every run at 1.5x the calibrated rate; a client that runs out
    # stops early (counted below), which shortens the run but does not falsify it
    # items cost little to load (SQL copies): the floor keeps a slow calibration (a busy
    # machine) from starving the runs
    per_client = max(MIN_STEPS_PER_CLIENT, math.ceil(rate * 1.5 * (seconds + warmup) / CLIENTS))
    pg_targets = env.size(4000, 800)
    sides: dict[str, ApiSide] = {}
    loaded = []
    for index, layout in enumerate(layouts()):
        base = index * pg_targets
        targets = await pgbench_targets(env, stock, layout, base, pg_targets)
        pools = {n: await assignments(stock, layout, env.repeats, per_client) for n in (1, 2)}
        loaded.append((layout, base, targets, pools))
    # the loader's connections are not needed any more: a shared server may be short of them
    await env.close_services()
    await conn.execute("VACUUM ANALYZE")
    log.info(
        "decisions: %d steps per client per run loaded after %.0f s; measuring",
        per_client,
        time.perf_counter() - started,
    )
    for layout, base, targets, pools in loaded:
        one = sides[f"{layout.label}/1"] = ApiSide(env, layout, seconds, warmup, api[:1], watched)
        two = sides[f"{layout.label}/2"] = ApiSide(env, layout, seconds, warmup, api, watched)

        async def pgbench(base: int = base, targets: int = targets) -> dict[str, float]:
            outcome = await env.pgbench(
                PGBENCH_SCRIPT,
                clients=PGBENCH_CLIENTS,
                seconds=seconds,
                variables={"targets": targets, "base": base},
            )
            return outcome.figures()

        runs = await alternate(
            env.repeats,
            one=one.measurement(pools[1]),
            two=two.measurement(pools[2]),
            pgbench=pgbench,
        )
        add_figures(result, layout, runs)
        result.note(f"{layout.label}: order of runs {' '.join(runs.order())}.")
    await check_decisions(conn, result, [calibration, *sides.values()], before)
    for key, side in sides.items():
        if side.lock_waits:
            common = ", ".join(f"{k} ({n})" for k, n in side.lock_waits.most_common(3))
            result.note(f"{key}: lock waits sampled, by kind: {common}.")
        for sample in side.error_samples:
            result.note(f"{key}: a failed approval: {sample}")
    result.parameters = {
        "clients": CLIENTS,
        "seconds per run": seconds,
        "warm-up": warmup,
        "API processes": "1 and 2",
        "workers": len(workers),
        "steps per client per run": per_client,
        "pgbench targets per layout": pg_targets,
        "set-up and runs (s)": round(time.perf_counter() - started),
    }
    result.note(
        f"Pools were sized from a calibration run of {rate:.0f} approvals/s (8 tenants, 2 "
        "processes); runs in which a client ran out of steps: "
        + ", ".join(f"{k}: {s.exhausted_runs}" for k, s in sides.items())
        + "."
    )
    result.note(
        "The load generator (32 httpx clients) runs in the bench process on the same machine; "
        f"its CPU per approval is listed. pgbench runs {PGBENCH_CLIENTS} clients (one API "
        "process's pool size) on 2 threads with prepared statements, so its latencies carry "
        "less queueing than 32 clients would."
    )
    return result


def add_figures(result: ScenarioResult, layout: Layout, runs: Runs) -> None:
    """The figures of one tenant layout: each API configuration beside pgbench."""
    where = layout.label

    def pgbench(key: str, name: str, unit: str, better: Better) -> Figure:
        return Figure(f"pgbench {name}", unit, better, runs.series("pgbench", key))

    for label, procs in (("one", "1 process"), ("two", "2 processes")):
        rate = runs.series(label, "throughput")
        cpu = Figure("", "ms", "lower", runs.series(label, "api_cpu_ms")).median
        rate_median = Figure("", "1/s", "higher", rate).median
        result.add(
            Figure(
                f"approvals/s, {where}, {procs}",
                "1/s",
                "higher",
                rate,
                baseline=pgbench("throughput", "tps", "1/s", "higher"),
                target=Target.ratio_at_least(0.4),
                if_missed=(
                    f"each approval costs {cpu:.1f} ms of API CPU (median), so one process "
                    f"cannot pass {1000 / max(cpu, 1e-9):.0f} approvals/s even on a free core; "
                    "pgbench's whole transaction costs a fraction of that. An approval sends "
                    "the four round trips its rules need (the numbering of its events rides "
                    "on its COMMIT), and a Redis round trip after commit for its tenant's "
                    "notification planning only when no change of the process has asked for "
                    "the current 0.2 s slot yet. Profiled in-process, the service with its "
                    "round trips takes about 62% of a request's samples (BEGIN, a round trip "
                    "of its own, 10%), Litestar with strawberry's HTTP view about 13%, "
                    "strawberry's extension stages about 10%, parsing, validation and "
                    "argument conversion 9%; socket sends are a large share "
                    '(docs/architecture.md, "Where an approval\'s API CPU goes"). A known '
                    "document already skips the hooks its text decided, the handlers build "
                    "their context without dependency injection and a response leaves in one "
                    'write ("The framework floor under every request": 6.75 -> 6.32 ms of API '
                    "CPU per approval, A/B). On the database's side an approval costs about "
                    "what pgbench's transaction does plus its read: the read finds its item "
                    "through the primary key under row-level security (it scanned the whole "
                    "item table, 14 ms per approval at 30,000 open items), a unit of work runs "
                    "generic plans (the writes were planned at every approval, 0.9 ms); "
                    '"A qualifier that is not leakproof" and "A unit of work plans its '
                    'statements once" in docs/architecture.md. The load generator shares the '
                    "machine (its CPU per approval is in the notes). "
                    "What fixes it: fewer round trips (BEGIN merged "
                    "into the first statement), an HTTP route for /graphql of our own instead "
                    "of strawberry's view, a compiled execution of a known document, and more "
                    "cores than API processes."
                ),
            )
        )
        result.add(
            Figure(
                f"p50, {where}, {procs}",
                "ms",
                "lower",
                runs.series(label, "p50_ms"),
                baseline=pgbench("p50_ms", "p50", "ms", "lower"),
            )
        )
        result.add(
            Figure(
                f"p99, {where}, {procs}",
                "ms",
                "lower",
                runs.series(label, "p99_ms"),
                baseline=pgbench("p99_ms", "p99", "ms", "lower"),
                target=Target.at_most(50),
                if_missed=(
                    f"32 clients in a closed loop at {rate_median:.0f} approvals/s wait "
                    f"{CLIENTS * 1000 / max(rate_median, 1e-9):.0f} ms on average (Little's "
                    "law), so p99 < 50 ms needs well over 640 approvals/s; the latency is "
                    "queueing for CPU (a change's transaction holds no tenant-wide lock: its "
                    "events are numbered after commit by the sequencer, one tenant's commits "
                    "sharing flushes). What fixes it: the throughput fixes above."
                ),
            )
        )
        result.add(
            Figure(
                f"failed approvals, {where}, {procs}",
                "",
                "lower",
                runs.series(label, "errors"),
                target=Target.at_most(0),
                if_missed="approvals were refused or failed; the notes show samples.",
            )
        )
        cpu_line = ", ".join(
            f"{name} {Figure('', 'ms', 'lower', runs.series(label, key)).median:.1f} ms"
            for name, key in (
                ("API", "api_cpu_ms"),
                ("workers", "worker_cpu_ms"),
                ("load generator", "client_cpu_ms"),
            )
        )
        result.note(f"{where}, {procs}: CPU per approval (median of runs): {cpu_line}.")
        busy = {
            key: Figure("", "", "lower", runs.series(label, key)).median
            for key in ("busy_connections", "running", "idle_in_transaction", "lock_wait")
        }
        result.note(
            f"{where}, {procs}: database connections (pg_stat_activity, median of runs): "
            f"{busy['busy_connections']:.1f} busy on average, {busy['running']:.0%} running a "
            f"statement, {busy['idle_in_transaction']:.0%} idle in a transaction (waiting for "
            f"their process), {busy['lock_wait']:.0%} waiting on a lock."
        )
    one = runs.series("one", "throughput")
    cpu_one = Figure("", "ms", "lower", runs.series("one", "api_cpu_ms")).median
    rate_one = Figure("", "1/s", "higher", one).median
    result.add(
        Figure(
            f"approvals/s, {where}, 2 processes over 1",
            "1/s",
            "higher",
            runs.series("two", "throughput"),
            baseline=Figure("1 process", "1/s", "higher", one),
            target=Target.ratio_at_least(1.1),
            if_missed=(
                "a second process adds throughput only when the first is bound by its own core "
                f"while another core is free; one process used {cpu_one * rate_one / 10:.0f}% "
                "of a core, and the same cores also run PostgreSQL, the workers and the load "
                "generator. What fixes it: less CPU per approval, and a machine with more cores "
                "than API processes (or a second machine) for this measurement."
            ),
        )
    )


async def _approver_decisions(conn: Any) -> int:
    query = "SELECT count(*) FROM decision WHERE actor_id LIKE 'approver-%'"
    return int(await conn.fetchval(query))


async def check_decisions(
    conn: Any, result: ScenarioResult, sides: list[ApiSide], before: int
) -> None:
    """Every approval the clients saw succeed is one stored decision, and no step got two.

    `before` is the count of the benchmark's decisions stored before this run (a --reuse run
    keeps earlier runs' decisions); steps are never decided twice across runs either.
    """
    stored = await _approver_decisions(conn) - before
    doubled = await conn.fetchval(
        """SELECT count(*) FROM (SELECT step_id FROM decision WHERE actor_id LIKE 'approver-%'
        GROUP BY step_id HAVING count(*) > 1) d"""
    )
    seen = sum(side.successes for side in sides)
    verdict = "as expected" if stored == seen and doubled == 0 else "**MISMATCH**"
    result.note(
        f"Check: {seen} approvals succeeded for the clients, {stored} decisions were stored by "
        f"this run, {doubled} steps have more than one: {verdict}."
    )


SCENARIO = Scenario(
    name="decisions",
    title="- approveStep at 32 clients beside pgbench",
    run=run,
    description=__doc__ or "",
)

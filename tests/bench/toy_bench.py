"""A toy benchmark scenario for the harness's smoke test, run as a script in a process of its
own (the bench configures the process-wide database engine, which a test session must keep).

    python tests/bench/toy_bench.py ADMIN_URL REDIS_URL OUT_DIR RUN_ID SCENARIO...
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import redis.asyncio as aioredis

from signoff.bench import BenchEnv, Figure, ScenarioResult, Target, alternate, closed_loop
from signoff.bench.env import BenchConfig, Servers
from signoff.bench.load import Request, graphql
from signoff.bench.model import Scenario
from signoff.bench.runner import run_scenarios
from signoff.domain.actors import Actor, Principal
from signoff.services.templates import load_templates
from signoff.testing import RecordingHTTPServer

DEMO = Path(__file__).resolve().parents[2] / "backend" / "signoff" / "demo"


async def toy(env: BenchEnv) -> ScenarioResult:
    result = TOY.result()
    ctx = await env.services()
    admin = Actor(Principal("admin", "toy", roles=frozenset({"admin"})))
    published = await load_templates(admin, ctx, DEMO)
    api = await env.start_api(1)
    workers = await env.start_workers(1)
    private = aioredis.Redis.from_url(await env.private_redis())
    await private.flushall()  # a private server: flushing it touches nobody else
    await private.aclose()
    token = env.token("toy", "bob", roles=["change-approver"])

    async def signoff_side() -> dict[str, float]:
        load = await closed_loop(
            [p.url for p in api],
            clients=2,
            seconds=0.3,
            request=lambda client, n: graphql("{ __typename }", None, token),
        )
        return load.figures()

    async with RecordingHTTPServer() as plain:

        async def baseline() -> dict[str, float]:
            load = await closed_loop(
                [plain.url],
                clients=2,
                seconds=0.3,
                request=lambda client, n: Request("GET", "/"),
                check=lambda r: None if r.status_code == 200 else f"HTTP {r.status_code}",
            )
            return load.figures()

        runs = await alternate(env.repeats, signoff=signoff_side, baseline=baseline)
    pg = await env.pgbench("SELECT 1;\n", clients=2, seconds=1)
    result.parameters = {"templates": len(published), "pgbench_tps": round(pg.tps)}
    result.add(
        Figure(
            "GraphQL requests/s",
            "1/s",
            "higher",
            runs.series("signoff", "throughput"),
            baseline=Figure("plain HTTP", "1/s", "higher", runs.series("baseline", "throughput")),
            # "answered at all": two clients each get at least one answer, so only an API
            # that answers nothing (or needs minutes for two requests) misses it, whatever
            # the machine's load; a per-second target here failed on a busy machine.
            target=Target.at_least(0.01),
            if_missed="the API answered nothing",
        )
    )
    result.add(Figure("GraphQL errors", "", "lower", runs.series("signoff", "errors")))
    result.add(Figure.missing("toy export", "MB", "lower", "nothing to export in a toy"))
    result.note(f"order of runs: {' '.join(runs.order())}")
    pids = [p.pid for p in api + workers]
    (Path(sys.argv[3]) / "pids.json").write_text(json.dumps(pids))
    return result


async def broken(env: BenchEnv) -> ScenarioResult:
    raise RuntimeError("this scenario always fails")


async def hang(env: BenchEnv) -> ScenarioResult:
    """Start what a scenario starts (API, worker, a private Redis), say so, never end: for
    the test that kills a run midway."""
    await env.start_api(1)
    await env.start_workers(1)
    await env.private_redis()
    (Path(sys.argv[3]) / "ready").write_text("started")
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


TOY = Scenario(name="toy", title="- a toy", run=toy)
BROKEN = Scenario(name="broken", title="- always fails", run=broken)
HANG = Scenario(name="hang", title="- starts servers and never ends", run=hang)


def main() -> int:
    admin_url, redis_url, out_dir, run_id, *names = sys.argv[1:]
    config = BenchConfig(
        Servers(admin_url, redis_url),
        quick=True,
        repeats=2,
        run_id=run_id,
        # inside the test's directory: the test finds what the run started by it too
        work_dir=Path(out_dir) / "work",
    )
    outcomes = asyncio.run(
        run_scenarios({"toy": TOY, "broken": BROKEN, "hang": HANG}, names, config, Path(out_dir))
    )
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())

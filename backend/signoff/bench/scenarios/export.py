"""export: audit exports of 1,000,000 events (NDJSON, CSV) beside `COPY … TO STDOUT`.

The events are written through the unit of work (numbered and hash-chained as in
production) into two tenants, one ten times larger than the other, so the report can show
whether the export's memory stays flat as the trail grows. Each side runs in a child process
of its own (``python -m signoff.bench.scenarios.export SIDE DSN TENANT``) that streams into a
byte-counting sink and reports its rows, time and peak resident memory; the sides alternate.

The signoff sides are the real export path (`services/audit_exports.py::export_to_sink`, the
stream the background export job writes to the store), once per format: a server-side cursor
read in batches, each written out before the next is read, hashed into the manifest as it
goes. NDJSON lines and CSV records are both built by PostgreSQL (`json_build_object`; the
CSV record by string functions writing what Python's `csv` module wrote). The baseline is
asyncpg's `COPY (SELECT …) TO STDOUT` of the same rows in CSV: what PostgreSQL alone takes to
hand them over. Each format's rows/s is reported beside COPY's.
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
from signoff.domain.audit_export import ExportFormat
from signoff.services.audit_exports import export_to_sink
from signoff.services.context import ServiceContext
from signoff.services.uow import unit_of_work
from signoff.settings import Settings

BATCH = 2000  # events per transaction while loading
MEMORY_BOUND_MB = 200
Sink = Callable[[bytes], Awaitable[None]]
Exporter = Callable[[Actor, ServiceContext, Sink], Awaitable[int]]


FORMATS = {"ndjson": ExportFormat.NDJSON, "csv": ExportFormat.CSV}
"""The signoff sides: one per export format."""


def signoff_export(fmt: ExportFormat = ExportFormat.NDJSON) -> Exporter | None:
    """The audit export under test: the tenant's whole trail in `fmt` into the sink; the
    number of rows it wrote."""

    async def export(actor: Actor, ctx: ServiceContext, sink: Sink) -> int:
        manifest = await export_to_sink(actor, ctx, sink, fmt=fmt)
        return int(manifest["rows"])

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
    rows = 0
    started = time.perf_counter()
    if side == "copy":
        conn = await asyncpg.connect(dsn)
        try:
            status = await conn.copy_from_query(
                "SELECT * FROM audit_event WHERE tenant_id = $1 ORDER BY seq",
                tenant,
                output=sink,
                format="csv",
            )
            rows = int(status.split()[-1])  # "COPY <rows>"
        finally:
            await conn.close()
    elif side in FORMATS:
        exporter = signoff_export(FORMATS[side])
        if exporter is None:
            raise SystemExit("the audit export is not built yet")
        configure_engine(dsn)
        await start_pool(1, 4)
        try:
            settings = Settings(environment="production", database_url=dsn, jwt_secret="x" * 32)
            auditor = Actor(Principal("auditor", tenant, roles=frozenset(settings.admin_roles)))
            rows = await exporter(auditor, ServiceContext(settings=settings), sink)
        finally:
            await close_pool()
    elif side != "idle":
        raise SystemExit(f"unknown side {side!r}")
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rows": rows,
        "rows_per_s": rows / seconds if rows else 0.0,
        "bytes": sink.bytes,
        "peak_mb": peak_resident_mb(),
    }


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
    built = signoff_export() is not None
    idle = await run_child(env, "idle", "export-small")
    for tenant, count in (("export-small", small), ("export-large", large)):
        sides = {"copy": _measure(env, "copy", tenant)}
        if built:
            sides.update({side: _measure(env, side, tenant) for side in FORMATS})
        runs = await alternate(env.repeats, **sides)
        label = f"{count:,} events"
        copy_rate = Figure(f"COPY, {label}", "rows/s", "higher", runs.series("copy", "rows_per_s"))
        copy_memory = Figure(f"COPY, {label}", "MB", "lower", runs.series("copy", "peak_mb"))
        for side, fmt in FORMATS.items():
            name = fmt.value.upper()
            if not built:
                reason = "the audit export (issue #11) does not exist yet"
                result.add(
                    Figure.missing(
                        f"{name} export rows/s, {label}",
                        "rows/s",
                        "higher",
                        reason,
                        baseline=copy_rate,
                    )
                )
                continue
            rate = Figure(
                f"{name} export rows/s, {label}",
                "rows/s",
                "higher",
                runs.series(side, "rows_per_s"),
                baseline=copy_rate,
            )
            result.add(rate)
            result.add(
                Figure(
                    f"{name} export peak memory, {label}",
                    "MB",
                    "lower",
                    runs.series(side, "peak_mb"),
                    baseline=copy_memory,
                    target=Target.at_most(MEMORY_BOUND_MB),
                    if_missed=(
                        "the export holds rows or output in memory; stream it: a server-side "
                        "cursor (or COPY) read in fixed-size batches, each written out before "
                        "the next is read."
                        + (f" Compare the {small:,}-event figure above." if count == large else "")
                    ),
                )
            )
            wrote = {int(r.value) for r in runs.series(side, "rows")}
            if wrote != {count}:
                raise RuntimeError(f"the {name} export wrote {wrote} rows, not {count:,}")
            result.note(
                f"{label}: the {name} export streamed {rate.median:,.0f} rows/s, "
                f"{rate.ratio or 0:.2f} of COPY's {copy_rate.median:,.0f} (medians)."
            )
    result.parameters = {
        "events": f"{small:,} and {large:,}",
        "loaded in (s)": round(loaded),
        "formats": "NDJSON and CSV (export), CSV (COPY)",
    }
    result.note(
        f"A child Python that only starts and reports peaks at {idle['peak_mb']:.0f} MB: the "
        "floor under both sides' memory figures."
    )
    return result


def _measure(env: BenchEnv, side: str, tenant: str) -> Callable[[], Awaitable[dict[str, float]]]:
    async def measure() -> dict[str, float]:
        return await run_child(env, side, tenant)

    return measure


SCENARIO = Scenario(
    name="export",
    title="- audit export of 1,000,000 events, NDJSON and CSV, beside COPY",
    run=run,
    description=__doc__ or "",
)


def main() -> None:
    """Child entry point: ``python -m signoff.bench.scenarios.export SIDE DSN TENANT``."""
    side, dsn, tenant = sys.argv[1:4]
    print(json.dumps(asyncio.run(_child(side, dsn, tenant))))


if __name__ == "__main__":
    main()

"""Exporting the audit trail: streamed, with a manifest, verifiable without the database."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from signoff.db import audit as audit_repo
from signoff.db import audit_exports as export_repo
from signoff.domain.actors import Actor
from signoff.domain.audit_export import (
    ExportFilter,
    ExportFormat,
    ExportProblem,
    ManifestBuilder,
    csv_header,
    encode_rows,
    read_rows,
    verify_export,
)
from signoff.domain.clock import Clock, SystemClock
from signoff.services.audit import require_auditor
from signoff.services.context import ServiceContext

BATCH = 2_000
"""Events read and written at a time: what an export holds in memory."""

Progress = Callable[[int], Awaitable[None]]


@dataclass
class ExportStream:
    """The bytes of one export, produced as they are read; its manifest once exhausted."""

    tenant_id: str
    filter: ExportFilter
    fmt: ExportFormat
    to_seq: int
    on_progress: Progress | None = None
    builder: ManifestBuilder = field(init=False)

    def __post_init__(self) -> None:
        self.builder = ManifestBuilder(self.tenant_id, self.fmt, self.filter, self.to_seq)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The file, one chunk per batch of events."""
        if self.fmt is ExportFormat.CSV:
            yield self._counted(csv_header())
        async for rows in export_repo.stream_events(
            self.tenant_id, self.filter, self.to_seq, BATCH
        ):
            self.builder.add_rows(rows)
            yield self._counted(encode_rows(self.fmt, rows))
            if self.on_progress is not None:
                await self.on_progress(self.builder.rows)

    def _counted(self, chunk: bytes) -> bytes:
        self.builder.add_bytes(chunk)
        return chunk


async def open_stream(
    tenant_id: str,
    f: ExportFilter,
    fmt: ExportFormat,
    *,
    to_seq: int | None = None,
    on_progress: Progress | None = None,
) -> ExportStream:
    """An export of `tenant_id`'s events up to `to_seq` (default: the head now)."""
    if to_seq is None:
        to_seq, _ = await audit_repo.chain_head(tenant_id)
    return ExportStream(tenant_id, f, fmt, to_seq, on_progress)


async def export_to_sink(
    actor: Actor,
    ctx: ServiceContext,
    sink: Callable[[bytes], Awaitable[None]],
    f: ExportFilter | None = None,
    fmt: ExportFormat = ExportFormat.NDJSON,
) -> dict[str, Any]:
    """Stream the actor's tenant's trail into `sink` (auditors and admins); its manifest."""
    require_auditor(actor, ctx, "exporting the audit trail")
    stream = await open_stream(actor.tenant_id, f or ExportFilter(), fmt)
    async for chunk in stream.chunks():
        await sink(chunk)
    return stream.builder.manifest(ctx.clock.now())


def manifest_path(path: Path) -> Path:
    """Where the manifest of an exported file is kept: beside it."""
    return path.with_name(path.name + ".manifest.json")


async def export_to_file(
    tenant_id: str,
    f: ExportFilter,
    fmt: ExportFormat,
    path: Path,
    clock: Clock | None = None,
) -> dict[str, Any]:
    """Export into `path` and its manifest beside it (operators, from the command line).

    Written to a temporary file renamed into place when complete: a failed export leaves no
    file, never a truncated one.
    """
    stream = await open_stream(tenant_id, f, fmt)
    await anyio.Path(path.parent).mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            async for chunk in stream.chunks():
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        manifest = stream.builder.manifest((clock or SystemClock()).now())
        await anyio.Path(manifest_path(path)).write_text(
            json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        )
        os.replace(temp, path)
    except BaseException:
        await anyio.Path(temp).unlink(missing_ok=True)
        raise
    return manifest


def verify_file(path: Path, manifest: dict[str, Any] | None = None) -> ExportProblem | None:
    """Check an exported file against its manifest (read from beside it unless given), without
    the database: its sha256 and size, then every row (`domain.audit_export.verify_export`)."""
    if manifest is None:
        manifest = json.loads(manifest_path(path).read_text())
    sha, size = hashlib.sha256(), 0
    with path.open("rb") as raw:
        while chunk := raw.read(1 << 20):
            sha.update(chunk)
            size += len(chunk)
    if sha.hexdigest() != manifest["sha256"] or size != manifest["bytes"]:
        return ExportProblem(0, None, "the file's sha256 or size is not the manifest's")
    fmt = ExportFormat(manifest["format"])
    with path.open(newline="" if fmt is ExportFormat.CSV else None, encoding="utf-8") as text:
        try:
            return verify_export(read_rows(fmt, text), manifest)
        except (ValueError, KeyError, TypeError) as exc:  # JSON errors are ValueErrors
            return ExportProblem(0, None, f"not a readable audit export: {exc}")

"""Exported files: streamed from the database, checked later on their own.

What must always hold: an export holds exactly the events its filter selects, in seq order, up
to the head it was made at; its file verifies alone against its manifest (sha256, count, links,
digests, the chain segment's ends), in NDJSON and CSV; any change to the file is named, by
its row when it is in one, even when the row still says the same.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from signoff.db import audit as audit_repo
from signoff.db.engine import ENGINE
from signoff.db.tenants import ensure_tenant
from signoff.domain.audit_export import (
    EventKind,
    ExportFilter,
    ExportFormat,
    read_rows,
    seal_row,
    verify_export,
)
from signoff.services.audit_exports import export_to_file, manifest_path, verify_file

REPO = Path(__file__).resolve().parents[2]
START = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
ACTIONS = ["item.submitted", "step.approve", "comment.created", "step.escalate", "step.override"]


def event(n: int, item: Any) -> dict[str, Any]:
    return {
        "occurred_at": START + timedelta(seconds=n),
        "action": ACTIONS[n % len(ACTIONS)],
        "actor_id": f"user{n % 3}",
        "item_id": item,
        "reason": "within the change window" if n % 4 == 0 else None,
        "data": {"n": n, "title": f"Change {n}"},
    }


async def load(tenant: str, count: int, batch: int = 2_000, items: int = 4) -> list[Any]:
    await ensure_tenant(tenant)
    item_ids = [uuid4() for _ in range(items)]
    for first in range(0, count, batch):
        async with ENGINE.transaction():
            await audit_repo.append_events(
                tenant,
                [event(n, item_ids[n % items]) for n in range(first, min(count, first + batch))],
            )
    return item_ids


@pytest.mark.timeout(900)  # loading 100,000 events took 164-188 s at a load average of 18-22
async def test_a_100k_event_export_streams_and_verifies_alone(database_url, tenant, tmp_path):
    await load(tenant, 100_000, batch=5_000)
    path = tmp_path / "trail.ndjson"
    manifest = await export_to_file(tenant, ExportFilter(), ExportFormat.NDJSON, path)
    assert manifest["rows"] == 100_000
    head_seq, head_hash = await audit_repo.chain_head(tenant)
    chain = manifest["chain"]
    assert (chain["first_seq"], chain["first_prev_hash"]) == (1, "")
    assert (chain["last_seq"], chain["last_hash"]) == (head_seq, head_hash)
    assert chain["contiguous"] and chain["to_seq"] == head_seq
    assert manifest["time_range"] == {
        "first": START.isoformat(),
        "last": (START + timedelta(seconds=99_999)).isoformat(),
    }
    assert json.loads(manifest_path(path).read_text()) == manifest
    assert verify_file(path) is None
    with path.open() as lines:
        assert sum(1 for _ in lines) == 100_000


TRICKY = [
    {"reason": "", "acting_for": None, "data": {"empty": "", "none": None}},
    {"reason": 'quotes " and , commas\nand a newline', "data": {"f": 1.5, "big": 2**70}},
    {"reason": "ünïcödé 🎉", "client_addr": "::1", "user_agent": "", "data": {}},
]


@pytest.mark.parametrize("fmt", list(ExportFormat))
async def test_both_formats_round_trip_awkward_content_and_redactions(
    database_url, tenant, tmp_path, fmt
):
    await ensure_tenant(tenant)
    async with ENGINE.transaction():
        await audit_repo.append_events(
            tenant,
            [{"occurred_at": START, "action": "a", "actor_id": "u", **c} for c in TRICKY],
        )
        await audit_repo.append_events(
            tenant,
            [{"occurred_at": START, "action": "b", "actor_id": "u", "reason": "secret"}],
        )
    async with ENGINE.transaction():
        await audit_repo.redact_event(tenant, 4, at=START, clear=("reason",))
    path = tmp_path / f"trail.{fmt.value}"
    manifest = await export_to_file(tenant, ExportFilter(), fmt, path)
    assert manifest["rows"] == 4 and manifest["format"] == fmt.value
    assert verify_file(path) is None


def rewrite(path: Path, change: Any) -> None:
    """Apply `change` to the file's lines and give the manifest the new sha256 and size, as a
    forger who rewrote both would."""
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(change(lines)))
    manifest = json.loads(manifest_path(path).read_text())
    body = path.read_bytes()
    manifest.update(sha256=hashlib.sha256(body).hexdigest(), bytes=len(body))
    manifest_path(path).write_text(json.dumps(manifest))


def edit_line(k: int, old: str, new: str) -> Any:
    def change(lines: list[str]) -> list[str]:
        assert old in lines[k]
        return [*lines[:k], lines[k].replace(old, new), *lines[k + 1 :]]

    return change


async def test_any_change_to_a_file_is_named(database_url, tenant, tmp_path):
    await load(tenant, 10, batch=10)
    path = tmp_path / "trail.ndjson"
    await export_to_file(tenant, ExportFilter(), ExportFormat.NDJSON, path)
    original = path.read_bytes(), manifest_path(path).read_text()
    manifest = json.loads(original[1])

    def restore() -> None:
        path.write_bytes(original[0])
        manifest_path(path).write_text(original[1])

    # a byte changed, manifest untouched: its row says so before the sha256 does
    path.write_bytes(original[0].replace(b"Change 3", b"Change 4"))
    problem = verify_file(path)
    assert problem is not None and problem.seq == 4 and "content" in problem.detail
    # a change that leaves its row saying the same: its row's own digest says so
    lines = original[0].splitlines(keepends=True)
    same_meaning = [
        (b'"seq" : 4', b'"seq" :\t4'),  # a space
        (b'"title": "Change 3"', b'"title": "\\u0043hange 3"'),  # an escape
        (b'"n": 3,', b'"n": 3.0,'),  # a number's spelling
        (b"06:00:03+00:00", b"06:00:03Z"),  # a time's spelling
        (b'"}\n', b'"} \n'),  # after the object
    ]
    for old, new in same_meaning:
        k = next(i for i, line in enumerate(lines) if old in line)
        changed = [*lines[:k], lines[k].replace(old, new, 1), *lines[k + 1 :]]
        # the rows say the same: read as plain values (no bytes to check), they verify
        said = [dict(r) for r in read_rows(ExportFormat.NDJSON, [x.decode() for x in changed])]
        assert verify_export(said, manifest) is None, old
        path.write_bytes(b"".join(changed))
        problem = verify_file(path)
        assert problem is not None and problem.row == k + 1 and "bytes" in problem.detail, (
            old,
            problem,
        )
    # a blank line between rows, and a last line without its line ending
    path.write_bytes(b"".join([*lines[:3], b"\n", *lines[3:]]))
    problem = verify_file(path)
    assert problem is not None and problem.row == 4 and "blank" in problem.detail
    path.write_bytes(original[0][:-1])
    problem = verify_file(path)
    assert problem is not None and problem.row == len(lines) and "bytes" in problem.detail
    # a forger who seals the changed row again: the file's sha256 says so
    k = 4
    respelt = lines[k].replace(b'"seq" : 5', b'"seq":5')
    unsealed = respelt[: -3 - 64] + respelt[-3:]
    resealed = seal_row(unsealed.decode(), ExportFormat.NDJSON)
    path.write_bytes(b"".join([*lines[:k], resealed, *lines[k + 1 :]]))
    problem = verify_file(path)
    assert problem is not None and problem.row == 0 and "sha256" in problem.detail
    cases = [
        (edit_line(3, '"Change 3"', '"Change 4"'), 4, "content"),
        (edit_line(5, '"actor_id" : "user2"', '"actor_id" : "user0"'), 6, "content"),
        (lambda lines: lines[:4] + lines[5:], 6, "link"),
        (lambda lines: [lines[1], lines[0], *lines[2:]], 2, "not the first event"),
        (lambda lines: [lines[0], lines[2], lines[1], *lines[3:]], 3, "link"),
        (lambda lines: lines[:-1], None, "rows"),
    ]
    for change, seq, word in cases:
        restore()
        rewrite(path, change)
        problem = verify_file(path)
        assert problem is not None and problem.seq == seq and word in str(problem), problem
    restore()
    assert verify_file(path) is None


async def test_filters_select_exactly_their_events(database_url, tenant, tmp_path):
    items = await load(tenant, 40, batch=40)
    everything = await audit_repo.events_after(tenant, 0, 100)
    filters = {
        "kinds": (
            ExportFilter(kinds=(EventKind.APPROVALS, EventKind.OVERRIDES)),
            lambda e: e["action"] in ("step.approve", "step.override"),
        ),
        "comments": (
            ExportFilter(kinds=(EventKind.COMMENTS,)),
            lambda e: e["action"] == "comment.created",
        ),
        "actor": (ExportFilter(actor_id="user1"), lambda e: e["actor_id"] == "user1"),
        "item": (ExportFilter(item_id=items[2]), lambda e: e["item_id"] == items[2]),
        "time": (
            ExportFilter(since=START + timedelta(seconds=5), until=START + timedelta(seconds=9)),
            lambda e: 5 <= e["data"]["n"] < 9,
        ),
    }
    for name, (f, wanted) in filters.items():
        path = tmp_path / f"{name}.csv"
        manifest = await export_to_file(tenant, f, ExportFormat.CSV, path)
        expected = [e["seq"] for e in everything if wanted(e)]
        assert manifest["rows"] == len(expected) > 0, name
        assert not manifest["chain"]["contiguous"]
        assert manifest["filter"] == f.to_dict()
        assert verify_file(path) is None, name
        with path.open(newline="") as text:
            rows = list(read_rows(ExportFormat.CSV, text))
        assert [r["seq"] for r in rows] == expected, name


async def test_the_command_exports_and_verifies_a_file(
    database_url, tenant, tmp_path, signoff_audit
):
    await load(tenant, 25, batch=25)
    path = tmp_path / "out" / "trail.csv"
    done = signoff_audit(
        database_url, "export", "--tenant", tenant, "--out", str(path), "--format", "csv"
    )
    assert done.returncode == 0, done.stderr
    assert "25 rows" in done.stdout and path.exists() and manifest_path(path).exists()
    # no database needed to check it
    checked = signoff_audit("postgresql://nowhere.invalid/none", "verify", "--file", str(path))
    assert checked.returncode == 0, checked.stderr
    assert "ok, 25 rows" in checked.stdout
    path.write_text(path.read_text().replace("Change 7", "Change 8"))
    broken = signoff_audit("postgresql://nowhere.invalid/none", "verify", "--file", str(path))
    assert broken.returncode == 1 and "BROKEN" in broken.stdout


@pytest.mark.parametrize("fmt", list(ExportFormat))
async def test_a_file_made_before_row_digests_still_verifies(database_url, tenant, tmp_path, fmt):
    """A file without `row_sha256` (and a manifest without `row_digests`) verifies by its rows
    and its sha256, as it did; a current file whose row lost its digest is refused."""
    await load(tenant, 6, batch=6)
    path = tmp_path / f"trail.{fmt.value}"
    current = await export_to_file(tenant, ExportFilter(), fmt, path)
    end = "\n" if fmt is ExportFormat.NDJSON else "\r\n"  # no value here holds a line break
    header, *rows = path.read_bytes().decode().split(end)[:-1]
    if fmt is ExportFormat.NDJSON:
        rows, header = [header, *rows], ""

    def strip(row: str) -> str:  # the sealed digest, and in NDJSON its key
        if fmt is ExportFormat.NDJSON:
            return row[: row.rindex(', "row_sha256"')] + "}" + end
        return row[: -(64 + 1)] + end

    if header:
        assert header.endswith(",row_sha256")
        header = header.removesuffix(",row_sha256") + end
    older = (header + "".join(strip(r) for r in rows)).encode()
    path.write_bytes(older)
    manifest = {k: v for k, v in current.items() if k != "row_digests"}
    manifest.update(sha256=hashlib.sha256(older).hexdigest(), bytes=len(older))
    assert verify_file(path, manifest) is None
    # its rows are still checked by what they say
    problem = verify_file(path, {**manifest, "rows": 5})
    assert problem is not None and "rows" in problem.detail
    # with a current manifest, a row without its digest is named
    problem = verify_file(path, {**current, **{k: manifest[k] for k in ("sha256", "bytes")}})
    assert problem is not None and problem.row == 1

"""CSV exports are encoded by PostgreSQL: byte for byte what Python's `csv` module wrote.

What must always hold, for any events (any text in every text column — quotes, commas, CR, LF,
unicode, an empty text beside no value, very long values — any moment, any data), any
redaction in the trail, any reader under a rule hiding a payload field, and a reader who may
or may not see client details: the CSV file the export writes is byte for byte the file the
former encoding gives for the same rows (the decoded columns written by `csv.writer`, redacted
rows through the view, each record with the sha256 of its bytes in its last cell), the
manifest holds that file's sha256, no client detail reaches a reader who may not see them, and
the file verifies alone — through `signoff audit verify --file` too.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signoff.db import audit as audit_repo
from signoff.db import audit_exports as export_repo
from signoff.db.engine import ENGINE
from signoff.db.tenants import ensure_tenant
from signoff.domain.audit import REDACTABLE_FIELDS, canonical
from signoff.domain.audit_export import (
    CLIENT_DETAILS,
    COLUMNS,
    FILE_COLUMNS,
    ExportFilter,
    ExportFormat,
    ExportView,
    read_rows,
)
from signoff.services import redaction as redaction_services
from signoff.services.audit_exports import (
    export_reader,
    export_to_file,
    manifest_path,
    open_stream,
    verify_file,
)
from tests.conftest import actor

AWKWARD = st.sampled_from(['"', ",", "\n", "\r", " ", "a", "é", "🎉", "\t", ";", "'"])
CHARS = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))
SHORT = st.text(AWKWARD | CHARS, max_size=12)
LONG = st.builds(lambda s, n: s * n, st.text(AWKWARD, min_size=1, max_size=4), st.integers(1, 9000))
TEXT = SHORT | LONG
OPTIONAL = st.none() | st.just("") | TEXT
VALUES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
DATA = st.dictionaries(
    SHORT,
    VALUES | st.lists(VALUES, max_size=3),
    max_size=4,
)
PAYLOAD = st.dictionaries(st.sampled_from(["iban", "name", "notes"]), VALUES, max_size=3)
EVENT = st.fixed_dictionaries(
    {
        "occurred_at": st.datetimes(
            min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
        ),
        "action": TEXT,
        "actor_id": TEXT,
        "item_id": st.none() | st.uuids(),
        "step_id": st.none() | st.uuids(),
        **{column: OPTIONAL for column in (*REDACTABLE_FIELDS, "environment")},
        "data": DATA,
    },
    optional={"payload": PAYLOAD},
)
TRAIL_REDACTIONS = st.lists(
    st.tuples(st.integers(0, 9), st.frozensets(st.sampled_from(REDACTABLE_FIELDS), min_size=1)),
    max_size=3,
)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return canonical(value)
    if isinstance(value, UUID):
        return str(value)
    return value


async def former_csv(tenant: str, to_seq: int, view: ExportView) -> bytes:
    """The file as the former encoding wrote it: the decoded columns of each row (a row the view
    redacts through it), then `csv.writer` with its default dialect; each record then gets the
    sha256 of its bytes (written with an empty last cell) in its last cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(FILE_COLUMNS)
    body = [buffer.getvalue().encode()]
    async for rows in export_repo.stream_events(
        tenant,
        ExportFilter(),
        to_seq,
        7,
        payload_copies=view.hides_payload_fields,
        client_details=view.hides_client_details,
    ):
        for row in rows:
            out = {c: _plain(row[c]) for c in COLUMNS}
            if row["redacted"] or row["template_key"] is not None or row["details"]:
                out = view.row({**out, "data": json.loads(out["data"])}, row["template_key"])
            cells = []
            for column in FILE_COLUMNS:
                value = out.get(column)
                if column == "data" and not isinstance(value, str):
                    value = json.dumps(value, ensure_ascii=False)
                cells.append("" if value is None else value)
            buffer.seek(0)
            buffer.truncate()
            writer.writerow(cells)
            record = buffer.getvalue().encode()
            assert record.endswith(b",\r\n")
            digest = hashlib.sha256(record).hexdigest().encode()
            body.append(record[:-2] + digest + b"\r\n")
    return b"".join(body)


async def load(tenant: str, events: list[dict[str, Any]], redactions: Any) -> None:
    await ensure_tenant(tenant)
    async with ENGINE.transaction():
        written = await audit_repo.append_events(
            tenant,
            [
                {
                    **{k: v for k, v in e.items() if k != "payload"},
                    "data": {**e["data"], **({"payload": e["payload"]} if "payload" in e else {})},
                }
                for e in events
            ],
        )
    seqs = [int(e["seq"]) for e in written]
    for index, clear in redactions:
        async with ENGINE.transaction():
            await audit_repo.redact_event(
                tenant, seqs[index % len(seqs)], at=datetime(2026, 12, 8, tzinfo=UTC), clear=clear
            )


@pytest.mark.timeout(900)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    events=st.lists(EVENT, min_size=1, max_size=10),
    redactions=TRAIL_REDACTIONS,
    hide_iban=st.booleans(),
    roles=st.frozensets(st.sampled_from(["auditor", "finance"])),
    hide_details=st.booleans(),
)
async def test_the_database_writes_the_csv_python_wrote(
    database_url, services, tmp_path, events, redactions, hide_iban, roles, hide_details
):
    tenant = f"t{uuid4().hex[:12]}"
    await load(tenant, events, redactions)
    if hide_iban:
        await redaction_services.set_rule(
            actor(tenant, "ada", "admin"),
            services,
            redaction_services.SetRuleInput("iban", ("finance",)),
        )
    reader = export_reader(tenant, roles)
    stream = await open_stream(
        tenant, ExportFilter(), ExportFormat.CSV, reader, hide_client_details=hide_details
    )
    body = b"".join([chunk async for chunk in stream.chunks()])
    assert body == await former_csv(tenant, stream.to_seq, stream.view)
    manifest = stream.builder.manifest(datetime.now(UTC))
    assert manifest["rows"] == len(events) + hide_iban  # setting the rule is an event too
    assert manifest["sha256"] == hashlib.sha256(body).hexdigest()
    hidden = {
        k for k, e in enumerate(events) if "iban" in e.get("payload", {}) and "finance" not in roles
    }
    trail = {index % len(events) for index, _ in redactions}
    stored = (await audit_repo.events_after(tenant, 0, 10_000))[: len(events)]
    details = {  # a client detail left after the trail's redactions
        k for k, e in enumerate(stored) if any(e[c] not in (None, "") for c in CLIENT_DETAILS)
    }
    expected = trail | (hidden if hide_iban else set()) | (details if hide_details else set())
    assert manifest["redaction"]["rows"] == len(expected)
    if hide_details:
        rows = list(read_rows(ExportFormat.CSV, io.StringIO(body.decode(), newline="")))
        assert all(r[c] is None for r in rows for c in CLIENT_DETAILS)

    path = tmp_path / f"trail-{tenant}.csv"  # a file of this example's own
    written = await export_to_file(
        tenant,
        ExportFilter(),
        ExportFormat.CSV,
        path,
        reader_roles=roles,
        hide_client_details=hide_details,
    )
    assert path.read_bytes() == body and written["sha256"] == manifest["sha256"]
    assert verify_file(path) is None
    manifest_path(path).unlink()
    path.unlink()


async def test_the_command_verifies_a_csv_export_of_awkward_values(
    database_url, tenant, tmp_path, signoff_audit
):
    awkward = ['say "no", then\r\nleave', "", None, "ünïcödé 🎉\r", "x" * 100_000 + ",\n"]
    events = [
        {
            "occurred_at": datetime(2026, 12, 8, 1, 2, 3, n * 100_000, tzinfo=UTC),
            "action": 'a,"b"',
            "actor_id": "u\n",
            **dict.fromkeys(REDACTABLE_FIELDS, value),
            "data": {"text": value, "n": n},
        }
        for n, value in enumerate(awkward)
    ]
    await load(tenant, events, [(1, frozenset({"reason"}))])
    path = tmp_path / "trail.csv"
    done = signoff_audit(
        database_url, "export", "--tenant", tenant, "--out", str(path), "--format", "csv"
    )
    assert done.returncode == 0, done.stderr
    checked = signoff_audit("postgresql://nowhere.invalid/none", "verify", "--file", str(path))
    assert checked.returncode == 0, checked.stderr
    assert f"ok, {len(awkward)} rows" in checked.stdout
    path.write_bytes(path.read_bytes().replace(b'say ""no""', b'say ""No""'))
    broken = signoff_audit("postgresql://nowhere.invalid/none", "verify", "--file", str(path))
    assert broken.returncode == 1 and "BROKEN" in broken.stdout

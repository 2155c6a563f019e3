"""Exports honour redaction and still verify on their own.

What must always hold, for any history, any redaction rules, any reader and any lawful
redaction of the trail: the export writes a redaction marker (the value's digest) in place of
every payload field the reader may not see and of all content redacted in the trail, and
nothing else changes; the file verifies alone; and a change of any byte of any row is refused,
named by that row — even when the row still says the same (JSON's spelling of a value, its
spaces): its `row_sha256` names it.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from signoff.db import audit as audit_repo
from signoff.db.engine import ENGINE
from signoff.domain.audit import REDACTABLE_FIELDS, redaction_marker
from signoff.domain.audit_export import (
    FILE_COLUMNS,
    REDACTED_DIGEST,
    ExportFilter,
    ExportFormat,
    read_rows,
    verify_export,
)
from signoff.services import audit_exports as export_services
from signoff.services import redaction as redaction_services
from signoff.services.audit_exports import export_to_file, manifest_path, verify_file
from signoff.services.context import ServiceContext
from signoff.storage.local import LocalStorage
from tests.conftest import actor
from tests.realtime.conftest import submit

NOW = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)
TEMPLATES = ("change-approval", "exception-request")
ROLES = ("auditor", "finance")
TEXT = st.text(  # what PostgreSQL stores: no NUL, no lone surrogate
    st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=8
)
KEYS = st.sampled_from(["iban", "name", "amount", "notes"])
VALUES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
FIELDS = (
    VALUES
    | st.dictionaries(KEYS, VALUES, max_size=3)
    | st.lists(st.dictionaries(KEYS, VALUES, max_size=2), max_size=2)
)
PAYLOAD = st.dictionaries(KEYS, FIELDS, max_size=4)
EVENT = st.fixed_dictionaries(
    {
        "action": st.sampled_from(["item.resubmit", "step.approve", "comment.added"]),
        "reason": st.none() | TEXT,
        "user_agent": st.none() | TEXT,
        "item": st.sampled_from([0, 1, None]),
        "data": st.fixed_dictionaries(
            {"n": st.integers(0, 99)},
            optional={"previous_payload": PAYLOAD, "payload": PAYLOAD},
        ),
    }
)
RULES = st.lists(
    st.tuples(
        st.sampled_from(["", *TEMPLATES, "partner-approval"]),
        st.lists(KEYS, min_size=1, max_size=2).map(tuple),
        st.frozensets(st.sampled_from(ROLES)),
    ),
    max_size=3,
)
TRAIL_REDACTIONS = st.lists(
    st.tuples(
        st.integers(0, 9),
        st.frozensets(st.sampled_from(REDACTABLE_FIELDS)),
        st.frozensets(st.sampled_from(["payload", "previous_payload", "n"])),
    ),
    max_size=3,
)


@pytest.fixture
async def items(tenant, services, demo_templates) -> list[tuple[Any, str]]:
    """An item of each of two templates: (id, template key)."""
    return [((await submit(services, tenant, t, "Change")).id, t) for t in TEMPLATES]


def marked(value: Any, path: tuple[str, ...]) -> Any:
    """A second, naive statement of the rule: the value at `path` replaced by its marker,
    through lists into every element."""
    if isinstance(value, list):
        return [marked(v, path) for v in value]
    if not isinstance(value, dict) or path[0] not in value or set(value) == {"redacted_sha256"}:
        return value
    inner = value[path[0]]
    if len(path) == 1:
        done = inner if isinstance(inner, dict) and set(inner) == {"redacted_sha256"} else None
        return {**value, path[0]: done or redaction_marker(inner)}
    return {**value, path[0]: marked(inner, path[1:])}


def expected_data(data: dict[str, Any], template: str, rules, roles) -> dict[str, Any]:
    out = dict(data)
    for key in ("payload", "previous_payload"):
        if isinstance(out.get(key), dict):
            # outermost first: a field hidden whole is marked by the digest of its value as
            # stored, whatever another rule hides inside it
            for tk, path, visible in sorted(rules, key=lambda rule: rule[1]):
                if tk in ("", template) and not visible & roles:
                    out[key] = marked(out[key], path)
    return out


def row_spans(fmt: ExportFormat, body: bytes) -> list[tuple[int, int]]:
    """(start, end) of each row's bytes in the file, its line ending included."""
    lines = body.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    if fmt is ExportFormat.NDJSON:
        return [(offsets[k], offsets[k + 1]) for k in range(len(lines))]
    reader = csv.reader(io.StringIO(body.decode(), newline=""))
    next(reader)
    spans, start = [], reader.line_num
    for _ in reader:
        spans.append((offsets[start], offsets[reader.line_num]))
        start = reader.line_num
    return spans


def parsed(fmt: ExportFormat, body: bytes) -> list[dict[str, Any]] | None:
    """The rows of a file as what they say (times as moments, however spelt), or None."""
    try:
        text = body.decode()
        rows = list(read_rows(fmt, io.StringIO(text, newline="").readlines()))
        for row in rows:
            for column in ("occurred_at", "redacted_at"):
                if row.get(column):
                    row[column] = datetime.fromisoformat(row[column])
    except (ValueError, csv.Error):
        return None
    return rows


@pytest.mark.timeout(600)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    events=st.lists(EVENT, min_size=1, max_size=8),
    rules=RULES,
    roles=st.frozensets(st.sampled_from(ROLES)),
    trail_redactions=TRAIL_REDACTIONS,
    fmt=st.sampled_from(list(ExportFormat)),
    flip=st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 255)),
)
@example(  # a rule for every template hides a field inside one a template's rule hides whole
    events=[
        {
            "action": "item.resubmit",
            "reason": None,
            "user_agent": None,
            "item": 0,
            "data": {"n": 0, "payload": {"iban": {"iban": "DE89", "name": "x"}}},
        }
    ],
    rules=[("", ("iban", "iban"), frozenset()), ("change-approval", ("iban",), frozenset())],
    roles=frozenset(),
    trail_redactions=[],
    fmt=ExportFormat.NDJSON,
    flip=(0, 0, 1),
)
async def test_any_redacted_export_verifies_and_any_flipped_byte_is_named(
    tenant, services, items, tmp_path, events, rules, roles, trail_redactions, fmt, flip
):
    admin = actor(tenant, "ada", "admin")
    for rule in await redaction_services.list_rules(admin, services):
        await redaction_services.remove_rule(admin, services, rule.dotted, rule.template_key)
    for template_key, path, visible in rules:
        await redaction_services.set_rule(
            admin,
            services,
            redaction_services.SetRuleInput(".".join(path), tuple(visible), template_key),
        )
    rules = [  # the rules in force: a later one for the same field replaces the earlier
        (r.template_key, r.path, r.visible_to)
        for r in await redaction_services.list_rules(admin, services)
    ]
    async with ENGINE.transaction():
        first = await audit_repo.append_events(
            tenant,
            [
                {
                    "occurred_at": NOW,
                    "actor_id": "u",
                    "item_id": items[e["item"]][0] if e["item"] is not None else None,
                    **{k: e[k] for k in ("action", "reason", "user_agent", "data")},
                }
                for e in events
            ],
        )
    mine = [int(e["seq"]) for e in first]
    for index, clear, keys in trail_redactions:
        seq = mine[index % len(mine)]
        [event] = await audit_repo.events_after(tenant, seq - 1, 1)
        data = {
            k: (redaction_marker(v) if k in keys and not _is_marker(v) else v)
            for k, v in event["data"].items()
        }
        async with ENGINE.transaction():
            await audit_repo.redact_event(tenant, seq, at=NOW, clear=tuple(clear), data=data)

    path = tmp_path / f"trail-{uuid4().hex}.{fmt.value}"  # a file of this example's own
    manifest = await export_to_file(tenant, ExportFilter(), fmt, path, reader_roles=roles)
    assert verify_file(path) is None
    assert manifest["redaction"]["reader_roles"] == sorted(roles)

    # What the reader sees: markers exactly where the rules hide a field from them.
    stored = await audit_repo.events_after(tenant, 0, 10_000)
    templates = {str(item): key for item, key in items}
    body = path.read_bytes()
    rows = parsed(fmt, body)
    assert rows is not None and len(rows) == len(stored) == manifest["rows"]
    redacted = 0
    for row, event in zip(rows, stored, strict=True):
        # a payload copy of no known item is hidden as the rules for every template say
        template = templates.get(str(event["item_id"]), "")
        want = expected_data(event["data"], template, rules, roles)
        assert row["data"] == json.loads(json.dumps(want))
        changed = want != event["data"] or event["redacted_at"] is not None
        assert bool(row.get(REDACTED_DIGEST)) == changed
        redacted += changed
    assert manifest["redaction"]["rows"] == redacted

    # Any byte of any row flipped, the manifest kept: refused, and named.
    spans = row_spans(fmt, body)
    k = flip[0] % len(spans)
    start, end = spans[k]
    at = start + flip[1] % (end - start)
    changed_body = body[:at] + bytes([body[at] ^ flip[2]]) + body[at + 1 :]
    path.write_bytes(changed_body)
    problem = verify_file(path)
    assert problem is not None
    assert problem.row == k + 1, (
        problem,
        k + 1,
        body[max(start, at - 30) : at + 30],
        changed_body[max(start, at - 30) : at + 30],
    )
    manifest_path(path).unlink()
    path.unlink()


def _is_marker(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"redacted_sha256"}


async def test_the_job_writes_an_export_as_its_requester_sees_it(
    tenant, settings, clock, items, tmp_path
) -> None:
    """Requested through the service the API calls: the requester's roles are kept with the
    export, and the job that writes the file later honours a rule hiding a field from them."""
    ctx = ServiceContext(settings=settings, clock=clock, storage=LocalStorage(tmp_path / "s"))
    await redaction_services.set_rule(
        actor(tenant, "ada", "admin"),
        ctx,
        redaction_services.SetRuleInput("iban", ("finance",), "change-approval"),
    )
    async with ENGINE.transaction():
        await audit_repo.append_events(
            tenant,
            [
                {
                    "occurred_at": NOW,
                    "action": "item.resubmit",
                    "actor_id": "u",
                    "item_id": items[0][0],
                    "data": {"previous_payload": {"iban": "DE44 SECRET", "name": "n"}},
                }
            ],
        )
    for roles, hidden in ((("auditor",), True), (("auditor", "finance"), False)):
        auditor = actor(tenant, "audrey", *roles)
        export = await export_services.request_export(
            auditor, ctx, ExportFilter(), ExportFormat.CSV
        )
        assert await export_services.run_export(ctx, tenant, export["id"]) == "completed"
        row, reader = await export_services.open_export_file(auditor, ctx, export["id"])
        body = b"".join([chunk async for chunk in reader.chunks()])
        assert (b"DE44 SECRET" not in body) == hidden
        marker = redaction_marker("DE44 SECRET")["redacted_sha256"].encode()
        assert (marker in body) == hidden
        manifest = row["manifest"]
        assert manifest["redaction"]["reader_roles"] == sorted(roles)
        assert manifest["redaction"]["rows"] == (1 if hidden else 0)
        lines = body.decode().splitlines(keepends=True)
        assert verify_export(read_rows(ExportFormat.CSV, lines), manifest) is None


def test_a_flipped_byte_that_breaks_the_csv_syntax_is_named_not_raised():
    """A byte flipped into a bare line break inside a cell is a CSV syntax error (not a
    ValueError): the verifier names the row instead of failing (found by the test above)."""
    cells = ["1", "t\rx"] + [""] * (len(FILE_COLUMNS) - 2)
    lines = [",".join(FILE_COLUMNS) + "\r\n", ",".join(cells) + "\r\n"]
    problem = verify_export(read_rows(ExportFormat.CSV, iter(lines)), {"chain": {}})
    assert problem is not None and problem.row == 1
    assert "not a readable row" in problem.detail

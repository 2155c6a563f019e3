"""Audit exports: what a filter selects, how rows are written, the manifest, and checking a file.

An export is the tenant's audit events up to a fixed head (`to_seq`, the head when it was
requested), in `seq` order, as NDJSON (one JSON object a line) or CSV (a header, then one
record a row). Each row carries the event's content, its content digest and its links, so a
file can be checked on its own (`verify_export`): every row's link and digest, the order, and
— for an unfiltered export, whose rows are a contiguous segment of the chain — that each row
links to the one before. The manifest written beside the file records what it holds (row
count, time range, filter, the segment's first and last hashes) and the file's sha256.

In CSV an empty cell is an empty text or no value at all: CSV cannot tell them apart, so the
content check tries both readings of the empty cells before calling a row changed.

An export honours redaction: events redacted in the trail are written as stored (their markers
in place of content), and the payload fields its reader may not see under the tenant's
redaction rules are replaced by redaction markers (`ExportView`). Such a row's content no longer
matches its `content_digest`; it carries a `redacted_digest` instead — the digest of the row as
written — and the manifest the digest of all of them (`redaction`), so the row's links still
prove its place in the chain and any change to what it says is named.

Every row also carries the sha256 of its own bytes as written (`row_sha256`, the last field,
digested while empty; `seal_row`), so a change that leaves a row saying the same — a space, a
JSON escape, another spelling of a number or a time, a line ending — is named by its row too,
not only by the file's sha256.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from signoff.domain.actors import Principal
from signoff.domain.audit import canonical, content_digest, link_hash
from signoff.domain.redaction import RedactionRule, Redactor, redactor_for


class ExportFormat(StrEnum):
    """The file format of an export."""

    NDJSON = "ndjson"
    CSV = "csv"


class EventKind(StrEnum):
    """Families of audit events a filter can ask for."""

    APPROVALS = "approvals"
    ESCALATIONS = "escalations"
    COMMENTS = "comments"
    OVERRIDES = "overrides"
    NOTIFICATIONS = "notifications"


KIND_ACTIONS: dict[EventKind, tuple[str, ...]] = {
    # decisions on steps and the item outcomes they lead to
    EventKind.APPROVALS: (
        "step.approve",
        "step.approved",
        "step.reject",
        "step.vote",
        "step.request_changes",
        "item.approve",
        "item.approve_all",
        "item.reject",
        "item.request_changes",
        "decision_link.used",
    ),
    EventKind.ESCALATIONS: (
        "step.escalate",
        "step.expire",
        "step.retries_exhausted",
        "item.expire",
        "timer.reminder",
        "timer.deadline_risk",
    ),
    EventKind.COMMENTS: ("comment.%",),
    EventKind.OVERRIDES: ("step.override", "step.override_requested", "item.override"),
    EventKind.NOTIFICATIONS: ("notification.%",),
}
"""The actions of each kind, as SQL LIKE patterns (`%` for any rest)."""


def action_patterns(kinds: Iterable[EventKind]) -> list[str]:
    """The LIKE patterns of the actions of `kinds`."""
    return sorted({p for kind in kinds for p in KIND_ACTIONS[kind]})


@dataclass(frozen=True)
class ExportFilter:
    """Which events an export holds; every field narrows it, none means all."""

    since: datetime | None = None
    until: datetime | None = None
    template_key: str | None = None
    item_id: UUID | None = None
    actor_id: str | None = None
    kinds: tuple[EventKind, ...] = ()

    @property
    def is_empty(self) -> bool:
        """Whether it selects every event (the file is then a contiguous chain segment)."""
        return self == ExportFilter()

    def to_dict(self) -> dict[str, Any]:
        """The filter as plain JSON values (for the manifest and the stored request)."""
        return {
            "since": canonical(self.since),
            "until": canonical(self.until),
            "template_key": self.template_key,
            "item_id": canonical(self.item_id),
            "actor_id": self.actor_id,
            "kinds": [k.value for k in self.kinds],
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> ExportFilter:
        """The filter `to_dict` wrote."""
        return cls(
            since=_time(value.get("since")),
            until=_time(value.get("until")),
            template_key=value.get("template_key"),
            item_id=UUID(value["item_id"]) if value.get("item_id") else None,
            actor_id=value.get("actor_id"),
            kinds=tuple(EventKind(k) for k in value.get("kinds") or ()),
        )


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


COLUMNS = (
    "tenant_id",
    "seq",
    "occurred_at",
    "action",
    "actor_id",
    "acting_for",
    "item_id",
    "step_id",
    "environment",
    "reason",
    "request_id",
    "client_addr",
    "user_agent",
    "data",
    "redacted_at",
    "content_digest",
    "prev_hash",
    "hash",
)
"""The columns of an event in an export, in file order."""

REDACTED_DIGEST = "redacted_digest"
ROW_DIGEST = "row_sha256"
FILE_COLUMNS = (*COLUMNS, REDACTED_DIGEST, ROW_DIGEST)
"""The columns of a file: an event's, then the digest of a row whose content is redacted
(empty, or absent in NDJSON, on other rows), then the sha256 of the row's own bytes."""
_FORMER_COLUMNS = ((*COLUMNS, REDACTED_DIGEST), COLUMNS)
"""The CSV columns of files made before row digests, and before redaction digests."""
_EXTRA_FIELDS = frozenset({REDACTED_DIGEST, ROW_DIGEST})
_SEALED_END = {"ndjson": len('"}\n'), "csv": len("\r\n")}
_DIGEST_SIZE = 64


def seal_row(text: str, fmt: ExportFormat) -> bytes:
    """A written row (`text`, its line ending included, its `row_sha256` empty and last: `""}`
    in NDJSON, an empty last cell in CSV) with the sha256 of those bytes put in that place."""
    raw = text.encode()
    end = len(raw) - _SEALED_END[fmt.value]
    return raw[:end] + hashlib.sha256(raw).hexdigest().encode() + raw[end:]


def row_bytes_match(text: str, digest: str, fmt: ExportFormat) -> bool:
    """Whether a row read from a file (`text`, as written) is the one `seal_row` made with
    `digest`: the digest in its place, and the row's bytes without it hashing to it."""
    raw = text.encode()
    end = len(raw) - _SEALED_END[fmt.value]
    start = end - _DIGEST_SIZE
    if start < 0 or raw[start:end] != digest.encode():
        return False
    return hashlib.sha256(raw[:start] + raw[end:]).hexdigest() == digest


class WrittenRow(dict[str, Any]):
    """A row read back from a file, with the text it was read from (`text`)."""

    text: str | None = None


_TEXT_COLUMNS = tuple(c for c in COLUMNS if c not in ("seq", "data"))


def redacted_row_digest(row: Mapping[str, Any]) -> str:
    """The digest of a row as written (every event column; an empty text counts as no value,
    which CSV cannot tell apart): what a redacted row is checked by."""
    body: dict[str, Any] = {}
    for column in COLUMNS:
        value = row.get(column)
        if column == "seq":
            body[column] = int(value) if value is not None else None
        elif column == "data":
            body[column] = canonical(value)
        else:
            body[column] = None if value in (None, "") else canonical(value)
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


CLIENT_DETAILS = ("client_addr", "user_agent")
"""Where a change came from: only for readers holding `read_audit_details`."""


@dataclass
class ExportView:
    """What an export's reader may see: the redaction rules of the tenant, applied as for a
    principal with the reader's roles (no roles: every rule's fields are hidden), and where
    each change came from (`CLIENT_DETAILS`) unless `hides_client_details`."""

    rules: Sequence[RedactionRule]
    reader: Principal
    hides_client_details: bool = False
    _redactors: dict[str, Redactor] = field(default_factory=dict)

    @property
    def hides_payload_fields(self) -> bool:
        """Whether some rule hides a field from the reader (else only rows redacted in the
        trail change)."""
        return any(not self.reader.has_any_role(r.visible_to) for r in self.rules)

    def redactor(self, template_key: str) -> Redactor:
        """What the reader may not see of the payloads of `template_key`."""
        found = self._redactors.get(template_key)
        if found is None:
            found = redactor_for(self.rules, template_key, self.reader)
            self._redactors[template_key] = found
        return found

    def row(self, row: Mapping[str, Any], template_key: str | None) -> dict[str, Any]:
        """A row as written (`row` in its written form) for the reader: hidden payload fields
        of its `data` replaced by redaction markers, client details emptied for a reader who
        may not see them, and the `redacted_digest` of a row whose content is not all there
        (hidden now, or redacted in the trail)."""
        out = dict(row)
        if template_key is not None and isinstance(row.get("data"), Mapping):
            out["data"] = self.redactor(template_key).event_data_marked(row["data"])
        hidden = self.hides_client_details and any(
            row.get(c) not in (None, "") for c in CLIENT_DETAILS
        )
        if hidden:  # an empty text says nothing: a row of only those is left as it is
            out.update(dict.fromkeys(CLIENT_DETAILS))
        if hidden or out["data"] != row.get("data") or row.get("redacted_at") not in (None, ""):
            out[REDACTED_DIGEST] = redacted_row_digest(out)
        return out


def ndjson_line(row: Mapping[str, Any]) -> str:
    """One row as an NDJSON line (for rows not built by the database)."""
    return json.dumps(row, ensure_ascii=False) + "\n"


def csv_header() -> bytes:
    """The CSV header line."""
    return (",".join(FILE_COLUMNS) + "\r\n").encode()


def csv_records(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """Written rows as CSV records (`data` as its JSON text; no value as an empty cell)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        cells = []
        for column in FILE_COLUMNS:
            value = row.get(column)
            if column == "data":
                value = _data_text(value)
            cells.append("" if value is None else value)
        writer.writerow(cells)
    return buffer.getvalue().encode()


def _data_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def encode_rows(
    fmt: ExportFormat, rows: Sequence[Mapping[str, Any]], view: ExportView
) -> tuple[bytes, list[tuple[int, str]]]:
    """One chunk of the file: `rows` of the database in `fmt` as the view's reader sees them,
    each sealed with its `row_sha256`, and the (seq, redacted digest) of its redacted rows.

    A row comes with `redacted` (redacted in the trail), `template_key` (its item's, when it
    holds a payload copy the view may hide; None otherwise) and `details` (whether it holds
    client details the view hides); NDJSON rows with their `line`,
    CSV rows with their `record`, both built by the database with an empty `row_sha256` last
    (a CSV row the view may change also with its columns as a JSON `line`, times as
    `canonical` writes them). Only the rows the view changes are decoded here.
    """
    redacted: list[tuple[int, str]] = []
    parts = []
    for row in rows:
        if not row["redacted"] and row["template_key"] is None and not row["details"]:
            text = f"{row['line']}\n" if fmt is ExportFormat.NDJSON else row["record"]
            parts.append(seal_row(text, fmt))
            continue
        out = view.row(json.loads(row["line"]), row["template_key"])
        if REDACTED_DIGEST in out:
            redacted.append((int(row["seq"]), out[REDACTED_DIGEST]))
        out.pop(ROW_DIGEST, None)
        out[ROW_DIGEST] = ""  # last, as `seal_row` fills it
        if fmt is ExportFormat.NDJSON:
            parts.append(seal_row(ndjson_line(out), fmt))
        else:
            parts.append(seal_row(csv_records([out]).decode(), fmt))
    return b"".join(parts), redacted


@dataclass
class ManifestBuilder:
    """Follows an export as it is written: rows, time range, chain segment, sha256."""

    tenant_id: str
    fmt: ExportFormat
    filter: ExportFilter
    to_seq: int
    rows: int = 0
    size: int = 0
    first: dict[str, Any] = field(default_factory=dict)
    last: dict[str, Any] = field(default_factory=dict)
    earliest: datetime | None = None
    latest: datetime | None = None
    reader_roles: tuple[str, ...] = ()
    redacted_rows: int = 0
    _sha: Any = field(default_factory=hashlib.sha256)
    _redacted_sha: Any = field(default_factory=hashlib.sha256)

    def add_rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Count `rows` (in seq order) into the manifest."""
        if not rows:
            return
        if not self.first:
            self.first = {"seq": rows[0]["seq"], "prev_hash": rows[0]["prev_hash"]}
            self.first["hash"] = rows[0]["hash"]
        self.last = {"seq": rows[-1]["seq"], "hash": rows[-1]["hash"]}
        self.rows += len(rows)
        for row in rows:
            at = row["occurred_at"]
            if self.earliest is None or at < self.earliest:
                self.earliest = at
            if self.latest is None or at > self.latest:
                self.latest = at

    def add_redacted(self, seq: int, digest: str) -> None:
        """Count a row written with its `redacted_digest` (in seq order)."""
        self.redacted_rows += 1
        self._redacted_sha.update(redacted_link(seq, digest))

    def add_bytes(self, chunk: bytes) -> None:
        """Hash and count bytes written to the file."""
        self._sha.update(chunk)
        self.size += len(chunk)

    def manifest(self, generated_at: datetime, export_id: str | None = None) -> dict[str, Any]:
        """The manifest of the file written so far."""
        return {
            "export_id": export_id,
            "tenant_id": self.tenant_id,
            "format": self.fmt.value,
            "filter": self.filter.to_dict(),
            "rows": self.rows,
            "time_range": {"first": canonical(self.earliest), "last": canonical(self.latest)},
            "chain": {
                "to_seq": self.to_seq,
                "contiguous": self.filter.is_empty,
                "first_seq": self.first.get("seq"),
                "first_prev_hash": self.first.get("prev_hash"),
                "first_hash": self.first.get("hash"),
                "last_seq": self.last.get("seq"),
                "last_hash": self.last.get("hash"),
            },
            "redaction": {
                "reader_roles": sorted(self.reader_roles),
                "rows": self.redacted_rows,
                "sha256": self._redacted_sha.hexdigest(),
            },
            "row_digests": True,
            "sha256": self._sha.hexdigest(),
            "bytes": self.size,
            "generated_at": canonical(generated_at),
        }


def redacted_link(seq: int, digest: str) -> bytes:
    """What the manifest's `redaction.sha256` covers of one redacted row."""
    return f"{seq}:{digest}\n".encode()


# -- checking a file on its own --------------------------------------------------------------


@dataclass(frozen=True)
class ExportProblem:
    """Why an exported file does not verify; `row` is 1-based (0: the file as a whole)."""

    row: int
    seq: int | None
    detail: str

    def __str__(self) -> str:
        where = f"row {self.row}" + (f" (seq {self.seq})" if self.seq is not None else "")
        return f"{where}: {self.detail}" if self.row else self.detail


def read_rows(fmt: ExportFormat, lines: Iterable[str]) -> Iterator[WrittenRow]:
    """Parse a file's rows back into events (text lines, newline included), each with the
    text it was read from. A blank line is not a row: it is refused."""
    if fmt is ExportFormat.NDJSON:
        for line in lines:
            if not line.strip():
                raise ValueError("a blank line")
            row = WrittenRow(json.loads(line))
            row.text = line
            yield row
        return
    consumed: list[str] = []

    def kept(source: Iterable[str]) -> Iterator[str]:
        for line in source:
            consumed.append(line)
            yield line

    reader = csv.reader(kept(lines))
    header = next(reader, None)
    if header is None:
        return
    columns = tuple(header)
    if columns not in (FILE_COLUMNS, *_FORMER_COLUMNS):
        raise ValueError("the CSV header is not an audit export's")
    if columns == FILE_COLUMNS and "".join(consumed) != csv_header().decode():
        raise ValueError("the CSV header is not spelt as written")
    consumed.clear()
    for record in reader:  # the reader reads no further than the end of a record
        text = "".join(consumed)
        consumed.clear()
        if len(record) != len(columns):
            raise ValueError(f"line {reader.line_num}: {len(record)} cells, not {len(columns)}")
        row = WrittenRow((c, v if v != "" else None) for c, v in zip(columns, record, strict=True))
        row.text = text
        row["seq"] = int(record[1])
        row["prev_hash"] = row["prev_hash"] or ""  # the first event links to the empty hash
        row["data"] = json.loads(record[COLUMNS.index("data")])
        yield row


def _digest_matches(row: Mapping[str, Any], fmt: ExportFormat) -> bool:
    event = dict(row)
    event["occurred_at"] = datetime.fromisoformat(row["occurred_at"]).astimezone(UTC)
    if content_digest(event) == row["content_digest"]:
        return True
    if fmt is not ExportFormat.CSV:
        return False
    # An empty CSV cell was either an empty text or no value: try the other readings.
    empty = [c for c in _TEXT_COLUMNS if event.get(c) is None]
    for size in range(1, len(empty) + 1):
        for chosen in itertools.combinations(empty, size):
            if content_digest({**event, **dict.fromkeys(chosen, "")}) == row["content_digest"]:
                return True
    return False


def verify_export(
    rows: Iterable[Mapping[str, Any]],
    manifest: Mapping[str, Any],
    *,
    check_content: bool = True,
) -> ExportProblem | None:
    """The first problem of a file's `rows` against its `manifest`, or None if it verifies.

    Checks each row's link (hash of its prev_hash, tenant, seq and digest), its content against
    its digest — a row with a `redacted_digest` against that, and all of them together against
    the manifest's `redaction` — that seqs increase, and, for a contiguous export, that each row
    links to the one before; then that the count and the segment's first and last hashes are
    those of the manifest. A row that cannot be read is named too. A row read from a file
    (`read_rows`: it has its `text`) is checked against its `row_sha256` last, so that a change
    which leaves it saying the same is named by its row. The file's sha256 is checked by the
    caller, who reads its bytes.

    Files made before redaction digests (no `redaction` in the manifest) check rows redacted in
    the trail by their links only; files made before row digests (no `row_digests`), their rows'
    bytes by the file's sha256 only.
    """
    chain = manifest["chain"]
    redaction = manifest.get("redaction")
    redacted_sha = hashlib.sha256()
    redacted_rows = 0
    previous: Mapping[str, Any] | None = None
    count = 0
    reading = iter(rows)
    while True:
        try:
            row = next(reading)
        except StopIteration:
            break
        except (ValueError, KeyError, TypeError, AttributeError, csv.Error) as exc:
            # JSON, UTF-8 and CSV syntax too (a flipped byte can make a bare line break)
            return ExportProblem(count + 1, None, f"not a readable row: {exc}")
        count += 1
        try:
            problem = _row_problem(count, row, previous, manifest, check_content)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return ExportProblem(count, None, f"not a readable row: {exc!r}")
        if problem is not None:
            return problem
        digest = row.get(REDACTED_DIGEST)
        if digest:
            redacted_rows += 1
            redacted_sha.update(redacted_link(int(row["seq"]), digest))
        previous = row
    if count != manifest["rows"]:
        return ExportProblem(0, None, f"{count} rows, the manifest says {manifest['rows']}")
    if previous is not None and (
        previous["seq"] != chain["last_seq"] or previous["hash"] != chain["last_hash"]
    ):
        return ExportProblem(0, None, "the last row is not the last event the manifest names")
    if redaction is not None and (
        redacted_rows != redaction["rows"] or redacted_sha.hexdigest() != redaction["sha256"]
    ):
        return ExportProblem(0, None, "the redacted rows are not those the manifest names")
    return None


def _row_problem(
    count: int,
    row: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    manifest: Mapping[str, Any],
    check_content: bool,
) -> ExportProblem | None:
    fmt = ExportFormat(manifest["format"])
    chain = manifest["chain"]
    tenant = manifest["tenant_id"]
    if set(row) - _EXTRA_FIELDS != set(COLUMNS):
        return ExportProblem(count, None, "its fields are not an audit event's")
    seq = int(row["seq"])
    if row["tenant_id"] != tenant:
        return ExportProblem(count, seq, f"belongs to tenant {row['tenant_id']!r}")
    if seq > chain["to_seq"]:
        return ExportProblem(count, seq, "beyond the head the export was made at")
    if previous is not None:
        if seq <= int(previous["seq"]):
            return ExportProblem(count, seq, "out of order")
        if chain["contiguous"] and (
            seq != int(previous["seq"]) + 1 or row["prev_hash"] != previous["hash"]
        ):
            return ExportProblem(count, seq, "does not link to the row before (link)")
    if link_hash(row["prev_hash"], tenant, seq, row["content_digest"]) != row["hash"]:
        return ExportProblem(count, seq, "hash does not match its link (hash)")
    if check_content:
        digest = row.get(REDACTED_DIGEST)
        if digest:
            if redacted_row_digest(row) != digest:
                return ExportProblem(
                    count, seq, "content does not match its redacted digest (content)"
                )
        elif row.get("redacted_at") is not None:
            if manifest.get("redaction") is not None:
                return ExportProblem(count, seq, "redacted, without its redacted digest (content)")
        elif not _digest_matches(row, fmt):
            return ExportProblem(count, seq, "content does not match its digest (content)")
    if manifest.get("row_digests"):
        digest = row.get(ROW_DIGEST)
        text = getattr(row, "text", None)
        if not digest:
            return ExportProblem(count, seq, "without its row_sha256 (bytes)")
        if text is not None and not row_bytes_match(text, digest, fmt):
            return ExportProblem(
                count, seq, "its bytes are not those written, though it may say the same (bytes)"
            )
    if count == 1 and (
        seq != chain["first_seq"]
        or row["prev_hash"] != chain["first_prev_hash"]
        or row["hash"] != chain["first_hash"]
    ):
        return ExportProblem(count, seq, "is not the first event the manifest names")
    return None

"""An audit export's filter and manifest as typed objects (`exportFilter`, `exportManifest`).

What must always hold: the typed fields say exactly what the deprecated JSON fields say (the
stored snake_case documents), for any filter a client may request and for the manifest of a
file the worker wrote — read back into the stored form they are equal, key for key.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from signoff.api import ids
from signoff.db.tenants import ensure_tenant
from tests.collab.test_audit_exports import load, run_worker
from tests.conftest import GraphQLClient

FILTER_FIELDS = "since until templateKey itemId actorId kinds"
MANIFEST_FIELDS = f"""
tenantId format rows rowDigests sha256 bytes generatedAt
filter {{ {FILTER_FIELDS} }}
timeRange {{ first last }}
chain {{ toSeq contiguous firstSeq firstPrevHash firstHash lastSeq lastHash }}
redaction {{ readerRoles rows sha256 }}
"""
REQUEST = f"""
mutation($input: RequestAuditExportInput!) {{
  requestAuditExport(input: $input) {{
    export {{ id filter exportFilter {{ {FILTER_FIELDS} }} }}
    errors {{ code field }}
  }}
}}"""
STATUS = f"""
query($id: ID!) {{
  auditExport(id: $id) {{
    exportStatus filter exportFilter {{ {FILTER_FIELDS} }}
    manifest exportManifest {{ {MANIFEST_FIELDS} }}
  }}
}}"""
AUDITOR: dict[str, Any] = {"as_user": "audrey", "roles": ("auditor",)}


def time_text(value: str | None) -> str | None:
    """A time as the stored documents write it (ISO 8601 in UTC)."""
    return datetime.fromisoformat(value).astimezone(UTC).isoformat() if value else None


def stored_filter(typed: dict[str, Any]) -> dict[str, Any]:
    """A typed `AuditExportFilter` in the stored form of the JSON `filter`."""
    item_id = typed["itemId"]
    return {
        "since": time_text(typed["since"]),
        "until": time_text(typed["until"]),
        "template_key": typed["templateKey"],
        "item_id": ids.decode(item_id)[1] if item_id else None,
        "actor_id": typed["actorId"],
        "kinds": [k.lower() for k in typed["kinds"]],
    }


def stored_manifest(typed: dict[str, Any]) -> dict[str, Any]:
    """A typed `AuditExportManifest` in the stored form of the JSON `manifest` (which also
    names the export: that is the export's own id)."""
    chain, span = typed["chain"], typed["timeRange"]
    redaction = typed["redaction"]
    return {
        "tenant_id": typed["tenantId"],
        "format": typed["format"].lower(),
        "filter": stored_filter(typed["filter"]),
        "rows": typed["rows"],
        "time_range": {"first": time_text(span["first"]), "last": time_text(span["last"])},
        "chain": {
            "to_seq": chain["toSeq"],
            "contiguous": chain["contiguous"],
            "first_seq": chain["firstSeq"],
            "first_prev_hash": chain["firstPrevHash"],
            "first_hash": chain["firstHash"],
            "last_seq": chain["lastSeq"],
            "last_hash": chain["lastHash"],
        },
        "redaction": {
            "reader_roles": redaction["readerRoles"],
            "rows": redaction["rows"],
            "sha256": redaction["sha256"],
        },
        "row_digests": typed["rowDigests"],
        "sha256": typed["sha256"],
        "bytes": typed["bytes"],
        "generated_at": time_text(typed["generatedAt"]),
    }


def stored_json(manifest: dict[str, Any]) -> dict[str, Any]:
    """The JSON manifest with its times in one spelling, less the export's own id."""
    span = manifest["time_range"]
    return {
        **{k: v for k, v in manifest.items() if k != "export_id"},
        "filter": {
            **manifest["filter"],
            "since": time_text(manifest["filter"]["since"]),
            "until": time_text(manifest["filter"]["until"]),
        },
        "time_range": {"first": time_text(span["first"]), "last": time_text(span["last"])},
        "generated_at": time_text(manifest["generated_at"]),
    }


START = datetime(2026, 11, 1, tzinfo=UTC)
times = st.one_of(
    st.none(), st.integers(0, 60 * 24 * 90).map(lambda m: START + timedelta(minutes=m))
)
filters = st.fixed_dictionaries(
    {},
    optional={
        "since": times,
        "until": times,
        "templateKey": st.one_of(st.none(), st.sampled_from(["change-approval", "k-1"])),
        "itemId": st.one_of(st.none(), st.uuids().map(lambda u: ids.encode("WorkflowItem", u))),
        "actorId": st.one_of(st.none(), st.text("abcxyz-", min_size=1, max_size=8)),
        "kinds": st.one_of(
            st.none(),
            st.lists(
                st.sampled_from(["APPROVALS", "ESCALATIONS", "COMMENTS", "OVERRIDES"]),
                unique=True,
                max_size=4,
            ),
        ),
    },
)


@hsettings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(wanted=filters)
async def test_the_typed_filter_says_what_the_json_filter_says(client, settings, wanted):
    tenant = f"x{uuid.uuid4().hex[:12]}"
    await ensure_tenant(tenant)
    gql = GraphQLClient(client, settings, tenant)
    variables = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in wanted.items()}
    answer = (await gql.data(REQUEST, {"input": {"filter": variables}}, **AUDITOR))[
        "requestAuditExport"
    ]
    since, until = wanted.get("since"), wanted.get("until")
    if since is not None and until is not None and since >= until:
        assert answer == {
            "export": None,
            "errors": [{"code": "INVALID_INPUT", "field": "filter.since"}],
        }
        return
    assert answer["errors"] == []
    export = answer["export"]
    assert stored_filter(export["exportFilter"]) == {
        **export["filter"],
        "since": time_text(export["filter"]["since"]),
        "until": time_text(export["filter"]["until"]),
    }
    # and both are what was asked for
    typed = export["exportFilter"]
    assert typed["itemId"] == wanted.get("itemId")
    assert typed["kinds"] == (wanted.get("kinds") or [])
    assert typed["actorId"] == wanted.get("actorId")
    for name in ("since", "until"):
        asked = wanted.get(name)
        assert (datetime.fromisoformat(typed[name]) if typed[name] else None) == asked
    # read back on its own, it is the same
    status = (await gql.data(STATUS, {"id": export["id"]}, **AUDITOR))["auditExport"]
    assert status["filter"] == export["filter"]
    assert status["exportFilter"] == typed
    assert status["manifest"] is None and status["exportManifest"] is None  # not run yet


async def run_export(gql: Any, settings: Any, clock: Any, request: dict[str, Any]) -> Any:
    answer = (await gql.data(REQUEST, {"input": request}, **AUDITOR))["requestAuditExport"]
    assert answer["errors"] == []
    await run_worker(settings, clock)
    status = (await gql.data(STATUS, {"id": answer["export"]["id"]}, **AUDITOR))["auditExport"]
    assert status["exportStatus"] == "COMPLETED"
    return status


async def test_the_typed_manifest_says_what_the_json_manifest_says(gql, settings, clock):
    await load(gql.tenant, 40)
    whole = await run_export(gql, settings, clock, {"format": "CSV"})
    manifest, typed = whole["manifest"], whole["exportManifest"]
    assert stored_manifest(typed) == stored_json(manifest)
    # the figures a reader checks a file with, spelled out
    assert typed["rows"] == 40 and typed["format"] == "CSV" and typed["rowDigests"] is True
    assert typed["chain"]["contiguous"] is True
    assert (typed["chain"]["firstSeq"], typed["chain"]["lastSeq"]) == (1, 40)
    assert datetime.fromisoformat(typed["timeRange"]["first"]) == datetime(
        2026, 11, 30, 7, 0, tzinfo=UTC
    )
    assert datetime.fromisoformat(typed["timeRange"]["last"]) == datetime(
        2026, 11, 30, 7, 0, 39, tzinfo=UTC
    )
    assert typed["filter"]["kinds"] == [] and typed["filter"]["since"] is None

    # a filtered export that selects nothing: no segment ends, no times
    empty = await run_export(
        gql, settings, clock, {"filter": {"actorId": "nobody", "kinds": ["COMMENTS"]}}
    )
    manifest, typed = empty["manifest"], empty["exportManifest"]
    assert stored_manifest(typed) == stored_json(manifest)
    assert typed["rows"] == 0 and typed["chain"]["contiguous"] is False
    assert typed["chain"]["firstSeq"] is None and typed["chain"]["lastHash"] is None
    assert typed["timeRange"] == {"first": None, "last": None}
    assert typed["filter"]["actorId"] == "nobody" and typed["filter"]["kinds"] == ["COMMENTS"]

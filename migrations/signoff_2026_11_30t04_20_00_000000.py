"""Audit exports requested through the API: one row per export, the truth its job works from.

The row fixes what the export holds (tenant, filter, format and `to_seq`, the chain's head when
it was requested), so a restarted export writes the same file. `lease` and `heartbeat_at` say
which attempt owns it and that it is alive; an export whose heartbeat stops is handed out again.
"""

from signoff.db.migrate import sql_migration

ID = "2026-11-30T04:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "audit exports"

FORWARDS = r"""
CREATE TABLE audit_export (
    id            uuid PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    requested_by  text NOT NULL,
    format        text NOT NULL CHECK (format IN ('ndjson', 'csv')),
    filter        jsonb NOT NULL,
    to_seq        bigint NOT NULL,
    status        text NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    attempts      integer NOT NULL DEFAULT 0,
    rows_written  bigint NOT NULL DEFAULT 0,
    rows_total    bigint,
    storage_key   text,
    sha256        text,
    size          bigint,
    manifest      jsonb,
    error         text,
    lease         uuid,
    heartbeat_at  timestamptz,
    created_at    timestamptz NOT NULL,
    started_at    timestamptz,
    finished_at   timestamptz
);
CREATE INDEX audit_export_tenant ON audit_export (tenant_id, created_at DESC);
CREATE INDEX audit_export_unfinished ON audit_export (heartbeat_at)
    WHERE status IN ('queued', 'running');
"""

BACKWARDS = r"""
DROP TABLE IF EXISTS audit_export;
"""

forwards = sql_migration(ID, DESCRIPTION, FORWARDS, BACKWARDS)

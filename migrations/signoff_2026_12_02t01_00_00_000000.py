"""Audit export files expire: retention removes a completed export's file and manifest from the
store once `SIGNOFF_AUDIT_EXPORT_RETENTION_DAYS` have passed since it completed.

An expired export keeps its row (who asked for what, the file's sha256 and manifest) with
status `expired` and `expired_at`; `storage_key` stays set until the stored objects are
deleted (a deletion that fails is retried by the next run) and is then cleared. A download of an
expired export is refused with `EXPORT_EXPIRED` from the moment it expires.
"""

from signoff.db.migrate import sql_migration

ID = "2026-12-02T01:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "audit export expiry"

FORWARDS = r"""
ALTER TABLE audit_export DROP CONSTRAINT audit_export_status_check;
ALTER TABLE audit_export ADD CONSTRAINT audit_export_status_check
    CHECK (status IN ('queued', 'running', 'completed', 'failed', 'expired'));
ALTER TABLE audit_export ADD COLUMN expired_at timestamptz;
CREATE INDEX audit_export_completed ON audit_export (finished_at) WHERE status = 'completed';
CREATE INDEX audit_export_files_to_delete ON audit_export (expired_at)
    WHERE status = 'expired' AND storage_key IS NOT NULL;
"""

BACKWARDS = r"""
DROP INDEX IF EXISTS audit_export_files_to_delete;
DROP INDEX IF EXISTS audit_export_completed;
UPDATE audit_export SET status = 'completed' WHERE status = 'expired';
ALTER TABLE audit_export DROP COLUMN IF EXISTS expired_at;
ALTER TABLE audit_export DROP CONSTRAINT audit_export_status_check;
ALTER TABLE audit_export ADD CONSTRAINT audit_export_status_check
    CHECK (status IN ('queued', 'running', 'completed', 'failed'));
"""

forwards = sql_migration(ID, DESCRIPTION, FORWARDS, BACKWARDS)

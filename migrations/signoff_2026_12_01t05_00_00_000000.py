"""The roles an audit export is written for: the requester's, when it was requested.

An export honours the tenant's redaction rules as they apply to its reader; the job that runs
it later needs the reader's roles to apply them the same way.
"""

from signoff.db.migrate import sql_migration

ID = "2026-12-01T05:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "audit export reader roles"

FORWARDS = r"""
ALTER TABLE audit_export ADD COLUMN reader_roles text[] NOT NULL DEFAULT '{}';
"""

BACKWARDS = r"""
ALTER TABLE audit_export DROP COLUMN IF EXISTS reader_roles;
"""

forwards = sql_migration(ID, DESCRIPTION, FORWARDS, BACKWARDS)

"""Snapshots of incident reviews redacted with the item they reviewed.

An incident review that reopened an item holds the item's whole history in a snapshot (an
evidence file). When retention removes the item's content, the snapshot must lose it too:
`redaction_due_at` marks the snapshot from the moment retention commits until its rewritten
content is recorded; in between the file is not served.
"""

from signoff.db.migrate import sql_migration

ID = "2026-12-01T05:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "evidence redaction due"

FORWARDS = r"""
ALTER TABLE evidence ADD COLUMN redaction_due_at timestamptz;
CREATE INDEX evidence_redaction_due ON evidence (tenant_id, redaction_due_at)
    WHERE redaction_due_at IS NOT NULL;
"""

BACKWARDS = r"""
DROP INDEX IF EXISTS evidence_redaction_due;
ALTER TABLE evidence DROP COLUMN IF EXISTS redaction_due_at;
"""

forwards = sql_migration(ID, DESCRIPTION, FORWARDS, BACKWARDS)

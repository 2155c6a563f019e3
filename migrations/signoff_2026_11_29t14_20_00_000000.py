"""Incident reviews: what each review is about, and the decided item it reopens."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from signoff.db.migrate import run_sql_script

ID = "2026-11-29T14:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "incident reviews"

FORWARDS = """
CREATE TABLE incident_review (
    -- the review is a workflow item of an incident_review template
    item_id               uuid PRIMARY KEY REFERENCES workflow_item(id) ON DELETE RESTRICT,
    tenant_id             text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    -- the external trace or decision id, or the global id of the reopened item
    source_ref            text NOT NULL,
    source_kind           text NOT NULL CHECK (source_kind IN ('trace', 'decision', 'item')),
    -- what precedent is matched on, besides the template
    subject               text,
    reviewed_item_id      uuid REFERENCES workflow_item(id) ON DELETE RESTRICT,
    snapshot_evidence_id  uuid REFERENCES evidence(id) ON DELETE RESTRICT,
    created_at            timestamptz NOT NULL
);
CREATE INDEX incident_review_reviewed ON incident_review (tenant_id, reviewed_item_id)
    WHERE reviewed_item_id IS NOT NULL;
CREATE INDEX incident_review_subject ON incident_review (tenant_id, subject)
    WHERE subject IS NOT NULL;
-- precedent looks items up by what they are about
CREATE INDEX IF NOT EXISTS workflow_item_external_ref ON workflow_item (tenant_id, external_ref)
    WHERE external_ref IS NOT NULL;
"""

BACKWARDS = """
DROP INDEX IF EXISTS workflow_item_external_ref;
DROP TABLE IF EXISTS incident_review;
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="signoff", description=DESCRIPTION)

    async def run() -> None:
        await run_sql_script(FORWARDS)

    async def run_backwards() -> None:
        await run_sql_script(BACKWARDS)

    manager.add_raw(run)
    manager.add_raw_backwards(run_backwards)
    return manager

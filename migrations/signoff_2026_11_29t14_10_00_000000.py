"""Evidence files: their metadata, and the short-lived upload slots they arrive through."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from signoff.db.migrate import run_sql_script

ID = "2026-11-29T14:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "evidence"

# The file's bytes live in the object store under `storage_key`; the database holds what is
# needed to authorise, list and verify them (name, type, size, sha256). Retention can purge the
# content (delete the object, storage_key := NULL, purged_at) and redact the description
# (description := NULL; description_sha256 stays) while the metadata and the audit trail stay.
FORWARDS = """
CREATE TABLE evidence_upload (
    -- also the id of the evidence once the upload completes
    id               uuid PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    item_id          uuid NOT NULL REFERENCES workflow_item(id) ON DELETE RESTRICT,
    step_id          uuid REFERENCES step(id) ON DELETE RESTRICT,
    uploader_id      text NOT NULL,
    -- the uploader's roles and groups when the URL was made: the upload is authorised again
    -- against the item when it completes
    uploader_roles   text[] NOT NULL DEFAULT '{}',
    uploader_groups  text[] NOT NULL DEFAULT '{}',
    name             text NOT NULL,
    content_type     text NOT NULL,
    size             bigint NOT NULL,
    sha256           text,
    description      text,
    status           text NOT NULL CHECK (status IN ('pending', 'receiving', 'completed', 'expired')),
    storage_key      text NOT NULL,
    expires_at       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX evidence_upload_open ON evidence_upload (expires_at)
    WHERE status IN ('pending', 'receiving');

CREATE TABLE evidence (
    id                  uuid PRIMARY KEY,
    seq                 bigserial NOT NULL,
    tenant_id           text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    item_id             uuid NOT NULL REFERENCES workflow_item(id) ON DELETE RESTRICT,
    step_id             uuid REFERENCES step(id) ON DELETE RESTRICT,
    source              text NOT NULL CHECK (source IN ('upload', 'snapshot')),
    name                text NOT NULL,
    content_type        text NOT NULL,
    size                bigint NOT NULL,
    sha256              text NOT NULL,
    description         text,
    description_sha256  text,
    uploaded_by         text NOT NULL,
    created_at          timestamptz NOT NULL,
    -- NULL once retention purged the content
    storage_key         text,
    purged_at           timestamptz
);
CREATE UNIQUE INDEX evidence_seq ON evidence (seq);
CREATE INDEX evidence_item ON evidence (tenant_id, item_id, seq);
"""

BACKWARDS = """
DROP TABLE IF EXISTS evidence;
DROP TABLE IF EXISTS evidence_upload;
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

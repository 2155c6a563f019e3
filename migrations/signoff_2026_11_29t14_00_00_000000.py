"""Comments: threads on an item or a step, with every revision of every body kept."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from signoff.db.migrate import run_sql_script

ID = "2026-11-29T14:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "comments"

# Metadata and content live apart: `comment` holds who, where, which thread and the state
# (tombstone), `comment_revision` holds each body with its sha256. Retention can purge a body
# (body := NULL, purged_at set) while the digest, the audit trail (which carries only the
# digest) and the thread's shape stay intact.
FORWARDS = """
CREATE TABLE comment (
    id           uuid PRIMARY KEY,
    seq          bigserial NOT NULL,
    tenant_id    text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    item_id      uuid NOT NULL REFERENCES workflow_item(id) ON DELETE RESTRICT,
    step_id      uuid REFERENCES step(id) ON DELETE RESTRICT,
    -- the root comment of the thread (its own id for a root)
    thread_id    uuid NOT NULL,
    reply_to_id  uuid REFERENCES comment(id) ON DELETE RESTRICT,
    author_id    text NOT NULL,
    -- number of the current revision (1 = as first written)
    revision     integer NOT NULL DEFAULT 1,
    -- bumped on every change (edit, deletion): what `expectedVersion` guards
    version      integer NOT NULL DEFAULT 1,
    deleted_at   timestamptz,
    deleted_by   text,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE UNIQUE INDEX comment_seq ON comment (seq);
CREATE INDEX comment_item ON comment (tenant_id, item_id, seq);

CREATE TABLE comment_revision (
    id           bigserial PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    comment_id   uuid NOT NULL REFERENCES comment(id) ON DELETE RESTRICT,
    revision     integer NOT NULL,
    -- NULL once retention purged it; body_sha256 stays
    body         text,
    body_sha256  text NOT NULL,
    mentions     text[] NOT NULL DEFAULT '{}',
    editor_id    text NOT NULL,
    reason       text,
    created_at   timestamptz NOT NULL,
    purged_at    timestamptz,
    UNIQUE (comment_id, revision)
);
"""

BACKWARDS = """
DROP TABLE IF EXISTS comment_revision;
DROP TABLE IF EXISTS comment;
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

"""Indexes for the reviewer inbox and the realtime event feed."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from signoff.db.migrate import run_sql_script

ID = "2026-11-22T03:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "inbox indexes"

# The inbox is driven by the caller's ACTIVE steps, never by a scan of all items: at a million
# items almost every step is decided, so the active ones are a small, hot subset.
#
# - step_active_by_tenant: the partial index the inbox query starts from (tenant + active), and
#   it carries item_id/due_at/claimed_by so that grouping the caller's steps per item, the
#   effective due time and the claim facet are answered from the index.
# - step_active_assignees: GIN (default jsonb_ops, which also indexes keys) over the assignees
#   of active steps only; the inbox matches them with `@>` per user/group/role and `@?` for the
#   delegates map, so a reviewer's steps are found without reading every active step.
# - workflow_item_tenant_inbox: the inbox joins items by primary key, then filters and sorts on
#   state, priority and creation time; the composite index also serves "all open items of a
#   tenant by priority" for admins and the benchmark's first-page query.
# - workflow_item_title_trgm: `title ILIKE '%text%'` (the inbox's text search) can only use a
#   trigram index; pg_trgm is a trusted extension, created when the server ships it. Without it
#   the search still works, filtered after the assignee match.
# - audit_event (tenant_id, seq) is already unique (initial schema): it is the feed's cursor.
FORWARDS = """
CREATE INDEX IF NOT EXISTS step_active_by_tenant
    ON step (tenant_id, item_id) INCLUDE (due_at, claimed_by)
    WHERE state = 'active';
CREATE INDEX IF NOT EXISTS step_active_assignees
    ON step USING gin (assignees)
    WHERE state = 'active';
CREATE INDEX IF NOT EXISTS workflow_item_tenant_inbox
    ON workflow_item (tenant_id, state, priority DESC, created_at DESC, id);
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        CREATE INDEX IF NOT EXISTS workflow_item_title_trgm
            ON workflow_item USING gin (title gin_trgm_ops);
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'pg_trgm not available to this role: title search runs without an index';
END;
$$;
"""

BACKWARDS = """
DROP INDEX IF EXISTS workflow_item_title_trgm;
DROP INDEX IF EXISTS workflow_item_tenant_inbox;
DROP INDEX IF EXISTS step_active_assignees;
DROP INDEX IF EXISTS step_active_by_tenant;
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

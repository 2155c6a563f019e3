"""Requester and history entries: the `items` connection reads the same table as the inbox."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from signoff.db.migrate import run_sql_script

ID = "2026-11-30T01:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "requester and history entries"

# Besides the inbox's rows (one per active step and principal), `inbox_entry` holds one row per
# item for its requester (`q:<user>`, "my requests", every state) and one per item and person
# who decided on it (`h:<user>`, history). Those rows carry the item's id in `step_id` (one row
# per item and principal) and no step deadline, so their `due` is the item's. The item trigger
# of `2026-11-30T01` keeps their copied columns; these triggers add them. Statement-level
# triggers with transition tables: a bulk insert of items or decisions writes its entries in
# one statement.
FORWARDS = """
CREATE FUNCTION inbox_entry_requests_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO inbox_entry (tenant_id, principal, step_id, item_id, revision, item_state,
        kind, template_id, risk, risk_rank, priority, title, created_at, item_due, step_due,
        due, claimed_by)
    SELECT i.tenant_id, 'q:' || i.requester_id, i.id, i.id, i.revision, i.state, i.kind,
        i.template_id, i.risk, inbox_risk_rank(i.risk), i.priority, i.title, i.created_at,
        i.due_at, NULL, coalesce(i.due_at, '9999-12-31T00:00:00+00:00'::timestamptz), NULL
    FROM new_items i;
    RETURN NULL;
END;
$$;

CREATE FUNCTION inbox_entry_history_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO inbox_entry (tenant_id, principal, step_id, item_id, revision, item_state,
        kind, template_id, risk, risk_rank, priority, title, created_at, item_due, step_due,
        due, claimed_by)
    SELECT i.tenant_id, 'h:' || d.actor_id, i.id, i.id, i.revision, i.state, i.kind,
        i.template_id, i.risk, inbox_risk_rank(i.risk), i.priority, i.title, i.created_at,
        i.due_at, NULL, coalesce(i.due_at, '9999-12-31T00:00:00+00:00'::timestamptz), NULL
    FROM (SELECT DISTINCT item_id, actor_id FROM new_decisions) d
    JOIN workflow_item i ON i.id = d.item_id
    ON CONFLICT (step_id, principal) DO NOTHING;
    RETURN NULL;
END;
$$;

CREATE TRIGGER inbox_entry_requests AFTER INSERT ON workflow_item
    REFERENCING NEW TABLE AS new_items
    FOR EACH STATEMENT EXECUTE FUNCTION inbox_entry_requests_sync();
CREATE TRIGGER inbox_entry_history AFTER INSERT ON decision
    REFERENCING NEW TABLE AS new_decisions
    FOR EACH STATEMENT EXECUTE FUNCTION inbox_entry_history_sync();

INSERT INTO inbox_entry (tenant_id, principal, step_id, item_id, revision, item_state, kind,
    template_id, risk, risk_rank, priority, title, created_at, item_due, step_due, due,
    claimed_by)
SELECT i.tenant_id, 'q:' || i.requester_id, i.id, i.id, i.revision, i.state, i.kind,
    i.template_id, i.risk, inbox_risk_rank(i.risk), i.priority, i.title, i.created_at,
    i.due_at, NULL, coalesce(i.due_at, '9999-12-31T00:00:00+00:00'::timestamptz), NULL
FROM workflow_item i
ON CONFLICT (step_id, principal) DO NOTHING;

INSERT INTO inbox_entry (tenant_id, principal, step_id, item_id, revision, item_state, kind,
    template_id, risk, risk_rank, priority, title, created_at, item_due, step_due, due,
    claimed_by)
SELECT i.tenant_id, 'h:' || d.actor_id, i.id, i.id, i.revision, i.state, i.kind,
    i.template_id, i.risk, inbox_risk_rank(i.risk), i.priority, i.title, i.created_at,
    i.due_at, NULL, coalesce(i.due_at, '9999-12-31T00:00:00+00:00'::timestamptz), NULL
FROM (SELECT DISTINCT item_id, actor_id FROM decision) d
JOIN workflow_item i ON i.id = d.item_id
ON CONFLICT (step_id, principal) DO NOTHING;
"""

BACKWARDS = """
DELETE FROM inbox_entry WHERE principal LIKE 'q:%' OR principal LIKE 'h:%';
DROP TRIGGER IF EXISTS inbox_entry_history ON decision;
DROP TRIGGER IF EXISTS inbox_entry_requests ON workflow_item;
DROP FUNCTION IF EXISTS inbox_entry_history_sync();
DROP FUNCTION IF EXISTS inbox_entry_requests_sync();
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

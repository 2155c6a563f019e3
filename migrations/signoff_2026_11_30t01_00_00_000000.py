"""Inbox entries: one row per principal per active step, kept by triggers, indexed by sort key."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from signoff.db.migrate import run_sql_script

ID = "2026-11-30T01:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "inbox entries"

# An inbox page must be an index range scan from its cursor, whatever the size of the inbox.
# `inbox_entry` holds one row per (active step, principal the step names): `u:<user>` for a
# named user or a delegate, `g:<group>`, `r:<role>`, with copies of the item columns every
# filter and sort reads. A reader's inbox is the merge of one index range per principal key
# (their user, groups and roles); see db/inbox.py.
#
# Triggers keep the rows in the same transaction as the change of a step or its item, for every
# writer (the engine, a migration, a bulk load): a step's rows are rewritten when its state,
# assignees, deadline or claim change; an item's copies when its state, revision, priority,
# title or deadline change. No foreign keys: they would share-lock the item and step rows on
# every insert, and the triggers remove the rows with the step anyway.
#
# `due` is the entry's deadline: the step's SLA deadline, else the item's, else 9999-12-31 (the
# sentinel that sorts items without a deadline last and keeps keyset comparisons free of NULLs).
FORWARDS = """
CREATE TABLE inbox_entry (
    tenant_id    text NOT NULL,
    principal    text NOT NULL,
    step_id      uuid NOT NULL,
    item_id      uuid NOT NULL,
    revision     integer NOT NULL,
    item_state   text NOT NULL,
    kind         text NOT NULL,
    template_id  uuid NOT NULL,
    risk         text NOT NULL,
    risk_rank    smallint NOT NULL,
    priority     integer NOT NULL,
    title        text NOT NULL,
    created_at   timestamptz NOT NULL,
    item_due     timestamptz,
    step_due     timestamptz,
    due          timestamptz NOT NULL,
    claimed_by   text,
    PRIMARY KEY (step_id, principal)
) WITH (fillfactor = 90, autovacuum_vacuum_threshold = 1000,
        autovacuum_vacuum_scale_factor = 0, autovacuum_analyze_threshold = 5000,
        autovacuum_analyze_scale_factor = 0.05);
CREATE INDEX inbox_entry_due ON inbox_entry (tenant_id, principal, due, item_id);
CREATE INDEX inbox_entry_priority ON inbox_entry (tenant_id, principal, priority, item_id);
CREATE INDEX inbox_entry_risk ON inbox_entry (tenant_id, principal, risk_rank, item_id);
CREATE INDEX inbox_entry_created ON inbox_entry (tenant_id, principal, created_at, item_id);
CREATE INDEX inbox_entry_item ON inbox_entry (item_id, principal);

CREATE FUNCTION inbox_risk_rank(risk text) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (CASE risk WHEN 'critical' THEN 3 WHEN 'high' THEN 2 WHEN 'medium' THEN 1
            ELSE 0 END)::smallint
$$;

-- The principal keys a step's assignees name: users and delegates as `u:`, groups `g:`,
-- roles `r:`.
CREATE FUNCTION inbox_principals(assignees jsonb) RETURNS SETOF text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 'u:' || u FROM jsonb_array_elements_text(
        CASE WHEN jsonb_typeof(assignees -> 'users') = 'array'
             THEN assignees -> 'users' ELSE '[]'::jsonb END) AS u
    UNION
    SELECT 'u:' || d FROM jsonb_object_keys(
        CASE WHEN jsonb_typeof(assignees -> 'delegates') = 'object'
             THEN assignees -> 'delegates' ELSE '{}'::jsonb END) AS d
    UNION
    SELECT 'g:' || g FROM jsonb_array_elements_text(
        CASE WHEN jsonb_typeof(assignees -> 'groups') = 'array'
             THEN assignees -> 'groups' ELSE '[]'::jsonb END) AS g
    UNION
    SELECT 'r:' || r FROM jsonb_array_elements_text(
        CASE WHEN jsonb_typeof(assignees -> 'roles') = 'array'
             THEN assignees -> 'roles' ELSE '[]'::jsonb END) AS r
$$;

CREATE FUNCTION inbox_entry_step_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM inbox_entry WHERE step_id = OLD.id;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.state = 'active' THEN
        INSERT INTO inbox_entry (tenant_id, principal, step_id, item_id, revision, item_state,
            kind, template_id, risk, risk_rank, priority, title, created_at, item_due, step_due,
            due, claimed_by)
        SELECT NEW.tenant_id, p.principal, NEW.id, i.id, i.revision, i.state, i.kind,
            i.template_id, i.risk, inbox_risk_rank(i.risk), i.priority, i.title, i.created_at,
            i.due_at, NEW.due_at,
            coalesce(NEW.due_at, i.due_at, '9999-12-31T00:00:00+00:00'::timestamptz),
            NEW.claimed_by
        FROM workflow_item i, inbox_principals(NEW.assignees) AS p(principal)
        WHERE i.id = NEW.item_id;
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION inbox_entry_item_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE inbox_entry SET revision = NEW.revision, item_state = NEW.state, risk = NEW.risk,
        risk_rank = inbox_risk_rank(NEW.risk), priority = NEW.priority, title = NEW.title,
        item_due = NEW.due_at,
        due = coalesce(step_due, NEW.due_at, '9999-12-31T00:00:00+00:00'::timestamptz)
    WHERE item_id = NEW.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER inbox_entry_step_insert AFTER INSERT ON step
    FOR EACH ROW WHEN (NEW.state = 'active') EXECUTE FUNCTION inbox_entry_step_sync();
CREATE TRIGGER inbox_entry_step_update AFTER UPDATE ON step
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state
        OR OLD.assignees IS DISTINCT FROM NEW.assignees
        OR OLD.due_at IS DISTINCT FROM NEW.due_at
        OR OLD.claimed_by IS DISTINCT FROM NEW.claimed_by
        OR OLD.item_id IS DISTINCT FROM NEW.item_id)
    EXECUTE FUNCTION inbox_entry_step_sync();
CREATE TRIGGER inbox_entry_step_delete AFTER DELETE ON step
    FOR EACH ROW WHEN (OLD.state = 'active') EXECUTE FUNCTION inbox_entry_step_sync();
CREATE TRIGGER inbox_entry_item_update AFTER UPDATE ON workflow_item
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state
        OR OLD.revision IS DISTINCT FROM NEW.revision
        OR OLD.priority IS DISTINCT FROM NEW.priority
        OR OLD.title IS DISTINCT FROM NEW.title
        OR OLD.risk IS DISTINCT FROM NEW.risk
        OR OLD.due_at IS DISTINCT FROM NEW.due_at)
    EXECUTE FUNCTION inbox_entry_item_sync();

INSERT INTO inbox_entry (tenant_id, principal, step_id, item_id, revision, item_state, kind,
    template_id, risk, risk_rank, priority, title, created_at, item_due, step_due, due,
    claimed_by)
SELECT s.tenant_id, p.principal, s.id, i.id, i.revision, i.state, i.kind, i.template_id,
    i.risk, inbox_risk_rank(i.risk), i.priority, i.title, i.created_at, i.due_at, s.due_at,
    coalesce(s.due_at, i.due_at, '9999-12-31T00:00:00+00:00'::timestamptz), s.claimed_by
FROM step s JOIN workflow_item i ON i.id = s.item_id,
    inbox_principals(s.assignees) AS p(principal)
WHERE s.state = 'active';

-- The entries replace the GIN match over active steps' assignees.
DROP INDEX IF EXISTS step_active_assignees;
"""

BACKWARDS = """
CREATE INDEX IF NOT EXISTS step_active_assignees
    ON step USING gin (assignees)
    WHERE state = 'active';
DROP TRIGGER IF EXISTS inbox_entry_item_update ON workflow_item;
DROP TRIGGER IF EXISTS inbox_entry_step_delete ON step;
DROP TRIGGER IF EXISTS inbox_entry_step_update ON step;
DROP TRIGGER IF EXISTS inbox_entry_step_insert ON step;
DROP FUNCTION IF EXISTS inbox_entry_item_sync();
DROP FUNCTION IF EXISTS inbox_entry_step_sync();
DROP FUNCTION IF EXISTS inbox_principals(jsonb);
DROP FUNCTION IF EXISTS inbox_risk_rank(text);
DROP TABLE IF EXISTS inbox_entry;
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

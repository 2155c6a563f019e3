"""What the approval analytics' two costliest figures need, stored where they read it
(docs/operations/analytics.md, "Cost")."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from signoff.db.migrate import run_sql_script

ID = "2026-12-04T01:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "analytics: step activation time on decisions, item decisions kept apart"

# - decision.step_activated_at: when the step the decision is about was last activated
#   (`step.activate`, `step.resubmit` or `step.reopen`, at or before the decision). A
#   reviewer's response time was a probe of the activation index per decision; the engine
#   now writes it with the decision, and the backfill computes it by that same definition.
# - item_decision: one row per `item.approve` / `item.reject` event with the item's
#   submission time and template, kept by a trigger on the audit trail (so every path that
#   decides an item keeps it, in the transaction of its audit event). Time to decision reads
#   one index range of it instead of joining every decision event of the period to its item.
FORWARDS = """
ALTER TABLE decision ADD COLUMN step_activated_at timestamptz;
UPDATE decision d SET step_activated_at = (
    SELECT max(a.occurred_at) FROM audit_event a
    WHERE a.step_id = d.step_id AND a.tenant_id = d.tenant_id
      AND a.action IN ('step.activate', 'step.resubmit', 'step.reopen')
      AND a.occurred_at <= d.created_at);

CREATE TABLE item_decision (
    tenant_id     text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    seq           bigint NOT NULL,
    item_id       uuid NOT NULL,
    template_id   uuid NOT NULL,
    submitted_at  timestamptz NOT NULL,
    decided_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX item_decision_period ON item_decision (tenant_id, decided_at)
    INCLUDE (template_id, submitted_at);
ALTER TABLE item_decision SET (autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_vacuum_insert_threshold = 10000, autovacuum_analyze_scale_factor = 0.02);

CREATE FUNCTION signoff_keep_item_decision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO item_decision (tenant_id, seq, item_id, template_id, submitted_at, decided_at)
    SELECT NEW.tenant_id, NEW.seq, i.id, i.template_id, i.created_at, NEW.occurred_at
    FROM workflow_item i WHERE i.id = NEW.item_id AND i.tenant_id = NEW.tenant_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER audit_event_item_decision AFTER INSERT ON audit_event
    FOR EACH ROW WHEN (NEW.action IN ('item.approve', 'item.reject'))
    EXECUTE FUNCTION signoff_keep_item_decision();

INSERT INTO item_decision (tenant_id, seq, item_id, template_id, submitted_at, decided_at)
SELECT e.tenant_id, e.seq, i.id, i.template_id, i.created_at, e.occurred_at
FROM audit_event e JOIN workflow_item i ON i.id = e.item_id AND i.tenant_id = e.tenant_id
WHERE e.action IN ('item.approve', 'item.reject');

SELECT signoff_isolate_tenant_tables();
"""

BACKWARDS = """
DROP TRIGGER IF EXISTS audit_event_item_decision ON audit_event;
DROP FUNCTION IF EXISTS signoff_keep_item_decision();
DROP TABLE IF EXISTS item_decision;
ALTER TABLE decision DROP COLUMN IF EXISTS step_activated_at;
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

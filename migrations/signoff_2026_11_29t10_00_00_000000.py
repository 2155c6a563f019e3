"""Seats on steps, assessed and declared risk, held steps, and immutable published templates."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from signoff.db.migrate import run_sql_script

ID = "2026-11-29T10:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "seats, held steps, template immutability"

# - step.seats: the quorum's seats, fixed when the step activates (holder, open group/role,
#   delegate, and the vote that fills it); step.needed: the approvals that decide it.
# - step.declared_risk: the risk an agent declared for a plan step (step.risk is the one the
#   system assessed); step.waived: upstream steps whose failure a person resolved by hand;
#   step.hold: why a step is held for a person (ask_user), and since when.
# - decision.seat: the seat a vote filled; timer kind `hold`: the timeout of a held step.
# - template_published_is_immutable: a published version never changes, whatever the
#   application does: UPDATE may only retire it, DELETE is refused.
FORWARDS = """
ALTER TABLE step ADD COLUMN IF NOT EXISTS seats jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE step ADD COLUMN IF NOT EXISTS needed integer NOT NULL DEFAULT 1;
ALTER TABLE step ADD COLUMN IF NOT EXISTS declared_risk text;
ALTER TABLE step ADD COLUMN IF NOT EXISTS waived text[] NOT NULL DEFAULT '{}';
ALTER TABLE step ADD COLUMN IF NOT EXISTS hold jsonb;
ALTER TABLE decision ADD COLUMN IF NOT EXISTS seat integer;
ALTER TABLE timer DROP CONSTRAINT IF EXISTS timer_kind_check;
ALTER TABLE timer ADD CONSTRAINT timer_kind_check
    CHECK (kind IN ('sla', 'reminder', 'deadline_risk', 'escalation', 'hold'));

CREATE OR REPLACE FUNCTION template_published_is_immutable() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'template % version % is published and cannot be deleted',
            OLD.key, OLD.version USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.status = 'retired' AND (NEW.id, NEW.tenant_id, NEW.key, NEW.version, NEW.name,
            NEW.kind, NEW.definition, NEW.created_by, NEW.created_at, NEW.published_at)
        IS NOT DISTINCT FROM (OLD.id, OLD.tenant_id, OLD.key, OLD.version, OLD.name, OLD.kind,
            OLD.definition, OLD.created_by, OLD.created_at, OLD.published_at) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'template % version % is published and cannot change', OLD.key, OLD.version
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS template_published_is_immutable ON template;
CREATE TRIGGER template_published_is_immutable
    BEFORE UPDATE OR DELETE ON template
    FOR EACH ROW WHEN (OLD.status = 'published')
    EXECUTE FUNCTION template_published_is_immutable();
"""

BACKWARDS = """
DROP TRIGGER IF EXISTS template_published_is_immutable ON template;
DROP FUNCTION IF EXISTS template_published_is_immutable();
ALTER TABLE timer DROP CONSTRAINT IF EXISTS timer_kind_check;
ALTER TABLE timer ADD CONSTRAINT timer_kind_check
    CHECK (kind IN ('sla', 'reminder', 'deadline_risk', 'escalation'));
ALTER TABLE decision DROP COLUMN IF EXISTS seat;
ALTER TABLE step DROP COLUMN IF EXISTS hold;
ALTER TABLE step DROP COLUMN IF EXISTS waived;
ALTER TABLE step DROP COLUMN IF EXISTS declared_risk;
ALTER TABLE step DROP COLUMN IF EXISTS needed;
ALTER TABLE step DROP COLUMN IF EXISTS seats;
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

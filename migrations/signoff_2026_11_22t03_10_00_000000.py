"""Timers (SLA deadlines, reminders, deadline-risk warnings, escalations) and business calendars."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from signoff.db.migrate import run_sql_script

ID = "2026-11-22T03:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "timers and business calendars"

FORWARDS = """
CREATE TABLE timer (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    item_id     uuid NOT NULL REFERENCES workflow_item(id) ON DELETE RESTRICT,
    step_id     uuid NOT NULL REFERENCES step(id) ON DELETE RESTRICT,
    kind        text NOT NULL CHECK (kind IN ('sla', 'reminder', 'deadline_risk', 'escalation')),
    level       integer,
    due_at      timestamptz NOT NULL,
    -- a fresh token per arming: a job holding an older token finds nothing to do
    token       text NOT NULL,
    status      text NOT NULL CHECK (status IN ('armed', 'fired', 'cancelled')),
    payload     jsonb NOT NULL DEFAULT '{}'::jsonb,
    fired_at    timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- the sweeper's scan: armed timers by due time
CREATE INDEX timer_armed_due ON timer (due_at) WHERE status = 'armed';
-- cancelling a step's timers when it is decided
CREATE INDEX timer_armed_step ON timer (step_id) WHERE status = 'armed';

CREATE TABLE business_calendar (
    tenant_id   text PRIMARY KEY REFERENCES tenant(id) ON DELETE RESTRICT,
    timezone    text NOT NULL,
    workdays    integer[] NOT NULL,
    day_start   time NOT NULL,
    day_end     time NOT NULL,
    holidays    date[] NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL DEFAULT now()
);
"""

BACKWARDS = """
DROP TABLE IF EXISTS business_calendar, timer;
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

"""Alert rules as data, and their alerts (docs/operations/alerts.md)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from signoff.db.migrate import run_sql_script

ID = "2026-12-01T04:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "alert rules and alerts"

# A rule's row holds where its episode stands (`firing`, `episode`): the evaluator locks it to
# decide, so two evaluators never raise two alerts for one episode, and (rule, episode) is
# unique on `alert` besides. The row is written only when an episode starts or ends, never by
# an evaluation that changes nothing (no hot row).
FORWARDS = """
CREATE TABLE alert_rule (
    id              uuid PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    name            text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('stuck_items', 'rejection_rate', 'backlog',
                                                  'breach_rate')),
    template_key    text,
    threshold       double precision NOT NULL,
    window_seconds  integer,
    min_samples     integer NOT NULL DEFAULT 1,
    notify          jsonb NOT NULL,
    enabled         boolean NOT NULL DEFAULT true,
    firing          boolean NOT NULL DEFAULT false,
    episode         integer NOT NULL DEFAULT 0,
    version         integer NOT NULL DEFAULT 1,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE INDEX alert_rule_enabled ON alert_rule (tenant_id) WHERE enabled;

CREATE TABLE alert (
    id               uuid PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    rule_id          uuid NOT NULL REFERENCES alert_rule(id) ON DELETE RESTRICT,
    episode          integer NOT NULL,
    kind             text NOT NULL,
    value            double precision NOT NULL,
    samples          integer NOT NULL,
    threshold        double precision NOT NULL,
    fired_at         timestamptz NOT NULL,
    cleared_at       timestamptz,
    acknowledged_by  text,
    acknowledged_at  timestamptz,
    acknowledgement  text,
    UNIQUE (rule_id, episode)
);
CREATE INDEX alert_tenant_fired ON alert (tenant_id, fired_at DESC, id DESC);
CREATE INDEX alert_open ON alert (rule_id) WHERE cleared_at IS NULL;

SELECT signoff_isolate_tenant_tables();
"""

BACKWARDS = """
DROP TABLE IF EXISTS alert, alert_rule;
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

"""Decision links: the record of each link that decided, so a link decides at most once."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from signoff.db.migrate import run_sql_script

ID = "2026-12-01T03:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "decision link uses"

# No foreign keys: each would share-lock the tenant or step row on every insert; a row is
# written only by a decision on its step, in that decision's transaction.
FORWARDS = """
CREATE TABLE decision_link_use (
    tenant_id  text NOT NULL,
    -- shared by the approve and reject links of one message: using one uses both
    link_id    uuid NOT NULL,
    step_id    uuid NOT NULL,
    user_id    text NOT NULL,
    outcome    text NOT NULL CHECK (outcome IN ('approve', 'reject')),
    used_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, link_id)
);

SELECT signoff_isolate_tenant_tables();
"""

BACKWARDS = """
DROP TABLE IF EXISTS decision_link_use;
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

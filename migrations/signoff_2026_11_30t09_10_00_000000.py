"""Tenant isolation for the retention and redaction tables (created after the row-level
security migration): the same policy as every other tenant table, and the application role's
privileges on them."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from signoff.db.migrate import run_sql_script

ID = "2026-11-30T09:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "row-level security on the retention and redaction tables"

FORWARDS = """
SELECT signoff_isolate_tenant_tables();
"""

BACKWARDS = """
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['retention_policy', 'legal_hold', 'item_retention', 'redaction_rule']
    LOOP
        EXECUTE format('DROP POLICY IF EXISTS tenant_isolation ON %I', t);
        EXECUTE format('ALTER TABLE %I NO FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I DISABLE ROW LEVEL SECURITY', t);
    END LOOP;
END
$$;
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

"""Tenant isolation in the database: row-level security and the application's role.

- `signoff_app` (NOLOGIN): the privileges of the application. The role the API and workers log
  in as is a member of it, and is neither a superuser nor the owner of the tables, so the
  policies below bind it. The role is created once per cluster; several databases (and several
  migrations running at once) share it, so its creation tolerates a concurrent twin.
- Every table with a `tenant_id` column gets row-level security, ENABLEd and FORCEd (so even
  the owner is bound), with one policy: a row is visible and writable only when its tenant is
  the transaction's `signoff.tenant` setting (set with `set_config(..., true)` at BEGIN by
  `signoff.db.engine`), or when the transaction declared `signoff.all_tenants = 'on'`, the one
  documented path of the jobs that span tenants (the sweeper, the audit check). Without either
  setting a transaction sees no row and can write none.
- `tenant` (keyed by `id`) and `notification_attempt` (tenant through its delivery) get the same
  rule in their own terms.
- `signoff_isolate_tenant_tables()` applies all of this to every table that has a `tenant_id`
  column and grants the application role its privileges; it is idempotent, and
  `signoff.db.migrate.apply_migrations` calls it after every run, so tables added by later
  migrations are isolated too. tests/audit/test_row_level_security.py fails for any table
  with a `tenant_id` column that is not isolated.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from signoff.db.migrate import run_sql_script

ID = "2026-11-30T05:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "row-level security on every tenant table; the application role"

FORWARDS = r"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'signoff_app') THEN
        CREATE ROLE signoff_app NOLOGIN;
    END IF;
EXCEPTION
    -- another database's migration created it at the same moment
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

CREATE FUNCTION signoff_isolate_tenant_tables() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    FOR t IN
        SELECT c.table_name FROM information_schema.columns c
        JOIN information_schema.tables tb
            ON tb.table_schema = c.table_schema AND tb.table_name = c.table_name
        WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id'
            AND tb.table_type = 'BASE TABLE'
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        IF NOT EXISTS (
            SELECT 1 FROM pg_policies
            WHERE schemaname = 'public' AND tablename = t AND policyname = 'tenant_isolation'
        ) THEN
            EXECUTE format(
                'CREATE POLICY tenant_isolation ON %I '
                'USING (tenant_id = current_setting(''signoff.tenant'', true) '
                '    OR current_setting(''signoff.all_tenants'', true) = ''on'') '
                'WITH CHECK (tenant_id = current_setting(''signoff.tenant'', true) '
                '    OR current_setting(''signoff.all_tenants'', true) = ''on'')', t);
        END IF;
    END LOOP;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO signoff_app;
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO signoff_app;
    -- the application reads which migrations were applied; it changes none
    REVOKE INSERT, UPDATE, DELETE ON migration FROM signoff_app;
END
$$;

SELECT signoff_isolate_tenant_tables();

ALTER TABLE tenant ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant
    USING (id = current_setting('signoff.tenant', true)
        OR current_setting('signoff.all_tenants', true) = 'on')
    WITH CHECK (id = current_setting('signoff.tenant', true)
        OR current_setting('signoff.all_tenants', true) = 'on');

-- an attempt belongs to the tenant of its delivery (whose own policy applies in the subquery)
ALTER TABLE notification_attempt ENABLE ROW LEVEL SECURITY;
ALTER TABLE notification_attempt FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notification_attempt
    USING (EXISTS (SELECT 1 FROM notification_delivery d WHERE d.id = delivery_id))
    WITH CHECK (EXISTS (SELECT 1 FROM notification_delivery d WHERE d.id = delivery_id));
"""

BACKWARDS = r"""
DO $$
DECLARE
    t text;
BEGIN
    FOR t IN SELECT tablename FROM pg_policies
        WHERE schemaname = 'public' AND policyname = 'tenant_isolation'
    LOOP
        EXECUTE format('DROP POLICY tenant_isolation ON %I', t);
        EXECUTE format('ALTER TABLE %I NO FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I DISABLE ROW LEVEL SECURITY', t);
    END LOOP;
END
$$;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM signoff_app;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM signoff_app;
DROP FUNCTION IF EXISTS signoff_isolate_tenant_tables();
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

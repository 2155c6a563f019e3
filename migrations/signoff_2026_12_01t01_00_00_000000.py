"""Permissions as data: each tenant's grants of permissions to roles, tenant-wide or for one
template's items (see docs/reference/permissions.md). A permission without a row keeps the
deployment's default, so existing tenants behave as before."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from signoff.db.migrate import run_sql_script

ID = "2026-12-01T01:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "permission grants per tenant and template"

FORWARDS = """
CREATE TABLE permission_grant (
    id            uuid PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    -- '' is the tenant's grant; a template key replaces it for that template's items
    template_key  text NOT NULL DEFAULT '',
    permission    text NOT NULL,
    -- role names, '*' (every user of the tenant) or '@requester'; empty grants to nobody
    grantees      text[] NOT NULL,
    updated_by    text NOT NULL,
    updated_at    timestamptz NOT NULL,
    UNIQUE (tenant_id, template_key, permission)
);

SELECT signoff_isolate_tenant_tables();
"""

BACKWARDS = """
DROP TABLE IF EXISTS permission_grant;
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

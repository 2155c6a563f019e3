"""Retention: policies per tenant and template, legal holds, what retention did to each item,
and the redaction rules of payload fields."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from signoff.db.migrate import run_sql_script

ID = "2026-11-30T09:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "retention policies, legal holds, redaction rules"

FORWARDS = """
CREATE TABLE retention_policy (
    id            uuid PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    -- '' is the tenant's default; a template key overrides it for that template's items
    template_key  text NOT NULL DEFAULT '',
    days          integer NOT NULL CHECK (days BETWEEN 1 AND 36500),
    action        text NOT NULL CHECK (action IN ('redact', 'purge')),
    updated_by    text NOT NULL,
    updated_at    timestamptz NOT NULL,
    UNIQUE (tenant_id, template_key)
);

-- An item on legal hold is never touched by retention. Releasing a hold deletes its row;
-- the trail of both is in the audit events (item.legal_hold_placed / _released).
CREATE TABLE legal_hold (
    item_id    uuid PRIMARY KEY REFERENCES workflow_item(id) ON DELETE RESTRICT,
    tenant_id  text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    reason     text NOT NULL,
    placed_by  text NOT NULL,
    placed_at  timestamptz NOT NULL
);

-- What retention did to an item (once): its content was redacted or purged.
CREATE TABLE item_retention (
    item_id         uuid PRIMARY KEY REFERENCES workflow_item(id) ON DELETE RESTRICT,
    tenant_id       text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    action          text NOT NULL CHECK (action IN ('redact', 'purge')),
    -- the policy applied: '' for the tenant's default, else the template key
    policy_key      text NOT NULL,
    days            integer NOT NULL,
    -- sha256 of the canonical JSON of the payload that was removed
    payload_sha256  text NOT NULL,
    applied_at      timestamptz NOT NULL
);

-- A payload field (a dotted path) that only the listed roles may see.
CREATE TABLE redaction_rule (
    id            uuid PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    -- '' applies to every template
    template_key  text NOT NULL DEFAULT '',
    path          text NOT NULL,
    visible_to    text[] NOT NULL,
    updated_by    text NOT NULL,
    updated_at    timestamptz NOT NULL,
    UNIQUE (tenant_id, template_key, path)
);

-- Retention looks for decided items by the time they last changed.
CREATE INDEX IF NOT EXISTS workflow_item_retention ON workflow_item (tenant_id, updated_at)
    WHERE state IN ('approved', 'rejected', 'expired', 'cancelled', 'completed', 'failed',
                    'compensated');
"""

BACKWARDS = """
DROP INDEX IF EXISTS workflow_item_retention;
DROP TABLE IF EXISTS redaction_rule;
DROP TABLE IF EXISTS item_retention;
DROP TABLE IF EXISTS legal_hold;
DROP TABLE IF EXISTS retention_policy;
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

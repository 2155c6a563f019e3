"""Indexes of the approval analytics (docs/operations/analytics.md, "Cost")."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from signoff.db.migrate import run_sql_script

ID = "2026-12-01T04:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "approval analytics indexes"

# - audit_event_analytics: the period's counts, decisions, rejection reasons, escalations and
#   submissions read one range per action (tenant, action, time). Partial: only the actions
#   the analytics count (`domain/analytics.py::COUNTED_ACTIONS`), a small share of the trail.
# - audit_event_activation: a reviewer's response time runs from the latest activation of
#   the step before the decision: one index probe per decision.
# - decision_tenant_time: the decisions of a period.
# - step_tenant_due: the steps whose deadline fell in a period (any state).
# - workflow_item_open_updated: items in review by their last change (stuck items).
FORWARDS = """
CREATE INDEX IF NOT EXISTS audit_event_analytics
    ON audit_event (tenant_id, action, occurred_at)
    WHERE action IN ('item.submitted', 'item.approve', 'item.reject', 'step.approve',
                     'step.reject', 'step.request_changes', 'step.escalate');
CREATE INDEX IF NOT EXISTS audit_event_activation
    ON audit_event (step_id, occurred_at)
    WHERE action IN ('step.activate', 'step.resubmit', 'step.reopen');
CREATE INDEX IF NOT EXISTS decision_tenant_time ON decision (tenant_id, created_at);
CREATE INDEX IF NOT EXISTS step_tenant_due ON step (tenant_id, due_at)
    WHERE due_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS workflow_item_open_updated ON workflow_item (tenant_id, updated_at)
    WHERE state IN ('pending', 'changes_requested');
"""

BACKWARDS = """
DROP INDEX IF EXISTS workflow_item_open_updated;
DROP INDEX IF EXISTS step_tenant_due;
DROP INDEX IF EXISTS decision_tenant_time;
DROP INDEX IF EXISTS audit_event_activation;
DROP INDEX IF EXISTS audit_event_analytics;
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

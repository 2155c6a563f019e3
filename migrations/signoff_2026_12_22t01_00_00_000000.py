"""Indexes for the reads of one item or one step that still ranged over a whole table.

- decision_item: an item's decisions (`items.decisions_of_items`: the item view, the GraphQL
  decisions loader, incident snapshots) were found by the tenant's time index, so reading one
  item read every decision of its tenant.
- timer_step: every timer of a step (`timers.for_step`, the operators' `stepTimers`) was a
  scan of the whole table: the only index by step held armed timers, and fired and cancelled
  ones are kept. It replaces `timer_armed_step`, whose reads (cancelling a step's armed
  timers, the overdue listing) it serves as well, so a timer's writes keep as many indexes.
"""

from signoff.db.migrate import sql_migration

ID = "2026-12-22T01:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "indexes: an item's decisions, a step's timers"

FORWARDS = r"""
CREATE INDEX IF NOT EXISTS decision_item ON decision (item_id, created_at, seq);
CREATE INDEX IF NOT EXISTS timer_step ON timer (step_id, due_at);
DROP INDEX IF EXISTS timer_armed_step;
"""

BACKWARDS = r"""
CREATE INDEX IF NOT EXISTS timer_armed_step ON timer (step_id) WHERE status = 'armed';
DROP INDEX IF EXISTS timer_step;
DROP INDEX IF EXISTS decision_item;
"""

forwards = sql_migration(ID, DESCRIPTION, FORWARDS, BACKWARDS)

"""Per-row copies the approval analytics read with their template (docs/operations/analytics.md,
"Cost"): the figures that are no sums (a median per reviewer, the deadlines of the period's
steps in their current state) read every row of the period, and a template filter joined
each of them to its item. Each copy holds exactly the columns its figure reads, under an
index that covers them:

- `decision_response`: one row per person's decision (never the `system`'s): its time, the
  item's template, the person and the seconds since the step's activation;
- `step_deadline`: one row per step with a deadline: the item's template, `due_at` and
  `decided_at`, as the step has them now.

Triggers keep them in the transaction of the change: statement triggers for inserts and
deletes (one statement however many rows), row triggers for the updates that move a row.
"""

from signoff.db.migrate import sql_migration

ID = "2026-12-10T62:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "analytics: reviewers' decisions and steps' deadlines with their template"

# The copies of `{rows}` (decision's or step's columns).
ADD_RESPONSES = """INSERT INTO decision_response (tenant_id, decision_id, decided_at,
        template_id, actor_id, seconds)
    SELECT d.tenant_id, d.id, d.created_at, i.template_id, d.actor_id,
        extract(epoch FROM d.created_at - d.step_activated_at)::float8
    FROM {rows} d JOIN workflow_item i ON i.id = d.item_id AND i.tenant_id = d.tenant_id
    WHERE d.actor_id <> 'system'"""
ADD_DEADLINES = """INSERT INTO step_deadline (tenant_id, step_id, template_id, due_at, decided_at)
    SELECT s.tenant_id, s.id, i.template_id, s.due_at, s.decided_at
    FROM {rows} s JOIN workflow_item i ON i.id = s.item_id AND i.tenant_id = s.tenant_id
    WHERE s.due_at IS NOT NULL"""

RESPONSE_MOVES = ("tenant_id", "item_id", "actor_id", "created_at", "step_activated_at")
DEADLINE_MOVES = ("tenant_id", "item_id", "due_at", "decided_at")


def copied(copy: str, source: str, key: str, add: str, moves: tuple[str, ...]) -> str:
    """The functions and triggers that keep `copy` (keyed by `key`, the id of a `source` row)
    in step with `source`: `add` inserts the copies of `{rows}`; an update of one of `moves`
    replaces the row's copy."""
    changed = ", ".join(moves)
    old = ", ".join(f"OLD.{c}" for c in moves)
    new = ", ".join(f"NEW.{c}" for c in moves)
    return f"""
CREATE FUNCTION signoff_copy_{copy}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {add.replace("{rows}", "new_rows")};
    ELSE
        DELETE FROM {copy} c USING old_rows o WHERE c.tenant_id = o.tenant_id AND c.{key} = o.id;
    END IF;
    RETURN NULL;
END
$$;
CREATE FUNCTION signoff_move_{copy}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {copy} WHERE tenant_id = OLD.tenant_id AND {key} = OLD.id;
    {add.replace("{rows}", "(SELECT NEW.*)")};
    RETURN NULL;
END
$$;
CREATE TRIGGER {copy}_insert AFTER INSERT ON {source} REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION signoff_copy_{copy}();
CREATE TRIGGER {copy}_delete AFTER DELETE ON {source} REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION signoff_copy_{copy}();
CREATE TRIGGER {copy}_moved AFTER UPDATE OF {changed} ON {source} FOR EACH ROW
    WHEN (({old}) IS DISTINCT FROM ({new}))
    EXECUTE FUNCTION signoff_move_{copy}();
"""


FORWARDS = (
    """
CREATE TABLE decision_response (
    tenant_id    text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    decision_id  uuid NOT NULL,
    decided_at   timestamptz NOT NULL,
    template_id  uuid NOT NULL,
    actor_id     text NOT NULL,
    seconds      float8,
    PRIMARY KEY (tenant_id, decision_id)
);
CREATE INDEX decision_response_period ON decision_response (tenant_id, decided_at)
    INCLUDE (template_id, actor_id, seconds);

CREATE TABLE step_deadline (
    tenant_id    text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    step_id      uuid NOT NULL,
    template_id  uuid NOT NULL,
    due_at       timestamptz NOT NULL,
    decided_at   timestamptz,
    PRIMARY KEY (tenant_id, step_id)
) WITH (fillfactor = 80);
CREATE INDEX step_deadline_period ON step_deadline (tenant_id, due_at)
    INCLUDE (template_id, decided_at);

"""
    + copied("decision_response", "decision", "decision_id", ADD_RESPONSES, RESPONSE_MOVES)
    + copied("step_deadline", "step", "step_id", ADD_DEADLINES, DEADLINE_MOVES)
    + ADD_RESPONSES.replace("{rows}", "decision")
    + """;
"""
    + ADD_DEADLINES.replace("{rows}", "step")
    + """;

SELECT signoff_isolate_tenant_tables();
"""
)

BACKWARDS = """
DROP TRIGGER IF EXISTS step_deadline_moved ON step;
DROP TRIGGER IF EXISTS step_deadline_delete ON step;
DROP TRIGGER IF EXISTS step_deadline_insert ON step;
DROP TRIGGER IF EXISTS decision_response_moved ON decision;
DROP TRIGGER IF EXISTS decision_response_delete ON decision;
DROP TRIGGER IF EXISTS decision_response_insert ON decision;
DROP FUNCTION IF EXISTS signoff_move_step_deadline();
DROP FUNCTION IF EXISTS signoff_copy_step_deadline();
DROP FUNCTION IF EXISTS signoff_move_decision_response();
DROP FUNCTION IF EXISTS signoff_copy_decision_response();
DROP TABLE IF EXISTS step_deadline;
DROP TABLE IF EXISTS decision_response;
"""

forwards = sql_migration(ID, DESCRIPTION, FORWARDS, BACKWARDS)

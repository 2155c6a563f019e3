"""Maintained aggregates of the approval analytics (docs/operations/analytics.md, "Cost").

- `analytics_day`: per tenant, UTC day, template, counted action (and the rejection's reason,
  the escalation's rung), how many audit events. A statement trigger on the audit trail adds
  each appended statement's events, grouped, in key order (two transactions take the rows'
  locks in one order; the append already holds the tenant's audit lock); a redaction (the one
  UPDATE the trail allows) moves its event from its old reason or rung to the new one. The
  period's counts read the whole UTC days from here and the partial days at its two ends from
  the trail, so any period answers from at most two days of events.
- `item_tally`: per item, its template, its submission time (`workflow_item.created_at`, as
  time to decision reads it), its steps, the steps a person decided on and people's
  decisions: decision fatigue reads one index range of it. The item's row is written with the
  item (in its transaction, so a later change always finds it, whenever the audit trail
  numbers the submission's event) and recounted from `step` and `decision` whenever a
  statement inserts or deletes either for the item (or moves a decision), under the row's
  lock, so that a concurrent change is counted by whichever commits second.
"""

from signoff.db.migrate import sql_migration

ID = "2026-12-10T61:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "analytics: daily counts and per-item tallies kept by triggers"

COUNTED = """'item.submitted', 'item.approve', 'item.reject', 'step.approve', 'step.reject',
    'step.request_changes', 'step.escalate'"""

# Add the counted events of `{events}` (audit_event's columns and a `sign`) to their days, in
# key order (concurrent appends take the rows' locks in one order).
ADD_EVENTS = (
    """INSERT INTO analytics_day AS a (tenant_id, day, action, template_id, reason, level, n)
        SELECT c.tenant_id, c.day, c.action, c.template_id, c.reason, c.level, sum(c.sign)
        FROM (SELECT e.tenant_id, (e.occurred_at AT TIME ZONE 'UTC')::date AS day, e.action,
                     i.template_id,
                     CASE WHEN e.action = 'step.reject' THEN e.reason END AS reason,
                     CASE WHEN e.action = 'step.escalate'
                               AND jsonb_typeof(e.data -> 'level') = 'number'
                          THEN (e.data ->> 'level')::numeric::int END AS level,
                     e.sign
              FROM ({events}) e
              LEFT JOIN workflow_item i ON i.id = e.item_id AND i.tenant_id = e.tenant_id
              WHERE e.action IN ("""
    + COUNTED
    + """)) c
        GROUP BY 1, 2, 3, 4, 5, 6
        HAVING sum(c.sign) <> 0
        ORDER BY 1, 2, 3, 4, md5(c.reason), 6
        ON CONFLICT (tenant_id, day, action, template_id, md5(reason), level)
        DO UPDATE SET n = a.n + excluded.n"""
)

# A tally for each item of `{items}` (workflow_item's columns), submitted at its creation.
ADD_TALLIES = """INSERT INTO item_tally (tenant_id, item_id, template_id, submitted_at, steps,
        decision_steps, human_decisions)
    SELECT i.tenant_id, i.id, i.template_id, i.created_at, c.steps, c.decision_steps,
        c.human_decisions
    FROM {items} i CROSS JOIN LATERAL signoff_item_tally_counts(i.id) c
    ORDER BY i.tenant_id, i.id
    ON CONFLICT (tenant_id, item_id) DO NOTHING"""

FORWARDS = (
    """
-- The backfills below look rows up by item: plan them with the tables' real statistics.
ANALYZE workflow_item, step, decision, audit_event;

CREATE TABLE analytics_day (
    tenant_id    text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    day          date NOT NULL,
    action       text NOT NULL,
    template_id  uuid,
    reason       text,
    level        int,
    n            bigint NOT NULL
) WITH (fillfactor = 50);
-- reasons run to 4,000 characters: the key holds their digest (md5 is no security here).
CREATE UNIQUE INDEX analytics_day_key ON analytics_day
    (tenant_id, day, action, template_id, md5(reason), level) NULLS NOT DISTINCT;

-- An event counts on its UTC day, under its item's template, with the rejection's reason and
-- the escalation's rung (as the trail's own statements read them); a redaction takes the old
-- row's contribution away (sign -1) and adds the new one's.
CREATE FUNCTION signoff_count_analytics_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        """
    + ADD_EVENTS.replace("{events}", "SELECT *, 1 AS sign FROM new_events")
    + """;
    ELSE
        """
    + ADD_EVENTS.replace(
        "{events}",
        "SELECT *, -1 AS sign FROM old_events UNION ALL SELECT *, 1 AS sign FROM new_events",
    )
    + """;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER audit_event_analytics_day AFTER INSERT ON audit_event
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION signoff_count_analytics_events();
CREATE TRIGGER audit_event_analytics_day_redacted AFTER UPDATE ON audit_event
    REFERENCING OLD TABLE AS old_events NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION signoff_count_analytics_events();

"""
    + ADD_EVENTS.replace("{events}", "SELECT *, 1 AS sign FROM audit_event")
    + """;

CREATE TABLE item_tally (
    tenant_id        text NOT NULL REFERENCES tenant(id) ON DELETE RESTRICT,
    item_id          uuid NOT NULL,
    template_id      uuid NOT NULL,
    submitted_at     timestamptz NOT NULL,
    steps            int NOT NULL,
    decision_steps   int NOT NULL,
    human_decisions  int NOT NULL,
    PRIMARY KEY (tenant_id, item_id)
) WITH (fillfactor = 70);
CREATE INDEX item_tally_period ON item_tally (tenant_id, submitted_at)
    INCLUDE (template_id, steps, decision_steps, human_decisions);

-- The item's steps, the steps a person (not 'system') decided on, and people's decisions.
-- (By item id alone, which `step_item_id_key_key` leads with: item ids are unique across
-- tenants, and a tenant condition let plans made without statistics combine the tenant's
-- whole index range with the item's.)
CREATE FUNCTION signoff_item_tally_counts(p_item uuid,
    OUT steps int, OUT decision_steps int, OUT human_decisions int)
LANGUAGE sql STABLE AS $$
    SELECT (SELECT count(*) FROM step s WHERE s.item_id = p_item),
        count(DISTINCT d.step_id), count(*)
    FROM step s JOIN decision d ON d.step_id = s.id AND d.actor_id <> 'system'
    WHERE s.item_id = p_item
$$;

CREATE FUNCTION signoff_tally_new_items() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    """
    + ADD_TALLIES.replace("{items}", "new_rows")
    + """;
    RETURN NULL;
END
$$;
CREATE TRIGGER workflow_item_tally_insert AFTER INSERT ON workflow_item
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION signoff_tally_new_items();
CREATE FUNCTION signoff_tally_moved_item() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE item_tally SET submitted_at = NEW.created_at, template_id = NEW.template_id
    WHERE tenant_id = NEW.tenant_id AND item_id = NEW.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER workflow_item_tally_moved AFTER UPDATE OF created_at, template_id
    ON workflow_item FOR EACH ROW
    WHEN ((OLD.created_at, OLD.template_id) IS DISTINCT FROM (NEW.created_at, NEW.template_id))
    EXECUTE FUNCTION signoff_tally_moved_item();

-- Recount the tallies of the items a statement changed: lock their rows first (in key
-- order), then count in a statement of its own, whose snapshot sees whatever a concurrent
-- change committed while this one waited for the lock.
CREATE FUNCTION signoff_recount_item_tallies(p_items jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM item_tally t
    JOIN jsonb_to_recordset(p_items) AS x(tenant_id text, item_id uuid)
        ON t.tenant_id = x.tenant_id AND t.item_id = x.item_id
    ORDER BY t.tenant_id, t.item_id FOR UPDATE OF t;
    UPDATE item_tally t SET steps = c.steps, decision_steps = c.decision_steps,
        human_decisions = c.human_decisions
    FROM jsonb_to_recordset(p_items) AS x(tenant_id text, item_id uuid)
    CROSS JOIN LATERAL signoff_item_tally_counts(x.item_id) c
    WHERE t.tenant_id = x.tenant_id AND t.item_id = x.item_id
      AND (t.steps, t.decision_steps, t.human_decisions)
          IS DISTINCT FROM (c.steps, c.decision_steps, c.human_decisions);
END
$$;

CREATE FUNCTION signoff_tally_changed_rows() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    items jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT jsonb_agg(DISTINCT jsonb_build_object('tenant_id', r.tenant_id,
                                                     'item_id', r.item_id))
        INTO items FROM new_rows r
        WHERE EXISTS (SELECT 1 FROM item_tally t
                      WHERE t.tenant_id = r.tenant_id AND t.item_id = r.item_id);
    ELSE
        SELECT jsonb_agg(DISTINCT jsonb_build_object('tenant_id', r.tenant_id,
                                                     'item_id', r.item_id))
        INTO items FROM old_rows r
        WHERE EXISTS (SELECT 1 FROM item_tally t
                      WHERE t.tenant_id = r.tenant_id AND t.item_id = r.item_id);
    END IF;
    IF items IS NOT NULL THEN
        PERFORM signoff_recount_item_tallies(items);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION signoff_tally_moved_decision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM signoff_recount_item_tallies(jsonb_build_array(
        jsonb_build_object('tenant_id', OLD.tenant_id, 'item_id', OLD.item_id),
        jsonb_build_object('tenant_id', NEW.tenant_id, 'item_id', NEW.item_id)));
    RETURN NULL;
END
$$;

CREATE TRIGGER step_item_tally_insert AFTER INSERT ON step
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION signoff_tally_changed_rows();
CREATE TRIGGER step_item_tally_delete AFTER DELETE ON step
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION signoff_tally_changed_rows();
CREATE TRIGGER decision_item_tally_insert AFTER INSERT ON decision
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION signoff_tally_changed_rows();
CREATE TRIGGER decision_item_tally_delete AFTER DELETE ON decision
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION signoff_tally_changed_rows();
CREATE TRIGGER decision_item_tally_moved AFTER UPDATE OF tenant_id, item_id, step_id, actor_id
    ON decision FOR EACH ROW
    WHEN (OLD.item_id IS DISTINCT FROM NEW.item_id OR OLD.step_id IS DISTINCT FROM NEW.step_id
          OR OLD.actor_id IS DISTINCT FROM NEW.actor_id
          OR OLD.tenant_id IS DISTINCT FROM NEW.tenant_id)
    EXECUTE FUNCTION signoff_tally_moved_decision();

"""
    + ADD_TALLIES.replace("{items}", "workflow_item")
    + """;

SELECT signoff_isolate_tenant_tables();
"""
)

BACKWARDS = r"""
DROP TRIGGER IF EXISTS decision_item_tally_moved ON decision;
DROP TRIGGER IF EXISTS decision_item_tally_delete ON decision;
DROP TRIGGER IF EXISTS decision_item_tally_insert ON decision;
DROP TRIGGER IF EXISTS step_item_tally_delete ON step;
DROP TRIGGER IF EXISTS step_item_tally_insert ON step;
DROP TRIGGER IF EXISTS workflow_item_tally_moved ON workflow_item;
DROP TRIGGER IF EXISTS workflow_item_tally_insert ON workflow_item;
DROP TRIGGER IF EXISTS audit_event_analytics_day_redacted ON audit_event;
DROP TRIGGER IF EXISTS audit_event_analytics_day ON audit_event;
DROP FUNCTION IF EXISTS signoff_tally_moved_decision();
DROP FUNCTION IF EXISTS signoff_tally_changed_rows();
DROP FUNCTION IF EXISTS signoff_recount_item_tallies(jsonb);
DROP FUNCTION IF EXISTS signoff_tally_moved_item();
DROP FUNCTION IF EXISTS signoff_tally_new_items();
DROP FUNCTION IF EXISTS signoff_item_tally_counts(uuid);
DROP FUNCTION IF EXISTS signoff_count_analytics_events();
DROP TABLE IF EXISTS item_tally;
DROP TABLE IF EXISTS analytics_day;
"""

forwards = sql_migration(ID, DESCRIPTION, FORWARDS, BACKWARDS)

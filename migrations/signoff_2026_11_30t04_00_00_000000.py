"""The audit trail stays append-only except for one lawful change: redaction.

The trigger function keeps its name (`audit_event_append_only`) and still refuses DELETE and
TRUNCATE. An UPDATE passes only when it is a redaction:

- the event has a content digest (the chain covers the digest, so the links still verify);
- `redacted_at` is set, and never moves back (a redaction is not undone);
- nothing but the redactable columns changes (`acting_for`, `reason`, `request_id`,
  `client_addr`, `user_agent`, `data`, `redacted_at`) — every other column, including any added
  later, is compared as a whole;
- a redactable text column stays as it was or becomes NULL;
- `data` stays as it was, or loses keys, or has values replaced by the marker
  `{"redacted_sha256": "<64 hex>"}` (`audit_data_redacts`): nothing new can be written in.
"""

from signoff.db.migrate import sql_migration

ID = "2026-11-30T04:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "audit events: lawful redaction through the append-only trigger"

FORWARDS = r"""
ALTER TABLE audit_event ADD COLUMN redacted_at timestamptz;

-- Whether `p_new` is `p_old` with keys removed or values replaced by redaction markers.
CREATE FUNCTION audit_data_redacts(p_new jsonb, p_old jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    k  text;
    v  jsonb;
BEGIN
    IF p_new IS NOT DISTINCT FROM p_old THEN
        RETURN true;
    END IF;
    IF p_new IS NULL OR p_old IS NULL THEN
        RETURN false;
    END IF;
    IF jsonb_typeof(p_new) = 'object'
        AND (SELECT count(*) FROM jsonb_object_keys(p_new)) = 1
        AND jsonb_typeof(p_new -> 'redacted_sha256') = 'string'
        AND (p_new ->> 'redacted_sha256') ~ '^[0-9a-f]{64}$' THEN
        RETURN true;
    END IF;
    IF jsonb_typeof(p_new) = 'object' AND jsonb_typeof(p_old) = 'object' THEN
        FOR k, v IN SELECT * FROM jsonb_each(p_new) LOOP
            IF NOT (p_old ? k) OR NOT audit_data_redacts(v, p_old -> k) THEN
                RETURN false;
            END IF;
        END LOOP;
        RETURN true;
    END IF;
    IF jsonb_typeof(p_new) = 'array' AND jsonb_typeof(p_old) = 'array'
        AND jsonb_array_length(p_new) = jsonb_array_length(p_old) THEN
        FOR i IN 0 .. jsonb_array_length(p_new) - 1 LOOP
            IF NOT audit_data_redacts(p_new -> i, p_old -> i) THEN
                RETURN false;
            END IF;
        END LOOP;
        RETURN true;
    END IF;
    RETURN false;
END;
$$;

CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    redactable constant text[] := ARRAY['acting_for', 'reason', 'request_id', 'client_addr',
        'user_agent', 'data', 'redacted_at'];
BEGIN
    IF TG_OP = 'UPDATE'
        AND OLD.content_digest IS NOT NULL
        AND NEW.redacted_at IS NOT NULL
        AND NEW.redacted_at >= coalesce(OLD.redacted_at, '-infinity'::timestamptz)
        AND (to_jsonb(NEW) - redactable) = (to_jsonb(OLD) - redactable)
        AND (NEW.acting_for IS NULL OR NEW.acting_for = OLD.acting_for)
        AND (NEW.reason IS NULL OR NEW.reason = OLD.reason)
        AND (NEW.request_id IS NULL OR NEW.request_id = OLD.request_id)
        AND (NEW.client_addr IS NULL OR NEW.client_addr = OLD.client_addr)
        AND (NEW.user_agent IS NULL OR NEW.user_agent = OLD.user_agent)
        AND audit_data_redacts(NEW.data, OLD.data) THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'audit_event is append-only (UPDATE refused: not a lawful redaction)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RAISE EXCEPTION 'audit_event is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""

BACKWARDS = r"""
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_event is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
DROP FUNCTION IF EXISTS audit_data_redacts(jsonb, jsonb);
ALTER TABLE audit_event DROP COLUMN IF EXISTS redacted_at;
"""


forwards = sql_migration(ID, DESCRIPTION, FORWARDS, BACKWARDS)

"""Audit events record the environment of the principal who made the change.

`audit_event.environment` is new and nullable: events written before it have none. The content
digest covers it when it is present (see `domain/audit.py`), so the digests of older events do
not change. `audit_append` gains a `p_environment` array; the 14-argument form now calls the
new one without environments, so one body numbers and links every event.
"""

from signoff.db.migrate import sql_migration

ID = "2026-11-30T04:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "audit events: environment"

FORWARDS = r"""
ALTER TABLE audit_event ADD COLUMN environment text;

-- As the 14-argument audit_append (migration 2026-11-29T11), with each event's environment.
CREATE FUNCTION audit_append(
    p_tenant      text,
    p_channel     text,
    p_item        uuid[],
    p_step        uuid[],
    p_action      text[],
    p_actor       text[],
    p_acting_for  text[],
    p_reason      text[],
    p_request     text[],
    p_client      text[],
    p_agent       text[],
    p_data        jsonb[],
    p_occurred    timestamptz[],
    p_digest      text[],
    p_environment text[]
) RETURNS TABLE (first_seq bigint, prev_hash text, last_hash text)
LANGUAGE plpgsql AS $$
DECLARE
    n       integer := coalesce(cardinality(p_digest), 0);
    head    bigint := 0;
    anchor  text := '';
    link    text;
    seqs    bigint[] := '{}';
    prevs   text[] := '{}';
    hashes  text[] := '{}';
BEGIN
    PERFORM pg_advisory_xact_lock(5333152, hashtext(p_tenant));
    SELECT e.seq, e.hash INTO head, anchor
        FROM audit_event e WHERE e.tenant_id = p_tenant ORDER BY e.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        head := 0;
        anchor := '';
    END IF;
    link := anchor;
    FOR i IN 1..n LOOP
        prevs := prevs || link;
        link := encode(sha256(convert_to(
            link || E'\n' || p_tenant || E'\n' || (head + i)::text || E'\n' || p_digest[i],
            'UTF8')), 'hex');
        hashes := hashes || link;
        seqs := seqs || (head + i);
    END LOOP;
    INSERT INTO audit_event (tenant_id, seq, item_id, step_id, action, actor_id, acting_for,
        reason, request_id, client_addr, user_agent, data, occurred_at, prev_hash, hash,
        content_digest, environment)
    SELECT p_tenant, e.* FROM unnest(seqs, p_item, p_step, p_action, p_actor, p_acting_for,
        p_reason, p_request, p_client, p_agent, p_data, p_occurred, prevs, hashes, p_digest,
        p_environment) AS e;
    PERFORM pg_notify(p_channel, json_build_object('tenant', p_tenant, 'seq', head + n)::text);
    RETURN QUERY SELECT head + 1, anchor, link;
END;
$$;

CREATE OR REPLACE FUNCTION audit_append(
    p_tenant text, p_channel text, p_item uuid[], p_step uuid[], p_action text[],
    p_actor text[], p_acting_for text[], p_reason text[], p_request text[], p_client text[],
    p_agent text[], p_data jsonb[], p_occurred timestamptz[], p_digest text[]
) RETURNS TABLE (first_seq bigint, prev_hash text, last_hash text)
LANGUAGE sql AS $$
    SELECT * FROM audit_append(p_tenant, p_channel, p_item, p_step, p_action, p_actor,
        p_acting_for, p_reason, p_request, p_client, p_agent, p_data, p_occurred, p_digest,
        array_fill(NULL::text, ARRAY[coalesce(cardinality(p_digest), 0)]));
$$;
"""

# Going back restores the 14-argument form's own body (migration 2026-11-29T11).
BACKWARDS = r"""
CREATE OR REPLACE FUNCTION audit_append(
    p_tenant     text,
    p_channel    text,
    p_item       uuid[],
    p_step       uuid[],
    p_action     text[],
    p_actor      text[],
    p_acting_for text[],
    p_reason     text[],
    p_request    text[],
    p_client     text[],
    p_agent      text[],
    p_data       jsonb[],
    p_occurred   timestamptz[],
    p_digest     text[]
) RETURNS TABLE (first_seq bigint, prev_hash text, last_hash text)
LANGUAGE plpgsql AS $$
DECLARE
    n       integer := coalesce(cardinality(p_digest), 0);
    head    bigint := 0;
    anchor  text := '';
    link    text;
    seqs    bigint[] := '{}';
    prevs   text[] := '{}';
    hashes  text[] := '{}';
BEGIN
    PERFORM pg_advisory_xact_lock(5333152, hashtext(p_tenant));
    SELECT e.seq, e.hash INTO head, anchor
        FROM audit_event e WHERE e.tenant_id = p_tenant ORDER BY e.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        head := 0;
        anchor := '';
    END IF;
    link := anchor;
    FOR i IN 1..n LOOP
        prevs := prevs || link;
        link := encode(sha256(convert_to(
            link || E'\n' || p_tenant || E'\n' || (head + i)::text || E'\n' || p_digest[i],
            'UTF8')), 'hex');
        hashes := hashes || link;
        seqs := seqs || (head + i);
    END LOOP;
    INSERT INTO audit_event (tenant_id, seq, item_id, step_id, action, actor_id, acting_for,
        reason, request_id, client_addr, user_agent, data, occurred_at, prev_hash, hash,
        content_digest)
    SELECT p_tenant, e.* FROM unnest(seqs, p_item, p_step, p_action, p_actor, p_acting_for,
        p_reason, p_request, p_client, p_agent, p_data, p_occurred, prevs, hashes, p_digest) AS e;
    -- Delivered to listeners only if and when the transaction commits.
    PERFORM pg_notify(p_channel, json_build_object('tenant', p_tenant, 'seq', head + n)::text);
    RETURN QUERY SELECT head + 1, anchor, link;
END;
$$;
DROP FUNCTION IF EXISTS audit_append(text, text, uuid[], uuid[], text[], text[], text[], text[],
    text[], text[], text[], jsonb[], timestamptz[], text[], text[]);
ALTER TABLE audit_event DROP COLUMN IF EXISTS environment;
"""

forwards = sql_migration(ID, DESCRIPTION, FORWARDS, BACKWARDS)

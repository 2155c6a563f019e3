"""Audit events are numbered and chained after their change commits, by a sequencer.

A change's transaction stages its events in `audit_pending` (`audit_stage`): one INSERT, no
tenant-wide lock, no NOTIFY, so the commits of one tenant share WAL flushes. After the commit,
`audit_sequence(tenant, channel)` takes the tenant's chain lock (the transaction-level advisory
lock `audit_append` took), moves every pending event of the tenant that its snapshot sees into
`audit_event` — numbered after the head, linked into the hash chain, in the order they were
staged — deletes them from `audit_pending` in the same statement, and notifies once for the
batch. Only numbered events are in `audit_event`, and one sequencer per tenant runs at a time,
so a reader resuming "after seq N" still sees a gapless prefix and never misses an event.

`audit_append` (numbering inside the transaction, the lock held to its commit) stays for a
transaction whose commit its writer does not send; it first numbers whatever committed events
are still pending, so that an event never gets a smaller number than one committed before it.
"""

from signoff.db.migrate import sql_migration

ID = "2026-12-10T21:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "audit events: staged in the transaction, numbered after commit"

FORWARDS = r"""
-- No foreign key to tenant: a key share-locks the tenant row on every insert. Whatever
-- audit_event would refuse of a row is refused here already, at staging, so the sequencer's
-- move cannot fail on one transaction's event and hold up the tenant's others.
CREATE TABLE audit_pending (
    tenant_id      text NOT NULL,
    batch          bigint NOT NULL,
    n              integer NOT NULL,
    item_id        uuid,
    step_id        uuid,
    action         text NOT NULL,
    actor_id       text NOT NULL,
    acting_for     text,
    reason         text,
    request_id     text,
    client_addr    text,
    user_agent     text,
    data           jsonb NOT NULL,
    occurred_at    timestamptz NOT NULL,
    content_digest text NOT NULL CHECK (content_digest ~ '^[0-9a-f]{64}$'),
    environment    text,
    PRIMARY KEY (tenant_id, batch, n)
);
CREATE SEQUENCE audit_pending_batch;
-- Every row is inserted once and deleted once, within milliseconds.
ALTER TABLE audit_pending SET (autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 1000);

-- Stage one transaction's events (their order: the arrays'); the batch number orders
-- transactions for the sequencer. Returns the batch.
CREATE FUNCTION audit_stage(
    p_tenant      text,
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
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    b bigint := nextval('audit_pending_batch');
BEGIN
    INSERT INTO audit_pending (tenant_id, batch, n, item_id, step_id, action, actor_id,
        acting_for, reason, request_id, client_addr, user_agent, data, occurred_at,
        content_digest, environment)
    SELECT p_tenant, b, e.n, e.item_id, e.step_id, e.action, e.actor_id, e.acting_for,
        e.reason, e.request_id, e.client_addr, e.user_agent, e.data, e.occurred_at,
        e.content_digest, e.environment
    FROM unnest(p_item, p_step, p_action, p_actor, p_acting_for, p_reason, p_request,
        p_client, p_agent, p_data, p_occurred, p_digest, p_environment)
        WITH ORDINALITY AS e(item_id, step_id, action, actor_id, acting_for, reason,
            request_id, client_addr, user_agent, data, occurred_at, content_digest,
            environment, n);
    RETURN b;
END;
$$;

-- Number and chain every pending event of the tenant this statement's snapshot sees. The
-- caller holds the tenant's chain lock. Returns the new head and how many were numbered.
CREATE FUNCTION audit_sequence_locked(p_tenant text)
RETURNS TABLE (head_seq bigint, head_hash text, numbered integer)
LANGUAGE plpgsql AS $$
DECLARE
    pending audit_pending[];
    r       audit_pending;
    head    bigint := 0;
    anchor  text := '';
    link    text;
    i       integer := 0;
    seqs    bigint[] := '{}';
    prevs   text[] := '{}';
    hashes  text[] := '{}';
BEGIN
    -- One statement takes the rows and removes them: exactly what it returns is numbered.
    WITH taken AS (
        DELETE FROM audit_pending a WHERE a.tenant_id = p_tenant
        RETURNING a AS pending_row, a.batch, a.n
    )
    SELECT array_agg(t.pending_row ORDER BY t.batch, t.n) INTO pending FROM taken t;
    SELECT e.seq, e.hash INTO head, anchor
        FROM audit_event e WHERE e.tenant_id = p_tenant ORDER BY e.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        head := 0;
        anchor := '';
    END IF;
    link := anchor;
    IF pending IS NULL THEN
        RETURN QUERY SELECT head, anchor, 0;
        RETURN;
    END IF;
    FOREACH r IN ARRAY pending LOOP
        i := i + 1;
        prevs := prevs || link;
        link := encode(sha256(convert_to(
            link || E'\n' || p_tenant || E'\n' || (head + i)::text || E'\n' || r.content_digest,
            'UTF8')), 'hex');
        hashes := hashes || link;
        seqs := seqs || (head + i);
    END LOOP;
    INSERT INTO audit_event (tenant_id, seq, item_id, step_id, action, actor_id, acting_for,
        reason, request_id, client_addr, user_agent, data, occurred_at, prev_hash, hash,
        content_digest, environment)
    SELECT p_tenant, l.seq, p.item_id, p.step_id, p.action, p.actor_id, p.acting_for,
        p.reason, p.request_id, p.client_addr, p.user_agent, p.data, p.occurred_at, l.prev,
        l.hash, p.content_digest, p.environment
    FROM unnest(pending) WITH ORDINALITY AS p
    JOIN unnest(seqs, prevs, hashes) WITH ORDINALITY AS l(seq, prev, hash, k)
        ON l.k = p.ordinality
    ORDER BY l.seq;
    RETURN QUERY SELECT head + i, link, i;
END;
$$;

-- The sequencer: numbers the tenant's committed pending events, once the tenant's chain lock
-- is free, and announces the new head. Run it in a transaction of its own (READ COMMITTED),
-- after the commit whose events should be numbered. Returns how many it numbered.
CREATE FUNCTION audit_sequence(p_tenant text, p_channel text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    done record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM audit_pending WHERE tenant_id = p_tenant) THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(5333152, hashtext(p_tenant));
    SELECT * INTO done FROM audit_sequence_locked(p_tenant);
    IF done.numbered > 0 THEN
        PERFORM pg_notify(p_channel,
            json_build_object('tenant', p_tenant, 'seq', done.head_seq)::text);
    END IF;
    RETURN done.numbered;
END;
$$;

-- As migration 2026-11-30T04:10, after numbering what committed before it and is pending.
CREATE OR REPLACE FUNCTION audit_append(
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
    SELECT s.head_seq, s.head_hash INTO head, anchor FROM audit_sequence_locked(p_tenant) s;
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

SELECT signoff_isolate_tenant_tables();
"""

# Going back numbers what is still pending first, so that no staged event is lost.
BACKWARDS = r"""
DO $$
DECLARE t text;
BEGIN
    FOR t IN SELECT DISTINCT tenant_id FROM audit_pending LOOP
        PERFORM audit_sequence(t, 'signoff_events');
    END LOOP;
END
$$;
CREATE OR REPLACE FUNCTION audit_append(
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
DROP FUNCTION IF EXISTS audit_sequence(text, text);
DROP FUNCTION IF EXISTS audit_sequence_locked(text);
DROP FUNCTION IF EXISTS audit_stage(text, uuid[], uuid[], text[], text[], text[], text[],
    text[], text[], text[], jsonb[], timestamptz[], text[], text[]);
DROP TABLE IF EXISTS audit_pending;
DROP SEQUENCE IF EXISTS audit_pending_batch;
"""

forwards = sql_migration(ID, DESCRIPTION, FORWARDS, BACKWARDS)

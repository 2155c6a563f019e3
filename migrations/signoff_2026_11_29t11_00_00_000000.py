"""Audit events numbered and linked in one statement without a hot row; hot-table upkeep.

- The chain's head is its last event: `audit_append(...)` takes a per-tenant transaction-level
  advisory lock, reads the tenant's last event (seq, hash) by index, numbers and links the new
  events, inserts them and notifies listeners — one statement at the very end of a transaction,
  so the lock is held from there until commit only. No row is updated on every write (the old
  head in `tenant` bloated without vacuum, and foreign-key checks share-locked it).
- `audit_event.content_digest`: sha256 of the event's canonical content (computed by the
  application, see `domain/audit.py`); the chain link covers (prev hash, tenant, seq, digest), so
  content can be redacted later while the chain still verifies. Events written before this
  migration keep their old hash and no digest; the check constraint holds for every new event.
- Per-table autovacuum settings for the tables every write updates or appends to.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from signoff.db.migrate import run_sql_script

ID = "2026-11-29T11:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "audit chain heads, one-statement append, hot-table autovacuum"

FORWARDS = r"""
ALTER TABLE tenant DROP COLUMN audit_seq, DROP COLUMN audit_hash;

ALTER TABLE audit_event ADD COLUMN content_digest text;
-- NOT VALID: rows written before digests existed are not checked; every new row is.
ALTER TABLE audit_event ADD CONSTRAINT audit_event_content_digest
    CHECK (content_digest IS NOT NULL AND content_digest ~ '^[0-9a-f]{64}$') NOT VALID;

-- The link: sha256_hex(prev_hash || '\n' || tenant || '\n' || seq || '\n' || content_digest),
-- the same as signoff.domain.audit.link_hash. The advisory lock (namespace 0x5160A0, key the
-- tenant's hash; two tenants sharing a key only wait for each other) is held until commit, so
-- numbers are handed out in commit order: the next holder reads the previous one's committed
-- last event.
CREATE FUNCTION audit_append(
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

-- Tables that every decision updates: vacuum them by a fixed number of dead rows rather than
-- a fraction of a table that keeps growing, and leave room on each page for HOT updates of
-- columns no index covers (an item's version and timestamps change on every decision).
ALTER TABLE workflow_item SET (fillfactor = 85, autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE step SET (fillfactor = 85, autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE timer SET (autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE idempotency_key SET (autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000);
ALTER TABLE notification_cursor SET (fillfactor = 10, autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000);
-- Append-only tables: vacuumed for their visibility map (index-only scans) and freezing.
ALTER TABLE audit_event SET (autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_vacuum_insert_threshold = 10000, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE decision SET (autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_vacuum_insert_threshold = 10000, autovacuum_analyze_scale_factor = 0.02);
"""

BACKWARDS = r"""
ALTER TABLE decision RESET (autovacuum_vacuum_insert_scale_factor,
    autovacuum_vacuum_insert_threshold, autovacuum_analyze_scale_factor);
ALTER TABLE audit_event RESET (autovacuum_vacuum_insert_scale_factor,
    autovacuum_vacuum_insert_threshold, autovacuum_analyze_scale_factor);
ALTER TABLE notification_cursor RESET (fillfactor, autovacuum_vacuum_scale_factor,
    autovacuum_vacuum_threshold);
ALTER TABLE idempotency_key RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold);
ALTER TABLE timer RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
    autovacuum_analyze_scale_factor);
ALTER TABLE step RESET (fillfactor, autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
    autovacuum_analyze_scale_factor);
ALTER TABLE workflow_item RESET (fillfactor, autovacuum_vacuum_scale_factor,
    autovacuum_vacuum_threshold, autovacuum_analyze_scale_factor);
DROP FUNCTION IF EXISTS audit_append(text, text, uuid[], uuid[], text[], text[], text[], text[],
    text[], text[], text[], jsonb[], timestamptz[], text[]);
ALTER TABLE audit_event DROP CONSTRAINT IF EXISTS audit_event_content_digest;
ALTER TABLE audit_event DROP COLUMN IF EXISTS content_digest;
ALTER TABLE tenant ADD COLUMN audit_seq bigint NOT NULL DEFAULT 0,
    ADD COLUMN audit_hash text NOT NULL DEFAULT '';
UPDATE tenant t SET audit_seq = e.seq, audit_hash = e.hash FROM (
    SELECT DISTINCT ON (tenant_id) tenant_id, seq, hash FROM audit_event
    ORDER BY tenant_id, seq DESC) e
    WHERE e.tenant_id = t.id;
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

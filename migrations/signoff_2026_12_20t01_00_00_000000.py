"""Audit sequencing that a change's COMMIT message can carry: it never fails the message.

A unit of work that finds no sequencing of its tenant in flight in its process sends, in the
one simple query that stages its events and commits, a second transaction that numbers them
(`audit_sequence_after_commit`). The change has committed by then, so that transaction must
not turn into an error its sender would take for the change's: a failure of the sequencing
(the notify refused, a lock or statement timeout) is caught, its work undone, and reported as
a WARNING in the server's log; the events stay staged for the next sequencing of the tenant or
the worker's sweep, as after a crash between the commit and the sequencing.
"""

from signoff.db.migrate import sql_migration

ID = "2026-12-20T01:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "audit events: a sequencing that rides on the change's COMMIT message"

FORWARDS = r"""
CREATE FUNCTION audit_sequence_after_commit(p_tenant text, p_channel text) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    RETURN audit_sequence(p_tenant, p_channel);
EXCEPTION WHEN OTHERS OR query_canceled THEN
    RAISE WARNING 'audit sequencing of tenant % failed (its events stay staged): % %',
        p_tenant, SQLSTATE, SQLERRM;
    RETURN -1;
END;
$$;
"""

BACKWARDS = r"""
DROP FUNCTION IF EXISTS audit_sequence_after_commit(text, text);
"""

forwards = sql_migration(ID, DESCRIPTION, FORWARDS, BACKWARDS)

"""Event cursors: opaque positions in a tenant's event feed (its audit sequence numbers).

A subscription resumes `after` one; every list a client renders returns the one of the snapshot
it was read from (`eventCursor`), so "load, then subscribe after it" loses nothing.
"""

from __future__ import annotations

from signoff.api import ids
from signoff.domain.errors import DomainError, ErrorCode

_CURSOR_TYPE = "Event"
# the largest audit sequence number PostgreSQL stores (bigint)
MAX_SEQ = 2**63 - 1

EVENT_CURSOR_DESCRIPTION = (
    "The event cursor of the snapshot this was read from: subscribe with `after: eventCursor` "
    "to receive every change committed after this read, none before it (docs/realtime.md)."
)


def encode_cursor(tenant_id: str, seq: int) -> str:
    """The opaque cursor of event `seq` of `tenant_id`."""
    return ids.encode(_CURSOR_TYPE, f"{tenant_id}:{seq}")


def decode_cursor(cursor: str, tenant_id: str) -> int:
    """The sequence number inside a cursor of `tenant_id`; INVALID_INPUT otherwise (a cursor
    of another tenant is refused, not silently reinterpreted)."""
    bad = DomainError(ErrorCode.INVALID_INPUT, "not a valid event cursor", "after")
    try:
        type_name, raw = ids.decode(cursor, "after")
    except DomainError:
        raise bad from None
    tenant, _, seq = raw.rpartition(":")
    if type_name != _CURSOR_TYPE or tenant != tenant_id:
        raise bad
    # ASCII digits only (str.isdigit admits '²'), and within the bigint a seq is stored as
    if not (seq.isascii() and seq.isdigit()) or len(seq) > 19 or int(seq) > MAX_SEQ:
        raise bad
    return int(seq)

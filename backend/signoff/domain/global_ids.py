"""Global object ids: the ids `node(id:)` takes. One encoding, shared by the API and by what
leaves signoff for other systems (webhook bodies), so a receiver can look an object up."""

from __future__ import annotations

import base64
from uuid import UUID


def global_id(type_name: str, raw_id: UUID | str | int) -> str:
    """The global id of object `raw_id` of GraphQL type `type_name` (opaque to clients)."""
    return base64.urlsafe_b64encode(f"{type_name}:{raw_id}".encode()).decode().rstrip("=")

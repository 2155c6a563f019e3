"""The `Node` interface (objects with a global id) and `Person`, the people those objects name."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from signoff.api import ids
from signoff.api.context import SignoffContext
from signoff.api.loaders import loaders_of


@strawberry.interface(
    description="An object with a global id, fetchable with `node(id:)` (Relay convention)."
)
class Node:
    id: strawberry.ID = strawberry.field(description="Global id.")


@strawberry.type(
    description="A person as the user directory names them (the directory notifications use)."
)
class Person(Node):
    id: strawberry.ID = strawberry.field(description="Global id.")
    user_id: str = strawberry.field(
        description="User id (the token's `sub`; `system` for timers and policies)."
    )
    display_name: str = strawberry.field(
        description="The name to show: the directory's display name, else the user id."
    )

    @classmethod
    def of(cls, user_id: str, display_name: str | None) -> Person:
        """The person `user_id`, named `display_name` when the directory knows one."""
        return cls(
            id=strawberry.ID(ids.encode("Person", user_id)),
            user_id=user_id,
            display_name=display_name or user_id,
        )


async def person(info: Info[SignoffContext, Any], user_id: str) -> Person:
    """The person `user_id` of the caller's tenant (display names batched per request)."""
    return Person.of(user_id, await loaders_of(info).display_names.load(user_id))

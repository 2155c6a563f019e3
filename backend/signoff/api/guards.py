"""The one shape of guards every mutation takes: `input.guards`."""

from __future__ import annotations

import strawberry

from signoff.domain.errors import invalid
from signoff.services.uow import Guards

GUARDS_FIELD = "guards"


@strawberry.input(
    description="Guards every mutation takes in `input.guards`: an idempotency key (a replay "
    "with the same key and the same input returns the first result and changes nothing; the "
    "same key with another input is refused with IDEMPOTENCY_KEY_REUSED) and, where what the "
    "mutation changes has a version, the version the caller expects."
)
class GuardsInput:
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Up to 200 characters, unique per caller for one intended change.",
    )
    expected_version: int | None = strawberry.field(
        default=None,
        description="Refuse with VERSION_CONFLICT unless the item (or, on comment mutations, "
        "the comment) is at this version. Mutations on things without a version refuse it "
        "with INVALID_INPUT.",
    )


def guards_field(versioned: bool) -> GuardsInput | None:
    """The `guards` field of a mutation's input, described for what it changes."""
    description = (
        "Idempotency key and expected version."
        if versioned
        else "Idempotency key (what this changes has no version: no expectedVersion)."
    )
    value: GuardsInput | None = strawberry.field(default=None, description=description)
    return value


def versioned_guards(given: GuardsInput | None) -> Guards:
    """The guards of a mutation on something with a version."""
    if given is None:
        return Guards()
    return Guards(given.idempotency_key, given.expected_version)


def key_guards(given: GuardsInput | None) -> Guards:
    """The guards of a mutation on something without a version: an expected version is an
    input mistake, not something to ignore silently."""
    if given is None:
        return Guards()
    if given.expected_version is not None:
        raise invalid(
            "this mutation changes nothing with a version: leave expectedVersion out",
            "guards.expectedVersion",
        )
    return Guards(given.idempotency_key)

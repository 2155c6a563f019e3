"""Notifications in GraphQL: the delivery log's dead letters, profiles and preferences."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from signoff.api import ids
from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.enums import (
    NotificationKind,
    NotificationPreferenceKind,
    NotificationPriority,
    described_enum,
)
from signoff.api.errors import CodedError, UserError, user_error
from signoff.api.guards import GuardsInput, guards_field, key_guards
from signoff.api.paging import (
    After,
    Before,
    Connection,
    First,
    KeysetOrder,
    Last,
    bigint,
    connection,
    page_args,
    timestamp,
)
from signoff.api.types import Node
from signoff.domain import notification_policy
from signoff.domain.errors import DomainError, ErrorCode
from signoff.notify.model import DeliveryStatus
from signoff.services import notification_admin


class NotificationDeliveryStatus(StrEnum):
    """Where a notification delivery stands."""

    QUEUED = "queued"
    DELIVERED = "delivered"
    RETRYING = "retrying"
    DEAD = "dead"
    SUPPRESSED = "suppressed"
    DIGESTED = "digested"


described_enum(
    NotificationDeliveryStatus,
    "Where a notification delivery stands.",
    {
        NotificationDeliveryStatus.QUEUED: "Waiting for its first attempt (or for quiet hours "
        "to end).",
        NotificationDeliveryStatus.DELIVERED: "The channel accepted it.",
        NotificationDeliveryStatus.RETRYING: "An attempt failed; the next one is scheduled.",
        NotificationDeliveryStatus.DEAD: "Every attempt failed; an operator may retry it.",
        NotificationDeliveryStatus.SUPPRESSED: "Not sent: its channel is no longer enabled.",
        NotificationDeliveryStatus.DIGESTED: "Held for, or folded into, a digest.",
    },
)


@strawberry.type(description="One attempt at a delivery, as it happened.")
class NotificationAttempt:
    attempt_no: int = strawberry.field(description="1 for the first attempt.")
    status: DeliveryStatus = strawberry.field(description="How the attempt went.")
    response: str | None = strawberry.field(description="What the provider answered (short).")
    error: str | None = strawberry.field(description="Why the attempt failed.")
    duration_ms: float | None = strawberry.field(description="How long the attempt took.")
    started_at: datetime = strawberry.field(description="When the attempt started.")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> NotificationAttempt:
        """Map an attempt row."""
        return cls(
            attempt_no=row["attempt_no"],
            status=DeliveryStatus(row["status"]),
            response=row["response"],
            error=row["error"],
            duration_ms=row["duration_ms"],
            started_at=row["started_at"],
        )


@strawberry.type(description="One notification to one person on one channel.")
class NotificationDelivery(Node):
    id: strawberry.ID = strawberry.field(description="Global id.")
    channel: str = strawberry.field(description="Channel name (email, slack, webhook, ...).")
    recipient_id: str = strawberry.field(description="User id of the recipient.")
    event_kind: NotificationKind = strawberry.field(description="Why it is sent.")
    event_seq: int = strawberry.field(description="Audit sequence number of the event.")
    related_item_id: strawberry.ID | None = strawberry.field(
        description="Global id of the item it is about; null for one about no single item "
        "(a digest)."
    )
    title: str = strawberry.field(description="Title of the notification.")
    delivery_status: NotificationDeliveryStatus = strawberry.field(
        description="Delivery state (named apart from `Template.status`, whose type differs)."
    )
    delivery_priority: NotificationPriority = strawberry.field(description="How urgent it is.")
    attempt_count: int = strawberry.field(description="Attempts made so far.")
    max_attempts: int = strawberry.field(description="Attempts allowed before a dead letter.")
    next_attempt_at: datetime | None = strawberry.field(description="When it is tried next.")
    last_error: str | None = strawberry.field(description="Error of the last failed attempt.")
    created_at: datetime = strawberry.field(description="When it was planned.")
    updated_at: datetime = strawberry.field(description="When it last changed.")
    attempts: list[NotificationAttempt] = strawberry.field(description="Every attempt, in order.")

    @classmethod
    def from_row(cls, row: dict[str, Any], attempts: list[dict[str, Any]]) -> NotificationDelivery:
        """Map a delivery row and its attempt rows."""
        item = row["payload"].get("item_id")
        return cls(
            id=strawberry.ID(ids.encode("NotificationDelivery", row["id"])),
            channel=row["channel"],
            recipient_id=row["recipient_id"],
            event_kind=NotificationKind(row["event_kind"]),
            event_seq=row["event_seq"],
            related_item_id=strawberry.ID(ids.encode("WorkflowItem", item)) if item else None,
            title=row["payload"].get("title") or "",
            delivery_status=NotificationDeliveryStatus(row["status"]),
            delivery_priority=NotificationPriority(row["priority"]),
            attempt_count=row["attempts"],
            max_attempts=row["max_attempts"],
            next_attempt_at=row["next_attempt_at"],
            last_error=row["last_error"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            attempts=[NotificationAttempt.from_row(a) for a in attempts],
        )


@strawberry.type(description="Daily hours in which non-critical notifications wait.")
class QuietHours:
    start: str = strawberry.field(description="Start, local time HH:MM.")
    end: str = strawberry.field(description="End, local time HH:MM (may be the next day).")
    timezone: str = strawberry.field(description="IANA time zone, e.g. Europe/Berlin.")


@strawberry.type(description="The channels used for one kind of notification.")
class KindChannels:
    kind: str = strawberry.field(
        description="Notification kind, or `default` for the rest.",
        deprecation_reason="Untyped; use `notificationKind`, the same kind as an enum.",
    )
    notification_kind: NotificationPreferenceKind = strawberry.field(
        description="The kind of notification, or DEFAULT for every kind without an entry."
    )
    channels: list[str] = strawberry.field(description="Channels; empty mutes the kind.")


@strawberry.type(description="An address of a person on one channel.")
class ChannelAddress:
    channel: str = strawberry.field(description="Channel name.")
    address: str = strawberry.field(description="E-mail, Slack user id, webhook URL, ...")


@strawberry.type(description="How a person wants to be notified.")
class NotificationPreferences:
    channels: list[KindChannels] = strawberry.field(
        description="Channels per kind; kinds without an entry use `default`, else every "
        "channel the person has an address on."
    )
    quiet_hours: QuietHours | None = strawberry.field(description="Quiet hours, if any.")
    digest_kinds: list[str] = strawberry.field(
        description="Kinds collected into a digest instead of sent one by one.",
        deprecation_reason="Untyped; use `digestNotificationKinds`, the same kinds as enums.",
    )
    digest_notification_kinds: list[NotificationKind] = strawberry.field(
        description="Kinds collected into a digest instead of sent one by one."
    )
    addresses: list[ChannelAddress] = strawberry.field(
        description="The person's addresses (set by an administrator)."
    )

    @classmethod
    def from_profile(cls, profile: dict[str, Any]) -> NotificationPreferences:
        """Map a profile row."""
        prefs = notification_policy.preferences_or_default(profile["preferences"])
        quiet = prefs.quiet_hours
        return cls(
            channels=[
                KindChannels(
                    kind=k, notification_kind=NotificationPreferenceKind(k), channels=list(v)
                )
                for k, v in prefs.channels.items()
            ],
            quiet_hours=QuietHours(**quiet.to_dict()) if quiet else None,
            digest_kinds=sorted(prefs.digest_kinds),
            digest_notification_kinds=[NotificationKind(k) for k in sorted(prefs.digest_kinds)],
            addresses=[
                ChannelAddress(channel=c, address=a)
                for c, a in sorted((profile["addresses"] or {}).items())
            ],
        )


@strawberry.type(description="A person as notifications see them.")
class UserProfile:
    user_id: str = strawberry.field(description="User id (the token's `sub`).")
    display_name: str = strawberry.field(description="Name used in greetings.")
    groups: list[str] = strawberry.field(description="Groups, for group assignees.")
    roles: list[str] = strawberry.field(description="Roles, for role assignees.")
    addresses: list[ChannelAddress] = strawberry.field(description="Addresses per channel.")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> UserProfile:
        """Map a profile row."""
        return cls(
            user_id=row["user_id"],
            display_name=row["display_name"],
            groups=list(row["groups"] or []),
            roles=list(row["roles"] or []),
            addresses=[
                ChannelAddress(channel=c, address=a)
                for c, a in sorted((row["addresses"] or {}).items())
            ],
        )


@strawberry.input(description="An address on one channel.")
class ChannelAddressInput:
    channel: str = strawberry.field(description="Channel name.")
    address: str = strawberry.field(description="Address on that channel.")


@strawberry.input(description="Create or update a person's profile; omitted fields are kept.")
class UserProfileInput:
    user_id: str = strawberry.field(description="User id (the token's `sub`).")
    display_name: str | None = strawberry.field(default=None, description="Display name.")
    groups: list[str] | None = strawberry.field(default=None, description="Groups.")
    roles: list[str] | None = strawberry.field(default=None, description="Roles.")
    addresses: list[ChannelAddressInput] | None = strawberry.field(
        default=None, description="Addresses; replaces every address when given."
    )
    guards: GuardsInput | None = guards_field(versioned=False)


@strawberry.input(description="Quiet hours.")
class QuietHoursInput:
    start: str = strawberry.field(description="Start, local time HH:MM.")
    end: str = strawberry.field(description="End, local time HH:MM.")
    timezone: str = strawberry.field(default="UTC", description="IANA time zone.")


@strawberry.input(
    description="Channels for one kind of notification: give `notificationKind` (or the "
    "deprecated `kind`)."
)
class KindChannelsInput:
    kind: str | None = strawberry.field(
        default=None,
        description="Notification kind, or `default`.",
        deprecation_reason="Untyped; use `notificationKind`, the same kind as an enum.",
    )
    notification_kind: NotificationPreferenceKind | None = strawberry.field(
        default=None,
        description="The kind of notification, or DEFAULT for every kind without an entry.",
    )
    channels: list[str] = strawberry.field(description="Channels; empty mutes the kind.")


@strawberry.input(description="The caller's notification preferences (replaces the old ones).")
class NotificationPreferencesInput:
    channels: list[KindChannelsInput] = strawberry.field(
        default_factory=list, description="Channels per kind."
    )
    quiet_hours: QuietHoursInput | None = strawberry.field(
        default=None, description="Quiet hours; null for none."
    )
    digest_kinds: list[str] = strawberry.field(
        default_factory=list,
        description="Kinds to collect into a digest.",
        deprecation_reason="Untyped; use `digestNotificationKinds`, the same kinds as enums.",
    )
    digest_notification_kinds: list[NotificationKind] | None = strawberry.field(
        default=None, description="Kinds to collect into a digest (DIGEST is refused)."
    )
    guards: GuardsInput | None = guards_field(versioned=False)


def _preference_kind(entry: KindChannelsInput, path: str) -> str:
    if (entry.kind is None) == (entry.notification_kind is None):
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            "give `notificationKind` (or the deprecated `kind`), exactly one",
            f"{path}.notificationKind",
        )
    return entry.notification_kind.value if entry.notification_kind else str(entry.kind)


def preferences_document(input: NotificationPreferencesInput) -> dict[str, Any]:
    """The preferences as the document `notification_policy.parse_preferences` reads (what the
    untyped fields carry); INVALID_INPUT for an entry with no kind or two."""
    digest: list[str] = list(input.digest_kinds)
    if input.digest_notification_kinds is not None:
        if digest:
            raise DomainError(
                ErrorCode.INVALID_INPUT,
                "give `digestNotificationKinds` or `digestKinds`, not both",
                "digestKinds",
            )
        digest = [k.value for k in input.digest_notification_kinds]
    channels: dict[str, list[str]] = {}
    for i, entry in enumerate(input.channels):
        kind = _preference_kind(entry, f"channels[{i}]")
        if kind in channels:
            raise DomainError(
                ErrorCode.INVALID_INPUT,
                f"the kind {kind!r} has two entries",
                f"channels[{i}].notificationKind",
            )
        channels[kind] = list(entry.channels)
    return {
        "channels": channels,
        "digest_kinds": digest,
        "quiet_hours": (
            {
                "start": input.quiet_hours.start,
                "end": input.quiet_hours.end,
                "timezone": input.quiet_hours.timezone,
            }
            if input.quiet_hours
            else None
        ),
    }


@strawberry.input(description="Which dead letter to retry.")
class RetryDeadLetterInput:
    id: strawberry.ID = strawberry.field(description="Global id of the dead letter.")
    guards: GuardsInput | None = guards_field(versioned=False)


@strawberry.type(description="Result of retrying a dead letter.")
class NotificationDeliveryPayload:
    delivery: NotificationDelivery | None = strawberry.field(description="The delivery.")
    errors: list[UserError] = strawberry.field(description="Empty on success.")


@strawberry.type(description="Result of changing notification preferences.")
class NotificationPreferencesPayload:
    preferences: NotificationPreferences | None = strawberry.field(
        description="The preferences now stored."
    )
    errors: list[UserError] = strawberry.field(description="Empty on success.")


@strawberry.type(description="Result of saving a profile.")
class UserProfilePayload:
    profile: UserProfile | None = strawberry.field(description="The profile now stored.")
    errors: list[UserError] = strawberry.field(description="Empty on success.")


DEAD_LETTER_ORDER: KeysetOrder[dict[str, Any]] = KeysetOrder(
    "DeadLetter", (timestamp, bigint), lambda row: (row["updated_at"], row["id"])
)


@strawberry.type
class NotificationQueries:
    @strawberry.field(
        description="Dead-lettered deliveries of the tenant, most recently changed first "
        "(administer_notifications); pages of up to the configured maximum (default 50)."
    )
    async def dead_letters(
        self,
        info: Info[SignoffContext, Any],
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[NotificationDelivery]:
        actor = actor_of(info)
        services = services_of(info)
        try:
            page = page_args(first, after, last, before, services.settings.max_page_size, 50)
            rows = await notification_admin.dead_letters(
                actor, services, DEAD_LETTER_ORDER.window(page)
            )
        except DomainError as exc:
            raise CodedError(exc) from None
        attempts = await notification_admin.attempts_of([r["id"] for r in rows])
        return connection(
            page,
            DEAD_LETTER_ORDER,
            rows,
            lambda r: NotificationDelivery.from_row(r, attempts[r["id"]]),
        )

    @strawberry.field(description="The caller's notification preferences and addresses.")
    async def my_notification_preferences(
        self, info: Info[SignoffContext, Any]
    ) -> NotificationPreferences:
        profile = await notification_admin.my_profile(actor_of(info))
        return NotificationPreferences.from_profile(profile)


@strawberry.type
class NotificationMutations:
    @strawberry.mutation(
        description="Give a dead-lettered delivery a fresh set of attempts "
        "(administer_notifications); it is sent by the next sweep."
    )
    async def retry_dead_letter(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            RetryDeadLetterInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> NotificationDeliveryPayload:
        actor = actor_of(info)
        try:
            guards = key_guards(input.guards)
            type_name, raw = ids.decode(input.id)
            if type_name != "NotificationDelivery" or not raw.isdigit():
                raise DomainError(ErrorCode.INVALID_INPUT, "not a NotificationDelivery id", "id")
            row = await notification_admin.retry_dead_letter(
                actor, services_of(info), int(raw), guards
            )
        except DomainError as exc:
            return NotificationDeliveryPayload(delivery=None, errors=[user_error(exc)])
        attempts = await notification_admin.attempts_of([row["id"]])
        return NotificationDeliveryPayload(
            delivery=NotificationDelivery.from_row(row, attempts[row["id"]]), errors=[]
        )

    @strawberry.mutation(description="Replace the caller's notification preferences.")
    async def update_notification_preferences(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            NotificationPreferencesInput,
            strawberry.argument(description="The new preferences."),
        ],
    ) -> NotificationPreferencesPayload:
        actor = actor_of(info)
        try:
            raw = preferences_document(input)
            row = await notification_admin.update_notification_preferences(
                actor, services_of(info), raw, key_guards(input.guards)
            )
        except DomainError as exc:
            return NotificationPreferencesPayload(preferences=None, errors=[user_error(exc)])
        return NotificationPreferencesPayload(
            preferences=NotificationPreferences.from_profile(row), errors=[]
        )

    @strawberry.mutation(
        description="Create or update a person's profile: addresses, groups, roles "
        "(administer_notifications)."
    )
    async def upsert_user_profile(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[UserProfileInput, strawberry.argument(description="The profile.")],
    ) -> UserProfilePayload:
        actor = actor_of(info)
        inp = notification_admin.ProfileInput(
            user_id=input.user_id,
            display_name=input.display_name,
            groups=tuple(input.groups) if input.groups is not None else None,
            roles=tuple(input.roles) if input.roles is not None else None,
            addresses=(
                {a.channel: a.address for a in input.addresses}
                if input.addresses is not None
                else None
            ),
        )
        try:
            row = await notification_admin.upsert_user_profile(
                actor, services_of(info), inp, key_guards(input.guards)
            )
        except DomainError as exc:
            return UserProfilePayload(profile=None, errors=[user_error(exc)])
        return UserProfilePayload(profile=UserProfile.from_row(row), errors=[])

"""Alert rules and alerts over GraphQL: rules kept by admins, alerts read by auditors and admins
(a connection, newest first) and acknowledged by admins."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

import strawberry
from strawberry.types import Info

from signoff.api import ids
from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.enums import described_enum
from signoff.api.errors import CodedError, UserError, user_error
from signoff.api.guards import GuardsInput, guards_field, key_guards, versioned_guards
from signoff.api.node import Node
from signoff.api.paging import (
    After,
    Before,
    Connection,
    First,
    KeysetOrder,
    Last,
    connection,
    page_args,
    timestamp,
    uuid_part,
)
from signoff.api.types import Assignees
from signoff.domain import alerts as model
from signoff.domain.errors import DomainError, ErrorCode
from signoff.services import alerts as alert_services

described_enum(
    model.AlertRuleKind,
    "What an alert rule watches (docs/operations/alerts.md).",
    {
        model.AlertRuleKind.STUCK_ITEMS: "Items in review unchanged for longer than the "
        "window: fires when more than `threshold` are.",
        model.AlertRuleKind.REJECTION_RATE: "Rejected steps / decided steps over the window: "
        "fires above `threshold` (0 to 1) once `minSamples` steps were decided.",
        model.AlertRuleKind.BACKLOG: "Items in review: fires when more than `threshold` are.",
        model.AlertRuleKind.BREACH_RATE: "Missed SLA deadlines / deadlines due over the window: "
        "fires above `threshold` (0 to 1) once `minSamples` deadlines fell due.",
    },
)

DEFAULT_PAGE = 20


@strawberry.type(description="A rule that raises an alert when a figure passes its threshold.")
class AlertRule(Node):
    id: strawberry.ID = strawberry.field(description="Global id.")
    name: str = strawberry.field(description="Unique within the tenant.")
    rule_kind: model.AlertRuleKind = strawberry.field(description="What it watches.")
    template_key: str | None = strawberry.field(description="Only this template; null: all.")
    threshold: float = strawberry.field(description="Fires when the figure is above this.")
    window_seconds: int | None = strawberry.field(
        description="A rate's period, or how long an item must be unchanged to be stuck."
    )
    min_samples: int = strawberry.field(description="A rate fires only over at least this many.")
    notify: Assignees = strawberry.field(description="Who its alerts notify.")
    enabled: bool = strawberry.field(description="Whether the worker evaluates it.")
    firing: bool = strawberry.field(description="Whether its current episode is open.")
    episode: int = strawberry.field(description="How many times it has fired.")
    version: int = strawberry.field(description="Bumped by every change.")
    created_by: str = strawberry.field(description="Who created it.")
    created_at: datetime = strawberry.field(description="When it was created.")
    updated_at: datetime = strawberry.field(description="When it last changed.")

    @classmethod
    def from_record(cls, rule: model.AlertRule) -> AlertRule:
        """The GraphQL view of a rule."""
        spec = rule.spec
        return cls(
            id=strawberry.ID(ids.encode("AlertRule", rule.id)),
            name=spec.name,
            rule_kind=spec.kind,
            template_key=spec.template_key,
            threshold=spec.threshold,
            window_seconds=int(spec.window.total_seconds()) if spec.window else None,
            min_samples=spec.min_samples,
            notify=Assignees(
                users=list(spec.notify.users),
                groups=list(spec.notify.groups),
                roles=list(spec.notify.roles),
            ),
            enabled=spec.enabled,
            firing=rule.firing,
            episode=rule.episode,
            version=rule.version,
            created_by=rule.created_by,
            created_at=rule.created_at,
            updated_at=rule.updated_at,
        )


@strawberry.type(description="One episode of an alert rule: raised once, cleared once.")
class Alert(Node):
    id: strawberry.ID = strawberry.field(description="Global id.")
    rule_id: strawberry.ID = strawberry.field(description="Global id of its rule.")
    rule_name: str = strawberry.field(description="Its rule's name.")
    rule_kind: model.AlertRuleKind = strawberry.field(description="What its rule watches.")
    episode: int = strawberry.field(description="Which of its rule's episodes (1 = first).")
    measured_value: float = strawberry.field(description="The figure when it fired.")
    samples: int = strawberry.field(description="What the figure was measured over.")
    threshold: float = strawberry.field(description="Its rule's threshold when it fired.")
    raised_at: datetime = strawberry.field(description="When it fired.")
    cleared_at: datetime | None = strawberry.field(
        description="When the figure came back within the threshold; null: still open."
    )
    acknowledged_by: str | None = strawberry.field(description="Who acknowledged it.")
    acknowledged_at: datetime | None = strawberry.field(description="When.")
    acknowledgement: str | None = strawberry.field(description="Their note.")

    @classmethod
    def from_record(cls, alert: model.Alert) -> Alert:
        """The GraphQL view of an alert."""
        return cls(
            id=strawberry.ID(ids.encode("Alert", alert.id)),
            rule_id=strawberry.ID(ids.encode("AlertRule", alert.rule_id)),
            rule_name=alert.rule_name,
            rule_kind=alert.kind,
            episode=alert.episode,
            measured_value=alert.value,
            samples=alert.samples,
            threshold=alert.threshold,
            raised_at=alert.fired_at,
            cleared_at=alert.cleared_at,
            acknowledged_by=alert.acknowledged_by,
            acknowledged_at=alert.acknowledged_at,
            acknowledgement=alert.acknowledgement,
        )


@strawberry.input(description="An alert rule to create (no id) or replace (its id).")
class SaveAlertRuleInput:
    id: strawberry.ID | None = strawberry.field(
        default=None, description="The rule to replace; none: a new rule."
    )
    name: str = strawberry.field(description="Unique within the tenant (1 to 200 characters).")
    rule_kind: model.AlertRuleKind = strawberry.field(description="What it watches.")
    threshold: float = strawberry.field(
        description="Fires above this: a rate from 0 up to 1, or a whole number of items."
    )
    window_seconds: int | None = strawberry.field(
        default=None,
        description="A rate's period, or the age of a stuck item (60 to 31622400); none for "
        "a backlog rule.",
    )
    min_samples: int = strawberry.field(
        default=1, description="A rate fires only over at least this many steps or deadlines."
    )
    template_key: str | None = strawberry.field(
        default=None, description="Only this template; none: all."
    )
    users: list[str] = strawberry.field(default_factory=list, description="People to notify.")
    groups: list[str] = strawberry.field(default_factory=list, description="Groups to notify.")
    roles: list[str] = strawberry.field(default_factory=list, description="Roles to notify.")
    enabled: bool = strawberry.field(default=True, description="Whether it is evaluated.")
    guards: GuardsInput | None = strawberry.field(
        default=None,
        description="Idempotency key and expected version (the rule's, when replacing one).",
    )


@strawberry.input(description="Acknowledge an alert.")
class AcknowledgeAlertInput:
    id: strawberry.ID = strawberry.field(description="Global id of the alert.")
    note: str | None = strawberry.field(default=None, description="What is being done about it.")
    guards: GuardsInput | None = guards_field(versioned=False)


@strawberry.type(description="Result of saving an alert rule.")
class AlertRulePayload:
    alert_rule: AlertRule | None = strawberry.field(description="The rule as saved.")
    errors: list[UserError] = strawberry.field(description="Empty on success.")


@strawberry.type(description="Result of acknowledging an alert.")
class AlertPayload:
    alert: Alert | None = strawberry.field(description="The alert.")
    errors: list[UserError] = strawberry.field(description="Empty on success.")


ALERT_ORDER: KeysetOrder[model.Alert] = KeysetOrder(
    "Alert", (timestamp, uuid_part), lambda a: (a.fired_at, a.id)
)
"""Alerts' cursors: the key of `db.alerts.ALERT_KEY` (time fired, id)."""
MAX_ALERT_PAGE = 100


@strawberry.type
class AlertQueries:
    @strawberry.field(description="The tenant's alert rules, by name (read_analytics).")
    async def alert_rules(self, info: Info[SignoffContext, Any]) -> list[AlertRule]:
        try:
            found = await alert_services.rules(actor_of(info), services_of(info))
        except DomainError as exc:
            raise CodedError(exc) from None
        return [AlertRule.from_record(r) for r in found]

    @strawberry.field(
        description="The tenant's alerts, newest first (read_analytics); pages of up to "
        f"{MAX_ALERT_PAGE} (default {DEFAULT_PAGE})."
    )
    async def alerts(
        self,
        info: Info[SignoffContext, Any],
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        open: Annotated[
            bool | None,
            strawberry.argument(description="Only open (true) or only cleared (false) alerts."),
        ] = None,
    ) -> Connection[Alert]:
        try:
            page = page_args(first, after, last, before, MAX_ALERT_PAGE, DEFAULT_PAGE)
            rows = await alert_services.alerts_page(
                actor_of(info), services_of(info), open_only=open, window=ALERT_ORDER.window(page)
            )
        except DomainError as exc:
            raise CodedError(exc) from None
        return connection(page, ALERT_ORDER, rows, Alert.from_record)


@strawberry.type
class AlertMutations:
    @strawberry.mutation(
        description="Create or replace an alert rule (admins); audited. Disabling a firing "
        "rule clears its alert."
    )
    async def save_alert_rule(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[SaveAlertRuleInput, strawberry.argument(description="The rule.")],
    ) -> AlertRulePayload:
        actor = actor_of(info)
        try:
            seconds = input.window_seconds
            spec = model.AlertRuleSpec(
                name=input.name,
                kind=input.rule_kind,
                threshold=input.threshold,
                window=timedelta(seconds=max(0, min(seconds, 10**9)))
                if seconds is not None
                else None,
                notify=model.Recipients(
                    tuple(input.users), tuple(input.groups), tuple(input.roles)
                ),
                template_key=input.template_key,
                min_samples=input.min_samples,
                enabled=input.enabled,
            )
            rule = await alert_services.save_rule(
                actor,
                services_of(info),
                alert_services.SaveRuleInput(
                    spec=spec,
                    rule_id=ids.decode_uuid(input.id, "AlertRule") if input.id else None,
                    expected_version=versioned_guards(input.guards).expected_version,
                    idempotency_key=versioned_guards(input.guards).idempotency_key,
                ),
            )
        except DomainError as exc:
            return AlertRulePayload(alert_rule=None, errors=[user_error(exc)])
        return AlertRulePayload(alert_rule=AlertRule.from_record(rule), errors=[])

    @strawberry.mutation(description="Acknowledge an alert (admins); audited.")
    async def acknowledge_alert(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[AcknowledgeAlertInput, strawberry.argument(description="The alert.")],
    ) -> AlertPayload:
        actor = actor_of(info)
        try:
            alert = await alert_services.acknowledge(
                actor,
                services_of(info),
                ids.decode_uuid(input.id, "Alert"),
                input.note,
                key_guards(input.guards).idempotency_key,
            )
        except DomainError as exc:
            return AlertPayload(alert=None, errors=[user_error(exc)])
        return AlertPayload(alert=Alert.from_record(alert), errors=[])


async def alert_rule_node(actor: Any, ctx: Any, raw: str) -> AlertRule:
    """`node(id:)` of an AlertRule."""
    return AlertRule.from_record(await alert_services.get_rule(actor, ctx, _uuid(raw)))


async def alert_node(actor: Any, ctx: Any, raw: str) -> Alert:
    """`node(id:)` of an Alert."""
    return Alert.from_record(await alert_services.get_alert(actor, ctx, _uuid(raw)))


def _uuid(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise DomainError(ErrorCode.INVALID_INPUT, "not a valid id", "id") from None

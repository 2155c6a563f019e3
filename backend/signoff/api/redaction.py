"""Redaction rules through GraphQL (admins): which payload fields which roles may see."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.errors import CodedError, UserError, user_error
from signoff.api.guards import GuardsInput, guards_field, key_guards
from signoff.domain.errors import DomainError
from signoff.domain.redaction import RedactionRule as RuleRecord
from signoff.services import redaction as redaction_services


@strawberry.type(description="A payload field that only some roles may see.")
class RedactionRule:
    template_key: str | None = strawberry.field(
        description="The template whose payloads it applies to; null for every template."
    )
    path: str = strawberry.field(
        description="Dotted path of the field (`customer.iban`); through a list it applies to "
        "every element."
    )
    visible_to: list[str] = strawberry.field(
        description="Roles that see the field; everyone else gets the payload without it."
    )

    @classmethod
    def from_record(cls, rule: RuleRecord) -> RedactionRule:
        """Map a rule."""
        return cls(
            template_key=rule.template_key or None,
            path=rule.dotted,
            visible_to=sorted(rule.visible_to),
        )


@strawberry.input(description="Create or replace a redaction rule (administer_redaction).")
class SetRedactionRuleInput:
    path: str = strawberry.field(description="Dotted path of the payload field.")
    visible_to: list[str] = strawberry.field(description="Roles that may see it (may be empty).")
    template_key: str | None = strawberry.field(
        default=None, description="Only the payloads of this template; omitted: every template."
    )
    reason: str | None = strawberry.field(default=None, description="Why, for the audit trail.")
    guards: GuardsInput | None = guards_field(versioned=False)


@strawberry.input(description="Remove a redaction rule (administer_redaction).")
class RemoveRedactionRuleInput:
    path: str = strawberry.field(description="Dotted path of the payload field.")
    template_key: str | None = strawberry.field(
        default=None, description="The template of the rule; omitted: the every-template rule."
    )
    reason: str | None = strawberry.field(default=None, description="Why, for the audit trail.")
    guards: GuardsInput | None = guards_field(versioned=False)


@strawberry.type(description="Result of setting or removing a redaction rule.")
class RedactionRulePayload:
    rule: RedactionRule | None = strawberry.field(description="The rule set, or the one removed.")
    errors: list[UserError] = strawberry.field(description="Empty on success.")


@strawberry.type
class RedactionQueries:
    @strawberry.field(description="The tenant's redaction rules (administer_redaction).")
    async def redaction_rules(self, info: Info[SignoffContext, Any]) -> list[RedactionRule]:
        actor = actor_of(info)
        try:
            rules = await redaction_services.list_rules(actor, services_of(info))
        except DomainError as exc:
            raise CodedError(exc) from None
        return [RedactionRule.from_record(r) for r in rules]


@strawberry.type
class RedactionMutations:
    @strawberry.mutation(
        description="Create or replace a redaction rule: from now on, every read, push and "
        "export of the payload leaves the field out for anyone without one of its roles "
        "(administer_redaction; audited)."
    )
    async def set_redaction_rule(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[SetRedactionRuleInput, strawberry.argument(description="The rule.")],
    ) -> RedactionRulePayload:
        actor = actor_of(info)
        try:
            rule = await redaction_services.set_rule(
                actor,
                services_of(info),
                redaction_services.SetRuleInput(
                    path=input.path,
                    visible_to=tuple(input.visible_to),
                    template_key=input.template_key,
                    reason=input.reason,
                ),
                key_guards(input.guards),
            )
        except DomainError as exc:
            return RedactionRulePayload(rule=None, errors=[user_error(exc)])
        return RedactionRulePayload(rule=RedactionRule.from_record(rule), errors=[])

    @strawberry.mutation(description="Remove a redaction rule (administer_redaction; audited).")
    async def remove_redaction_rule(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[RemoveRedactionRuleInput, strawberry.argument(description="Which.")],
    ) -> RedactionRulePayload:
        actor = actor_of(info)
        try:
            rule = await redaction_services.remove_rule(
                actor,
                services_of(info),
                input.path,
                input.template_key,
                input.reason,
                key_guards(input.guards),
            )
        except DomainError as exc:
            return RedactionRulePayload(rule=None, errors=[user_error(exc)])
        return RedactionRulePayload(rule=RedactionRule.from_record(rule), errors=[])

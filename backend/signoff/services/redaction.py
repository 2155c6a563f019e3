"""Redaction rules: set and remove them (admins, audited), and the redactor of a reader.

Every path a payload leaves signoff by asks `redactor` for the caller's view of it: item reads
(`WorkflowItem.payload`, also inside `inboxChanged`), audit events (`WorkflowItem.auditEvents`,
`itemEvents`) and exports. The rule itself is `domain/redaction.py`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from signoff.db import redaction as repo
from signoff.domain.actors import Actor
from signoff.domain.errors import not_found
from signoff.domain.permissions import Permission
from signoff.domain.redaction import (
    RedactionRule,
    Redactor,
    check_rule,
    parse_path,
    redactor_for,
)
from signoff.services import permissions
from signoff.services.context import ServiceContext
from signoff.services.uow import Guards, run_once, unit_of_work


@dataclass(frozen=True)
class SetRuleInput:
    """Field `path` of the payloads of `template_key` (every template when None) is shown only
    to `visible_to`."""

    path: str
    visible_to: tuple[str, ...]
    template_key: str | None = None
    reason: str | None = None


def _data(rule: RedactionRule | None) -> dict[str, object] | None:
    if rule is None:
        return None
    return {
        "template_key": rule.template_key,
        "path": rule.dotted,
        "visible_to": sorted(rule.visible_to),
    }


def _kept(rule: RedactionRule) -> dict[str, Any]:
    kept = _data(rule)
    assert kept is not None
    return kept


async def _replayed(kept: dict[str, Any]) -> RedactionRule:
    return RedactionRule(
        kept["template_key"], parse_path(kept["path"]), frozenset(kept["visible_to"])
    )


async def set_rule(
    actor: Actor, ctx: ServiceContext, inp: SetRuleInput, guards: Guards = Guards()
) -> RedactionRule:
    """Create or replace a redaction rule (admins; audited as `redaction.rule_set`)."""
    await permissions.require(
        actor, ctx, Permission.ADMINISTER_REDACTION, "changing or reading redaction rules"
    )
    rule = check_rule(inp.template_key, inp.path, inp.visible_to)
    async with unit_of_work(actor, ctx) as uow:

        async def change() -> RedactionRule:
            before = await repo.put_rule(actor.tenant_id, rule, actor.user_id, ctx.clock.now())
            uow.record(
                "redaction.rule_set",
                reason=inp.reason,
                data={"before": _data(before), "after": _data(rule)},
            )
            return rule

        return await run_once(
            uow,
            guards.idempotency_key,
            "setRedactionRule",
            asdict(inp),
            change,
            keep=_kept,
            replay=_replayed,
        )


async def remove_rule(
    actor: Actor,
    ctx: ServiceContext,
    path: str,
    template_key: str | None = None,
    reason: str | None = None,
    guards: Guards = Guards(),
) -> RedactionRule:
    """Remove a redaction rule (admins; audited as `redaction.rule_removed`); NOT_FOUND when
    there is none."""
    await permissions.require(
        actor, ctx, Permission.ADMINISTER_REDACTION, "changing or reading redaction rules"
    )
    dotted = ".".join(parse_path(path))
    key = (template_key or "").strip()
    async with unit_of_work(actor, ctx) as uow:

        async def change() -> RedactionRule:
            removed = await repo.delete_rule(actor.tenant_id, key, dotted)
            if removed is None:
                raise not_found("redaction rule", dotted)
            uow.record("redaction.rule_removed", reason=reason, data={"before": _data(removed)})
            return removed

        return await run_once(
            uow,
            guards.idempotency_key,
            "removeRedactionRule",
            {"template_key": key, "path": dotted, "reason": reason},
            change,
            keep=_kept,
            replay=_replayed,
        )


async def list_rules(actor: Actor, ctx: ServiceContext) -> list[RedactionRule]:
    """The tenant's redaction rules (admins)."""
    await permissions.require(
        actor, ctx, Permission.ADMINISTER_REDACTION, "changing or reading redaction rules"
    )
    return await repo.rules_of(actor.tenant_id)


async def rules_of(tenant_id: str) -> list[RedactionRule]:
    """The tenant's rules, to hide fields with (no permission: they only ever take away)."""
    return await repo.rules_of(tenant_id)


async def redactor(actor: Actor, template_key: str) -> Redactor:
    """What `actor` may not see of the payloads of `template_key`."""
    return redactor_for(await repo.rules_of(actor.tenant_id), template_key, actor.principal)

"""Alert rules: administrators keep them, the worker evaluates them, an alert fires once per
episode and reaches its recipients through the notification pipeline (its `alert.fired` audit
event is planned like any other, and so is `alert.cleared`: the "resolved" notification),
auditors and admins read and acknowledge alerts."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from signoff import metrics
from signoff.db import alerts as repo
from signoff.db import analytics as figures
from signoff.db.paging import Window
from signoff.domain.actors import Actor
from signoff.domain.alerts import (
    MAX_RULES_PER_TENANT,
    Alert,
    AlertRule,
    AlertRuleKind,
    AlertRuleSpec,
    Measurement,
    Move,
    check_note,
    check_rule,
    describe,
    describe_resolution,
    next_move,
    past_threshold,
)
from signoff.domain.errors import DomainError, ErrorCode, not_found
from signoff.domain.permissions import Permission
from signoff.services import permissions, scopes
from signoff.services.analytics import require_analytics_reader
from signoff.services.context import ServiceContext
from signoff.services.uow import UnitOfWork, remember_result, replayed_result, unit_of_work

log = logging.getLogger("signoff.alerts")


async def _require_admin(actor: Actor, ctx: ServiceContext) -> None:
    await permissions.require(
        actor, ctx, Permission.ADMINISTER_ALERTS, "changing alert rules or acknowledging alerts"
    )


def _rule_data(spec: AlertRuleSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "kind": spec.kind.value,
        "template_key": spec.template_key,
        "threshold": spec.threshold,
        "window_seconds": int(spec.window.total_seconds()) if spec.window else None,
        "min_samples": spec.min_samples,
        "notify": spec.notify.to_dict(),
        "enabled": spec.enabled,
    }


@dataclass(frozen=True)
class SaveRuleInput:
    """Create a rule (no id) or replace one (its id, optionally the version it expects)."""

    spec: AlertRuleSpec
    rule_id: UUID | None = None
    expected_version: int | None = None
    idempotency_key: str | None = None


async def save_rule(actor: Actor, ctx: ServiceContext, inp: SaveRuleInput) -> AlertRule:
    """Create or replace an alert rule (admins), audited as `alert_rule.created` or
    `alert_rule.updated`. Names are unique per tenant; disabling a firing rule clears its
    alert (`alert.cleared`)."""
    await _require_admin(actor, ctx)
    spec = check_rule(inp.spec)
    fingerprint = {
        "rule": str(inp.rule_id) if inp.rule_id else None,
        "spec": _rule_data(spec),
        "expected": inp.expected_version,
    }
    async with unit_of_work(actor, ctx) as uow:
        replay = await replayed_result(uow, inp.idempotency_key, "saveAlertRule", fingerprint)
        if replay is not None:
            rule = await repo.get_rule(actor.tenant_id, UUID(replay["rule_id"]))
            if rule is None:
                raise not_found("alert rule", replay["rule_id"])
            return rule
        now = ctx.clock.now()
        if inp.rule_id is None:
            rule = await _create(actor, spec, now)
            uow.record("alert_rule.created", data={"rule_id": rule.id, **_rule_data(spec)})
        else:
            rule = await _replace(uow, actor, inp, spec, now)
        await remember_result(uow, inp.idempotency_key, {"rule_id": rule.id})
    return rule


async def _create(actor: Actor, spec: AlertRuleSpec, now: datetime) -> AlertRule:
    if await repo.count_rules(actor.tenant_id) >= MAX_RULES_PER_TENANT:
        raise DomainError(
            ErrorCode.LIMIT_EXCEEDED, f"a tenant has at most {MAX_RULES_PER_TENANT} alert rules"
        )
    rule = await repo.insert_rule(actor.tenant_id, uuid.uuid4(), spec, actor.user_id, now)
    if rule is None:
        raise DomainError(ErrorCode.INVALID_INPUT, f"a rule named {spec.name!r} exists", "name")
    return rule


async def _replace(
    uow: UnitOfWork, actor: Actor, inp: SaveRuleInput, spec: AlertRuleSpec, now: datetime
) -> AlertRule:
    assert inp.rule_id is not None
    before = await repo.get_rule(actor.tenant_id, inp.rule_id, lock=True)
    if before is None:
        raise not_found("alert rule", inp.rule_id)
    if inp.expected_version is not None and inp.expected_version != before.version:
        raise DomainError(
            ErrorCode.VERSION_CONFLICT,
            f"the rule is at version {before.version}, not {inp.expected_version}",
            "guards.expectedVersion",
        )
    if await repo.name_taken(actor.tenant_id, spec.name, inp.rule_id):
        raise DomainError(ErrorCode.INVALID_INPUT, f"a rule named {spec.name!r} exists", "name")
    clear = before.firing and not spec.enabled
    cleared = await repo.end_episode(before, now) if clear else None
    rule = await repo.update_rule(actor.tenant_id, inp.rule_id, spec, now, clear=clear)
    uow.record(
        "alert_rule.updated",
        data={"rule_id": rule.id, "before": _rule_data(before.spec), "after": _rule_data(spec)},
    )
    if cleared is not None:
        data = _alert_data(rule, cleared, reason="rule disabled", resolution=_resolution(rule))
        uow.record("alert.cleared", data=data)
    return rule


async def rules(actor: Actor, ctx: ServiceContext) -> list[AlertRule]:
    """The tenant's rules (auditors and admins)."""
    await require_analytics_reader(actor, ctx)
    with scopes.acting_as(actor):
        return await repo.rules_of(actor.tenant_id)


async def get_rule(actor: Actor, ctx: ServiceContext, rule_id: UUID) -> AlertRule:
    """One rule (auditors and admins); NOT_FOUND otherwise."""
    await require_analytics_reader(actor, ctx)
    with scopes.acting_as(actor):
        rule = await repo.get_rule(actor.tenant_id, rule_id)
    if rule is None:
        raise not_found("alert rule", rule_id)
    return rule


async def get_alert(actor: Actor, ctx: ServiceContext, alert_id: UUID) -> Alert:
    """One alert (auditors and admins); NOT_FOUND otherwise."""
    await require_analytics_reader(actor, ctx)
    with scopes.acting_as(actor):
        alert = await repo.get_alert(actor.tenant_id, alert_id)
    if alert is None:
        raise not_found("alert", alert_id)
    return alert


async def alerts_page(
    actor: Actor,
    ctx: ServiceContext,
    *,
    open_only: bool | None,
    window: Window,
) -> list[Alert]:
    """A keyset page of the tenant's alerts, newest first (auditors and admins)."""
    await require_analytics_reader(actor, ctx)
    with scopes.acting_as(actor):
        return await repo.alerts_page(actor.tenant_id, open_only=open_only, window=window)


async def acknowledge(
    actor: Actor,
    ctx: ServiceContext,
    alert_id: UUID,
    note: str | None,
    idempotency_key: str | None = None,
) -> Alert:
    """Acknowledge an alert (admins), audited as `alert.acknowledged`; an alert someone
    already acknowledged is ILLEGAL_TRANSITION (a replay with the same key returns it)."""
    await _require_admin(actor, ctx)
    text = check_note(note)
    async with unit_of_work(actor, ctx) as uow:
        payload = {"alert": str(alert_id), "note": text}
        if await replayed_result(uow, idempotency_key, "acknowledgeAlert", payload) is not None:
            alert = await repo.get_alert(actor.tenant_id, alert_id)
            if alert is None:
                raise not_found("alert", alert_id)
            return alert
        alert = await repo.get_alert(actor.tenant_id, alert_id, lock=True)
        if alert is None:
            raise not_found("alert", alert_id)
        if alert.acknowledged_by is not None:
            raise DomainError(
                ErrorCode.ILLEGAL_TRANSITION,
                f"the alert was acknowledged by {alert.acknowledged_by}",
                "id",
            )
        alert = await repo.acknowledge(
            actor.tenant_id, alert_id, actor.user_id, text, ctx.clock.now()
        )
        uow.record(
            "alert.acknowledged",
            reason=text,
            data={"alert_id": alert.id, "rule_id": alert.rule_id, "episode": alert.episode},
        )
        await remember_result(uow, idempotency_key, {"alert_id": alert.id})
    return alert


# --------------------------------------------------------------------------- evaluation


async def measure(tenant_id: str, rule: AlertRule, now: datetime) -> Measurement:
    """The rule's figure now, by the analytics' definitions (docs/operations/analytics.md)."""
    spec = rule.spec
    templates = None
    if spec.template_key is not None:
        templates = await figures.template_versions(tenant_id, spec.template_key)
    if spec.kind is AlertRuleKind.BACKLOG:
        count = await figures.open_items(tenant_id, templates)
        return Measurement(count, count)
    assert spec.window is not None
    if spec.kind is AlertRuleKind.STUCK_ITEMS:
        count, _ = await figures.stuck_items(tenant_id, now - spec.window, templates, 0)
        return Measurement(count, count)
    # the window ends with now, included (an analytics period excludes its end)
    end = now + timedelta(microseconds=1)
    if spec.kind is AlertRuleKind.REJECTION_RATE:
        counts = await figures.action_counts(tenant_id, now - spec.window, end, templates)
        outcomes = [
            counts.get(a, 0) for a in ("step.approve", "step.reject", "step.request_changes")
        ]
        total = sum(outcomes)
        return Measurement(outcomes[1] / total if total else 0.0, total)
    sla = await figures.sla_figures(tenant_id, now - spec.window, end, end, templates)
    return Measurement(sla.breached / sla.due if sla.due else 0.0, sla.due)


def _alert_data(rule: AlertRule, alert: Alert, **extra: Any) -> dict[str, Any]:
    """What an alert event records, and what its notification is built from."""
    return {
        "alert_id": alert.id,
        "rule_id": rule.id,
        "rule_name": rule.spec.name,
        "kind": rule.spec.kind.value,
        "episode": alert.episode,
        "value": alert.value,
        "samples": alert.samples,
        "threshold": alert.threshold,
        "template_key": rule.spec.template_key,
        "summary": describe(rule.spec.kind, alert.value, alert.threshold, rule.spec.window),
        "notify": rule.spec.notify.to_dict(),
        **extra,
    }


def _resolution(rule: AlertRule, value_now: float | None = None) -> str:
    """The summary of an alert's "resolved" notification."""
    spec = rule.spec
    return describe_resolution(spec.kind, value_now, spec.threshold, spec.window)


@dataclass
class Evaluation:
    """What one evaluation round did."""

    evaluated: int = 0
    fired: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    skipped: int = 0


async def evaluate_rule(ctx: ServiceContext, tenant_id: str, rule_id: UUID) -> Move | None:
    """Evaluate one rule in one transaction holding its row: fire (a new episode, its alert
    and `alert.fired`), clear (`alert.cleared`, re-armed) or stay. None when another
    evaluator holds the rule, or it is gone or disabled."""
    async with unit_of_work(Actor.system(tenant_id, request_id="alerts"), ctx) as uow:
        rule = await repo.claim_rule(tenant_id, rule_id)
        if rule is None:
            return None
        now = ctx.clock.now()
        measured = await measure(tenant_id, rule, now)
        move = next_move(rule.firing, past_threshold(rule.spec, measured))
        if move is Move.FIRE:
            alert = await repo.start_episode(
                rule, uuid.uuid4(), measured.value, measured.samples, now
            )
            uow.record("alert.fired", data=_alert_data(rule, alert))
        elif move is Move.CLEAR:
            cleared = await repo.end_episode(rule, now)
            if cleared is not None:
                resolution = _resolution(rule, measured.value)
                data = _alert_data(rule, cleared, value_now=measured.value, resolution=resolution)
                uow.record("alert.cleared", data=data)
    metrics.ALERT_EVALUATIONS.labels(rule.spec.kind.value, move.value).inc()
    if move is Move.FIRE:
        metrics.ALERTS_FIRED.labels(rule.spec.kind.value).inc()
    return move


async def evaluate_rules(ctx: ServiceContext, tenants: Sequence[str] | None = None) -> Evaluation:
    """Evaluate every enabled rule (of `tenants` when given), each in its own transaction;
    one rule failing is logged and does not stop the others."""
    with scopes.across_tenants("the alert evaluator reads every tenant's enabled rules"):
        found = await repo.enabled_rules(tenants)
    done = Evaluation()
    for tenant_id, rule_id in found:
        try:
            with scopes.for_tenant(tenant_id):
                move = await evaluate_rule(ctx, tenant_id, rule_id)
        except Exception:
            log.exception("evaluating alert rule %s of %s failed", rule_id, tenant_id)
            continue
        if move is None:
            done.skipped += 1
            continue
        done.evaluated += 1
        if move is Move.FIRE:
            done.fired.append(str(rule_id))
        elif move is Move.CLEAR:
            done.cleared.append(str(rule_id))
    return done

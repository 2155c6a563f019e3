"""The notification pipeline: audit events → recipients → preferences → deliveries → attempts.

The database holds the truth. Planning turns a tenant's audit events after its cursor into
`notification_delivery` rows (one per event, channel and recipient, de-duplicated by an
idempotency key) and advances the cursor in the same transaction, so it can be run any number
of times. Delivering makes one attempt under a row lock, stores it, and schedules the next one
with backoff or dead-letters the delivery with an audit event. The job queue only carries ids.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from signoff import metrics
from signoff.db import audit as audit_repo
from signoff.db import notifications as repo
from signoff.domain import notification_policy as policy
from signoff.domain.actors import Actor, Principal
from signoff.domain.global_ids import global_id
from signoff.domain.records import Item, Step, StepAssignees
from signoff.notify import (
    DeliveryResult,
    DeliveryStatus,
    NotificationEvent,
    NotifierRegistry,
    Recipient,
    RenderedMessage,
)
from signoff.services import comments as comment_services
from signoff.services import decision_links, scopes
from signoff.services.context import ServiceContext
from signoff.services.uow import UnitOfWork, unit_of_work

log = logging.getLogger("signoff.notifications")

DIGEST_KIND = "digest"
ALERT_KIND = "alert"
ALERT_CLEARED = "alert.cleared"
MAX_DIGEST_LINES = 50


@dataclass(frozen=True)
class Due:
    """A delivery ready to be attempted: what the job queue needs to run it."""

    delivery_id: int
    attempts: int


# --------------------------------------------------------------------------- planning


@dataclass
class _Batch:
    """Rows loaded once per planning batch."""

    items: dict[UUID, Item]
    steps: dict[UUID, Step]


async def plan_notifications(
    ctx: ServiceContext, tenant_id: str, *, channels: Collection[str] | None = None
) -> list[Due]:
    """Turn the tenant's unplanned audit events into deliveries; return those due now.

    Runs in one transaction holding the tenant's cursor row: concurrent planners of one
    tenant queue up, and a crash plans nothing twice (the cursor and the deliveries commit
    together; the idempotency key makes a re-run harmless anyway). `channels` limits planning
    to the channels that are enabled; None plans every channel a recipient has an address on.
    """
    due: list[Due] = []
    size = max(1, ctx.settings.notify_batch_size)
    with scopes.for_tenant(tenant_id):
        while True:
            async with repo.transaction():
                cursor = await repo.lock_cursor(tenant_id)
                events = await audit_repo.events_after(tenant_id, cursor, size)
                if not events:
                    return due
                batch = await _load_batch(tenant_id, events)
                for event in events:
                    due += await _plan_event(ctx, tenant_id, event, batch, channels)
                await repo.advance_cursor(tenant_id, int(events[-1]["seq"]), ctx.clock.now())
            if len(events) < size:
                return due


async def _load_batch(tenant_id: str, events: list[dict[str, Any]]) -> _Batch:
    item_ids = {e["item_id"] for e in events if e["item_id"] is not None}
    step_ids = {e["step_id"] for e in events if e["step_id"] is not None}
    return _Batch(
        items=await repo.items_by_id(tenant_id, sorted(item_ids)),
        steps=await repo.steps_by_id(tenant_id, sorted(step_ids)),
    )


async def _recipients(
    tenant_id: str, kind: str, event: dict[str, Any], item: Item, step: Step | None
) -> list[dict[str, Any]]:
    """Profiles of the people an event concerns, without the actor who caused it."""
    users: set[str] = set()
    groups: set[str] = set()
    roles: set[str] = set()
    if kind in ("decision", "failure"):
        users.add(item.requester_id)
    elif step is not None:
        data = event.get("data") or {}
        if event["action"] == "step.reassign" and "delegate" in data:
            users.add(data["delegate"])
        elif event["action"] == "step.reassign" and isinstance(data.get("after"), dict):
            after = await _expand(tenant_id, data["after"])
            before = await _expand(tenant_id, data.get("before") or {})
            users |= {p["user_id"] for p in after} - {p["user_id"] for p in before}
        else:
            users, groups, roles = policy.step_assignee_sets(step.assignees)
    if not (users or groups or roles):
        return []
    profiles = await repo.profiles_matching(tenant_id, sorted(users), sorted(groups), sorted(roles))
    keep = set(policy.without((p["user_id"] for p in profiles), {event["actor_id"]}))
    return [p for p in profiles if p["user_id"] in keep]


async def _mention_recipients(
    ctx: ServiceContext, tenant_id: str, event: dict[str, Any]
) -> list[dict[str, Any]]:
    """Profiles of the people a comment change newly mentions who may read the item."""
    data = event.get("data") or {}
    mentioned = policy.without(data.get("mentioned") or [], {event["actor_id"]})
    if not mentioned:
        return []
    profiles = await repo.profiles_matching(tenant_id, mentioned, [], [])
    people = [
        Principal(p["user_id"], tenant_id, frozenset(p["roles"]), frozenset(p["groups"]))
        for p in profiles
        if p["user_id"] in mentioned
    ]
    readers = await comment_services.mention_readers(ctx, tenant_id, event["item_id"], people)
    allowed = {p.user_id for p in readers}
    return [p for p in profiles if p["user_id"] in allowed]


async def _expand(tenant_id: str, assignees: dict[str, Any]) -> list[dict[str, Any]]:
    """Profiles of the people that assignees, as an audit event records them, name."""
    users, groups, roles = policy.step_assignee_sets(StepAssignees.from_dict(assignees))
    if not (users or groups or roles):
        return []
    return await repo.profiles_matching(tenant_id, sorted(users), sorted(groups), sorted(roles))


def _event_payload(
    ctx: ServiceContext,
    kind: str,
    event: dict[str, Any],
    item: Item,
    step: Step | None,
) -> dict[str, Any]:
    """The event as plugins will see it, frozen at planning time."""
    step_name = step.name if step else None
    data = event.get("data") or {}
    summaries = {
        "assignment": f"{step_name} needs your decision.",
        "escalation": f"{step_name} was escalated and needs your decision.",
        "reminder": f"Reminder: {step_name} is waiting for your decision.",
        "deadline_risk": f"{step_name} is about to miss its deadline.",
        "decision": f"Your request was {data.get('to', event['action'].split('.')[-1])}.",
        "mention": f"{event['actor_id']} mentioned you in a comment.",
        "failure": f"{step_name or 'The item'} failed"
        + (f": {step.error}" if step and step.error else "."),
    }
    due_at = (step.due_at if step else None) or item.due_at
    return {
        "kind": kind,
        "action": event["action"],
        "item_id": str(item.id),
        "step_id": str(step.id) if step else None,
        "step_key": step.key if step else None,
        "step_kind": step.kind.value if step else None,
        "title": item.title,
        "summary": summaries.get(kind, ""),
        "risk": (step.risk if step else item.risk).value,
        "due_at": due_at.isoformat() if due_at else None,
        "link": f"{ctx.settings.public_url.rstrip('/')}/items/{item.id}",
        "occurred_at": event["occurred_at"].isoformat(),
        "actor_id": event["actor_id"],
        "reason": event.get("reason"),
        "comment_id": data.get("comment_id") if kind == "mention" else None,
    }


async def _plan_event(
    ctx: ServiceContext,
    tenant_id: str,
    event: dict[str, Any],
    batch: _Batch,
    channels: Collection[str] | None,
) -> list[Due]:
    kind = policy.KIND_OF_ACTION.get(event["action"])
    if kind == ALERT_KIND:
        data = event.get("data") or {}
        users, groups, roles = policy.step_assignee_sets(StepAssignees.from_dict(data["notify"]))
        profiles = await repo.profiles_matching(
            tenant_id, sorted(users), sorted(groups), sorted(roles)
        )
        payload = _alert_payload(event)
        return await _deliveries(ctx, tenant_id, event, kind, payload, profiles, channels)
    if kind is None or event["item_id"] is None:
        return []
    item = batch.items.get(event["item_id"])
    if item is None:
        return []
    step = batch.steps.get(event["step_id"]) if event["step_id"] is not None else None
    state = step.state.value if step is not None else None
    if not policy.concerns_open_step(kind, state, event.get("data") or {}):
        return []
    payload = _event_payload(ctx, kind, event, item, step)
    recipients = (
        await _mention_recipients(ctx, tenant_id, event)
        if kind == "mention"
        else await _recipients(tenant_id, kind, event, item, step)
    )
    return await _deliveries(ctx, tenant_id, event, kind, payload, recipients, channels)


def _alert_payload(event: dict[str, Any]) -> dict[str, Any]:
    """An alert as plugins will see it: about a rule of the tenant, not an item; fired
    (`alert.fired`) or resolved (`alert.cleared`)."""
    data = event.get("data") or {}
    resolved = event["action"] == ALERT_CLEARED
    return {
        "kind": ALERT_KIND,
        "action": event["action"],
        "alert_status": "resolved" if resolved else "firing",
        "item_id": None,
        "step_id": None,
        "step_key": None,
        "title": f"{'Resolved' if resolved else 'Alert'}: {data.get('rule_name', '')}",
        "summary": data.get("resolution", "") if resolved else data.get("summary", ""),
        "risk": None,
        "due_at": None,
        "link": None,
        "occurred_at": event["occurred_at"].isoformat(),
        "actor_id": event["actor_id"],
        "reason": None,
        "alert_id": data.get("alert_id"),
        "rule_id": data.get("rule_id"),
    }


async def _deliveries(
    ctx: ServiceContext,
    tenant_id: str,
    event: dict[str, Any],
    kind: str,
    payload: dict[str, Any],
    recipients: list[dict[str, Any]],
    channels: Collection[str] | None,
) -> list[Due]:
    """One delivery per recipient and channel their preferences choose; those due now."""
    now = ctx.clock.now()
    planned = []
    for profile in recipients:
        prefs = policy.preferences_or_default(profile["preferences"])
        addresses = {c: a for c, a in (profile["addresses"] or {}).items() if a}
        available = [c for c in addresses if channels is None or c in channels]
        for channel in prefs.channels_for(kind, available):
            planned.append((profile, prefs, channel, addresses[channel]))
    rows = await _insert_deliveries(ctx, tenant_id, event, kind, payload, planned, now)
    return [
        Due(row["id"], row["attempts"])
        for row in rows
        if row["status"] == "queued" and row["next_attempt_at"] <= now
    ]


async def _insert_deliveries(
    ctx: ServiceContext,
    tenant_id: str,
    event: dict[str, Any],
    kind: str,
    payload: dict[str, Any],
    planned: list[tuple[dict[str, Any], policy.Preferences, str, str]],
    now: datetime,
) -> list[dict[str, Any]]:
    """The deliveries of one event, one per (recipient, channel) in `planned`, in one
    statement (those whose idempotency key exists are left out); the new rows."""
    if not planned:
        return []
    priority = policy.priority_of(kind)
    critical = policy.is_critical(kind)
    burst = await _bursting(
        ctx,
        tenant_id,
        priority,
        [
            (channel, profile["user_id"])
            for profile, prefs, channel, _ in planned
            if not critical and not prefs.wants_digest(kind)
        ],
    )
    values = []
    for profile, prefs, channel, address in planned:
        user = profile["user_id"]
        status = "queued"
        next_at: datetime | None = now
        if not critical:
            next_at = (prefs.quiet_hours.until(now) if prefs.quiet_hours else None) or now
            if prefs.wants_digest(kind) or (channel, user) in burst:
                status, next_at = "digested", None
        values.append(
            {
                "tenant_id": tenant_id,
                "event_seq": event["seq"],
                "event_kind": kind,
                "channel": channel,
                "recipient_id": user,
                "address": address,
                "idempotency_key": f"{tenant_id}:{event['seq']}:{channel}:{user}",
                "status": status,
                "priority": priority,
                "max_attempts": ctx.settings.notify_max_attempts,
                "next_attempt_at": next_at,
                "payload": {**payload, "recipient_name": profile["display_name"]},
                "now": now,
            }
        )
    return await repo.insert_deliveries(values)


async def _bursting(
    ctx: ServiceContext, tenant_id: str, priority: str, wanted: list[tuple[str, str]]
) -> set[tuple[str, str]]:
    """The (channel, recipient) pairs for which one more foldable notification would exceed
    the recipient's burst threshold (one statement for all)."""
    if priority not in policy.FOLDABLE_PRIORITIES or not wanted:
        return set()
    window = timedelta(seconds=ctx.settings.notify_digest_window_seconds)
    recent = await repo.recent_foldable_counts(
        tenant_id, wanted, ctx.clock.now() - window, sorted(policy.FOLDABLE_PRIORITIES)
    )
    threshold = ctx.settings.notify_digest_threshold
    return {pair for pair in wanted if recent.get(pair, 0) >= threshold}


# --------------------------------------------------------------------------- digests


async def flush_digests(ctx: ServiceContext) -> list[Due]:
    """Fold held deliveries whose window has passed (of `timer_tenants` when that setting
    names any) into one digest delivery per recipient and channel; return the digests due
    now."""
    now = ctx.clock.now()
    window = timedelta(seconds=ctx.settings.notify_digest_window_seconds)
    due: list[Due] = []
    with scopes.across_tenants("digest windows of every tenant"):
        groups = await repo.held_groups(now - window, ctx.settings.timer_tenants or None)
    for group in groups:
        with scopes.for_tenant(group["tenant_id"]):
            async with repo.transaction():
                held = await repo.lock_held(
                    group["tenant_id"], group["channel"], group["recipient_id"]
                )
                if not held:
                    continue
                row = await _insert_digest(ctx, held, now)
                if row is None:
                    continue
                await repo.attach_to_digest([h["id"] for h in held], row["id"], now)
        if row["next_attempt_at"] <= now:
            due.append(Due(row["id"], row["attempts"]))
    return due


async def _insert_digest(
    ctx: ServiceContext, held: list[dict[str, Any]], now: datetime
) -> dict[str, Any] | None:
    first, last = held[0], held[-1]
    tenant_id, channel, user = first["tenant_id"], first["channel"], first["recipient_id"]
    profile = await repo.get_profile(tenant_id, user)
    prefs = policy.preferences_or_default(profile["preferences"] if profile else None)
    next_at = (prefs.quiet_hours.until(now) if prefs.quiet_hours else None) or now
    lines = [
        f"- {h['payload'].get('title', '')}: {h['payload'].get('summary', '')}"
        for h in held[:MAX_DIGEST_LINES]
    ]
    if len(held) > MAX_DIGEST_LINES:
        lines.append(f"… and {len(held) - MAX_DIGEST_LINES} more")
    payload = {
        **last["payload"],
        "kind": DIGEST_KIND,
        "title": f"{len(held)} notifications",
        "summary": "\n".join(lines),
        "step_id": None,
        "folded": [h["id"] for h in held],
        "link": ctx.settings.public_url.rstrip("/") + "/inbox",
    }
    return await repo.insert_delivery(
        {
            "tenant_id": tenant_id,
            "event_seq": max(h["event_seq"] for h in held),
            "event_kind": DIGEST_KIND,
            "channel": channel,
            "recipient_id": user,
            "address": last["address"],
            "idempotency_key": f"{tenant_id}:digest:{channel}:{user}:{first['id']}",
            "status": "queued",
            "priority": policy.priority_of(DIGEST_KIND),
            "max_attempts": ctx.settings.notify_max_attempts,
            "next_attempt_at": next_at,
            "payload": payload,
            "now": now,
        }
    )


# --------------------------------------------------------------------------- delivering


def notification_event(
    row: dict[str, Any], decision_links: Mapping[str, str] | None = None
) -> NotificationEvent:
    """The plain value a plugin receives for a delivery row (with the recipient's decision
    links, when it carries any)."""
    payload = row["payload"]
    due_at = payload.get("due_at")
    return NotificationEvent(
        id=row["idempotency_key"],
        kind=row["event_kind"],
        tenant_id=row["tenant_id"],
        item_id=payload.get("item_id") or "",
        step_id=payload.get("step_id"),
        title=payload.get("title") or "",
        summary=payload.get("summary") or "",
        priority=row["priority"],
        risk=payload.get("risk"),
        due_at=datetime.fromisoformat(due_at) if due_at else None,
        link=payload.get("link"),
        occurred_at=datetime.fromisoformat(payload["occurred_at"])
        if payload.get("occurred_at")
        else row["created_at"],
        data={
            k: payload[k]
            for k in (
                "action",
                "step_key",
                "actor_id",
                "reason",
                "folded",
                "comment_id",
                "alert_id",
                "rule_id",
                "alert_status",
            )
            if payload.get(k) is not None
        },
        item_node_id=global_id("WorkflowItem", payload["item_id"])
        if payload.get("item_id")
        else "",
        step_node_id=global_id("Step", payload["step_id"]) if payload.get("step_id") else None,
        decision_links=dict(decision_links or {}),
    )


CLAIM_MARGIN = timedelta(seconds=30)
"""How long a claimed delivery stays claimed beyond the longest its plugin calls may take."""


KEEP_TENANT_BATCHES = 4
"""Full batches a lane takes from one tenant before it looks again for the tenant with the
oldest due delivery: a backlog saves that look-up on most batches, and still no tenant's
backlog holds the others' deliveries back for long."""


@dataclass(frozen=True)
class Delivering:
    """What one round of `deliver_due` did: attempts by outcome, batches claimed, and whether
    deliveries may still be due (the round stopped at its limit)."""

    outcomes: Mapping[str, int]
    batches: int = 0
    more: bool = False


async def deliver(ctx: ServiceContext, registry: NotifierRegistry, delivery_id: int) -> str:
    """Make one attempt at a delivery; return what happened (see `deliver_many`)."""
    return (await deliver_many(ctx, registry, [delivery_id]))[delivery_id]


async def deliver_many(
    ctx: ServiceContext, registry: NotifierRegistry, delivery_ids: Sequence[int]
) -> dict[int, str]:
    """Make one attempt at each of these deliveries, a tenant's together; what happened, by id.

    No transaction is open while a plugin renders or sends: the deliveries are claimed (locked,
    checked open and due, their next attempt moved past the longest the plugin calls may
    take, so that another job for them finds them not due) and committed; the plugins render
    and send them, all at once; then the attempt rows, the new states and — for a dead letter
    — the `notification.dead_lettered` audit event commit together. A worker that dies
    between claim and record leaves the deliveries open; they are tried again when the claim
    runs out.

    Outcomes: `delivered`, `retrying`, `dead`, `suppressed` (its channel is no longer
    enabled), `busy` (another worker is claiming it), `not_due` (claimed by another attempt,
    or not due yet), `missing`, or the row's status when there is nothing to do.
    """
    with scopes.across_tenants("a delivery job names only its deliveries"):
        tenants = await repo.tenants_of_deliveries(delivery_ids)
    outcomes = {i: "missing" for i in delivery_ids if i not in tenants}
    by_tenant: dict[str, list[int]] = {}
    for delivery_id, tenant_id in sorted(tenants.items()):
        by_tenant.setdefault(tenant_id, []).append(delivery_id)
    for tenant_id, ids in by_tenant.items():
        claimed, started = await _claim(ctx, registry, tenant_id, ids, outcomes)
        await _attempt(ctx, registry, tenant_id, claimed, started, outcomes)
    return outcomes


async def deliver_due(
    ctx: ServiceContext,
    registry: NotifierRegistry,
    *,
    lanes: int = 1,
    max_batches: int = 100,
    tenant_id: str | None = None,
) -> Delivering:
    """Make one attempt at every delivery that is due, oldest first, in batches of
    `notify_deliver_batch` (claim, send, record, as `deliver_many` does).

    `lanes` batches are in flight at once; each lane takes the tenant of the oldest due
    delivery and claims that tenant's oldest due deliveries in one statement, skipping those
    another worker holds, so that any number of lanes and workers share the work and never
    send a delivery twice. With `tenant_id`, only that tenant's deliveries are taken. Stops
    after `max_batches` with `more` set, for a follow-up job.
    """
    size = max(1, ctx.settings.notify_deliver_batch)
    counts: Counter[str] = Counter()
    batches = 0

    only = tenant_id

    async def next_tenant(skip: list[str]) -> str | None:
        if only is not None:
            return None if only in skip else only
        with scopes.across_tenants("finding the tenant of the oldest due delivery"):
            return await repo.next_due_tenant(ctx.clock.now(), skip)

    async def lane() -> None:
        nonlocal batches
        skip: list[str] = []
        tenant_id: str | None = None
        kept = 0
        while batches < max_batches:
            if tenant_id is None or kept >= KEEP_TENANT_BATCHES:
                tenant_id = await next_tenant(skip)
                kept = 0
            if tenant_id is None:
                return
            batches += 1
            kept += 1
            try:
                outcomes = await deliver_due_of_tenant(ctx, registry, tenant_id, size)
            except Exception:
                # One tenant's failing batch must not stop the other lanes' deliveries: its
                # claimed rows are tried again when their claim runs out.
                log.exception("delivering notifications of tenant %r failed", tenant_id)
                metrics.NOTIFICATION_FAILURES.labels("deliver").inc()
                skip.append(tenant_id)
                tenant_id = None
                continue
            if not outcomes:
                skip.append(tenant_id)  # its due deliveries are all claimed elsewhere
            if len(outcomes) < size:
                tenant_id = None  # it may have nothing due left: look again
            counts.update(outcomes.values())

    # A lane that fails (its look-up for the next tenant: the database is away) cancels the
    # others: when this returns or raises, none of them is still claiming or sending (gather
    # would leave them running behind the failed job). A tenant's failing batch is skipped.
    async with asyncio.TaskGroup() as group:
        for _ in range(max(1, lanes)):
            group.create_task(lane())
    return Delivering(dict(counts), batches, more=batches >= max_batches)


async def deliver_due_of_tenant(
    ctx: ServiceContext, registry: NotifierRegistry, tenant_id: str, limit: int
) -> dict[int, str]:
    """Claim up to `limit` of the tenant's oldest due deliveries (those no other worker
    holds) and make one attempt at each; what happened, by id (empty: none was claimed)."""
    outcomes: dict[int, str] = {}
    async with unit_of_work(Actor.system(tenant_id), ctx):
        now = ctx.clock.now()
        rows = await repo.claim_due(tenant_id, now, limit, now + _claim_span(registry))
        claimed = await _suppress_disabled(registry, rows, outcomes, now)
    await _attempt(ctx, registry, tenant_id, claimed, now, outcomes)
    return outcomes


def _claim_span(registry: NotifierRegistry) -> timedelta:
    """How far a claim moves a delivery's next attempt: past the longest its plugin calls may
    take, so that no other attempt starts while one may still be under way."""
    return timedelta(seconds=registry.render_timeout + registry.deliver_timeout) + CLAIM_MARGIN


async def _suppress_disabled(
    registry: NotifierRegistry,
    rows: Sequence[dict[str, Any]],
    outcomes: dict[int, str],
    now: datetime,
) -> list[dict[str, Any]]:
    """The claimed rows whose channel is enabled; the others become `suppressed`."""
    enabled = set(registry.configured_channels())
    for row in rows:
        if row["channel"] not in enabled:
            await repo.update_delivery(
                row["id"],
                {
                    "status": "suppressed",
                    "next_attempt_at": None,
                    "last_error": f"channel {row['channel']!r} is not enabled",
                },
                now,
            )
            outcomes[row["id"]] = "suppressed"
    return [row for row in rows if row["channel"] in enabled]


async def _attempt(
    ctx: ServiceContext,
    registry: NotifierRegistry,
    tenant_id: str,
    claimed: list[dict[str, Any]],
    started: datetime,
    outcomes: dict[int, str],
) -> None:
    """Send the claimed deliveries with no transaction open, then record what happened."""
    sent = await _send(ctx, registry, tenant_id, claimed)
    if sent:
        await _record(ctx, tenant_id, sent, started, outcomes)


Sent = tuple[dict[str, Any], RenderedMessage | None, DeliveryResult]
"""A claimed row, its message (None: the row could not be read) and the attempt's result."""


async def _claim(
    ctx: ServiceContext,
    registry: NotifierRegistry,
    tenant_id: str,
    delivery_ids: list[int],
    outcomes: dict[int, str],
) -> tuple[list[dict[str, Any]], datetime]:
    """Claim the open, due deliveries among `delivery_ids` for one attempt each: their rows
    and when; why the others were not claimed goes into `outcomes`."""
    async with unit_of_work(Actor.system(tenant_id), ctx):
        rows = {
            r["id"]: r
            for r in await repo.lock_deliveries(tenant_id, delivery_ids, skip_locked=True)
        }
        now = ctx.clock.now()
        due = []
        for delivery_id in delivery_ids:
            row = rows.get(delivery_id)
            if row is None:
                outcomes[delivery_id] = "busy"
            elif row["status"] not in repo.OPEN_STATUSES:
                outcomes[delivery_id] = str(row["status"])
            elif row["next_attempt_at"] is not None and row["next_attempt_at"] > now:
                outcomes[delivery_id] = "not_due"
            else:
                due.append(row)
        claimed = await _suppress_disabled(registry, due, outcomes, now)
        if claimed:
            await repo.postpone([r["id"] for r in claimed], now + _claim_span(registry), now)
        return claimed, now


UNREADABLE = (AttributeError, KeyError, TypeError, ValueError)
"""What reading a delivery row whose stored content is malformed raises (a payload that is
not an object, a date or id that does not parse, a field missing)."""


def _readable(
    ctx: ServiceContext, row: dict[str, Any]
) -> tuple[NotificationEvent, Recipient] | str:
    """The event and recipient a plugin gets for a claimed delivery, or why the row cannot
    be read (it is then dead-lettered with that reason instead of failing the job that
    claimed it, and every later one)."""
    try:
        recipient = Recipient(
            user_id=row["recipient_id"],
            address=row["address"],
            display_name=row["payload"].get("recipient_name") or "",
        )
        return notification_event(row, decision_links.links_for_delivery(ctx, row)), recipient
    except UNREADABLE as exc:
        return f"the delivery cannot be read: {type(exc).__name__}: {exc}"


async def _send(
    ctx: ServiceContext,
    registry: NotifierRegistry,
    tenant_id: str,
    claimed: list[dict[str, Any]],
) -> list[Sent]:
    """Render and send claimed deliveries, all at once. No transaction is open while a plugin
    works: the messages are rendered, the thread parents of those on channels that thread
    read in one short transaction, then sent. A row that cannot be read is not sent: its
    attempt fails for good with the reason (`_readable`)."""
    readable: list[tuple[dict[str, Any], NotificationEvent, Recipient]] = []
    unreadable: list[Sent] = []
    for row in claimed:
        read = _readable(ctx, row)
        if isinstance(read, str):
            unreadable.append((row, None, DeliveryResult.permanent(read)))
        else:
            readable.append((row, *read))
    messages = list(
        await asyncio.gather(
            *(
                registry.render(row["channel"], event, recipient)
                for row, event, recipient in readable
            )
        )
    )
    threading = {name for name, spec in registry.channels().items() if spec.capabilities.threading}
    threaded = [
        n for n, m in enumerate(messages) if m.thread_key and readable[n][0]["channel"] in threading
    ]
    if threaded:
        with scopes.for_tenant(tenant_id):
            async with repo.transaction():
                parents = await repo.thread_parents(
                    tenant_id,
                    [
                        (
                            readable[n][0]["channel"],
                            readable[n][0]["recipient_id"],
                            messages[n].thread_key or "",
                            readable[n][0]["id"],
                        )
                        for n in threaded
                    ],
                )
        for n, parent in zip(threaded, parents, strict=True):
            if parent:
                messages[n] = dataclasses.replace(messages[n], thread_parent_id=parent)
    results = await asyncio.gather(
        *(
            registry.deliver(row["channel"], message, recipient)
            for (row, _, recipient), message in zip(readable, messages, strict=True)
        )
    )
    sent: list[Sent] = [
        (row, message, result)
        for (row, _, _), message, result in zip(readable, messages, results, strict=True)
    ]
    return sent + unreadable


async def _record(
    ctx: ServiceContext,
    tenant_id: str,
    sent: Sequence[Sent],
    started: datetime,
    outcomes: dict[int, str],
) -> None:
    """Store the attempts and the deliveries' new states (one transaction)."""
    async with unit_of_work(Actor.system(tenant_id), ctx) as uow:
        ids = [row["id"] for row, _, _ in sent]
        current = {
            r["id"]: r for r in await repo.lock_deliveries(tenant_id, ids, skip_locked=False)
        }
        now = ctx.clock.now()
        attempts = []
        changed: list[tuple[int, dict[str, Any]]] = []
        for claimed, message, result in sent:
            row = current.get(claimed["id"])
            if row is None:
                outcomes[claimed["id"]] = "missing"
                continue
            attempt_no = row["attempts"] + 1
            attempts.append(
                {
                    "delivery_id": row["id"],
                    "attempt_no": attempt_no,
                    "status": result.status.value,
                    "response": result.response,
                    "error": result.error,
                    "duration_ms": result.duration_ms,
                    "started_at": started,
                }
            )
            outcome, changes = _settle(uow, row, message, result, attempt_no, now)
            outcomes[row["id"]] = outcome
            changed.append((row["id"], changes))
            uow.after_commit(_count_delivery(row["channel"], outcome))
        await repo.update_deliveries(changed, now)
        await repo.insert_attempts(attempts)


def _settle(
    uow: UnitOfWork,
    row: dict[str, Any],
    message: RenderedMessage | None,
    result: DeliveryResult,
    attempt_no: int,
    now: datetime,
) -> tuple[str, dict[str, Any]]:
    """What one attempt makes of its delivery: the outcome and the columns to change (a dead
    letter also records its audit event)."""
    delivery_id, channel, ctx = row["id"], row["channel"], uow.ctx
    if row["status"] not in repo.OPEN_STATUSES:
        # Another attempt settled it while this one outlived its claim: keep its outcome.
        return str(row["status"]), {"attempts": attempt_no}
    changes: dict[str, Any] = {"attempts": attempt_no}
    if message is not None:
        changes["thread_key"] = message.thread_key
    if result.ok:
        changes |= {
            "status": "delivered",
            "next_attempt_at": None,
            "last_error": None,
            "provider_message_id": result.provider_message_id,
        }
        outcome = "delivered"
    elif result.status is DeliveryStatus.FAILED_RETRYABLE and attempt_no < row["max_attempts"]:
        delay = policy.backoff_delay(
            attempt_no,
            base=ctx.settings.notify_backoff_base_seconds,
            cap=ctx.settings.notify_backoff_cap_seconds,
            retry_after=result.retry_after,
        )
        changes |= {
            "status": "retrying",
            "next_attempt_at": now + delay,
            "last_error": result.error,
        }
        outcome = "retrying"
    else:
        changes |= {"status": "dead", "next_attempt_at": None, "last_error": result.error}
        outcome = "dead"
        uow.record(
            "notification.dead_lettered",
            item_id=_payload_uuid(row, "item_id"),
            step_id=_payload_uuid(row, "step_id"),
            reason=result.error,
            data={
                "delivery_id": delivery_id,
                "channel": channel,
                "recipient_id": row["recipient_id"],
                "event_kind": row["event_kind"],
                "event_seq": row["event_seq"],
                "attempts": attempt_no,
                "status": result.status.value,
            },
        )
        log.error(
            "notification %s to %r on %r dead-lettered after %s attempts: %s",
            delivery_id,
            row["recipient_id"],
            channel,
            attempt_no,
            result.error,
        )
    return outcome, changes


def _count_delivery(channel: str, outcome: str) -> Callable[[], Awaitable[None]]:
    async def count() -> None:
        metrics.DELIVERIES.labels(channel, outcome).inc()

    return count


def _payload_uuid(row: Mapping[str, Any], key: str) -> UUID | None:
    """An id the delivery's payload names, or None when it names none (or the row is
    unreadable: its dead letter still records what can be read)."""
    payload = row["payload"]
    value = payload.get(key) if isinstance(payload, dict) else None
    try:
        return UUID(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


async def tenants_behind(ctx: ServiceContext) -> list[str]:
    """Tenants with audit events not yet planned (of `timer_tenants` when that setting names
    any)."""
    with scopes.across_tenants("the notification sweeper plans every tenant that is behind"):
        return await repo.tenants_behind(ctx.settings.timer_tenants or None)

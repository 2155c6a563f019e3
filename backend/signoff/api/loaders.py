"""DataLoaders: one statement per kind of row per request, however many objects a page holds.

They live in `SignoffContext.cache`, made on first use, bound to the caller's tenant. On HTTP
queries they cache for the request; on mutations and websockets (a context that outlives one
operation) they only batch, so that nothing read before a change is served after it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from uuid import UUID

from graphql import OperationType
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from signoff.api.context import SignoffContext, actor_of
from signoff.db import batches
from signoff.db import items as items_repo
from signoff.db import notifications as directory_repo
from signoff.domain.records import Decision, Item, Step, TemplateVersion
from signoff.domain.redaction import RedactionRule
from signoff.domain.templates import TemplateDefinition, parse_template
from signoff.services import redaction as redaction_services
from signoff.services.context import ServiceContext
from signoff.services.templates import definition_of, template_limits


@dataclass(frozen=True)
class Loaders:
    """The request's loaders, all scoped to one tenant."""

    items: DataLoader[UUID, Item | None]
    steps_by_item: DataLoader[UUID, list[Step]]
    decisions_by_item: DataLoader[UUID, list[Decision]]
    templates: DataLoader[UUID, TemplateVersion | None]
    definitions: DataLoader[UUID, TemplateDefinition | None]
    display_names: DataLoader[str, str | None]
    redaction_rules: DataLoader[str, list[RedactionRule]]


class _HasId(Protocol):
    @property
    def id(self) -> UUID: ...


class _HasItemId(Protocol):
    @property
    def item_id(self) -> UUID: ...


R = TypeVar("R", bound=_HasId)
G = TypeVar("G", bound=_HasItemId)


def _by_id(records: Sequence[R], keys: Sequence[UUID]) -> list[R | None]:
    found = {record.id: record for record in records}
    return [found.get(k) for k in keys]


def _by_item(records: Sequence[G], keys: Sequence[UUID]) -> list[list[G]]:
    groups: dict[UUID, list[G]] = defaultdict(list)
    for record in records:
        groups[record.item_id].append(record)
    return [groups.get(k, []) for k in keys]


def make_loaders(tenant_id: str, services: ServiceContext, *, cache: bool) -> Loaders:
    """Fresh loaders for one tenant."""

    async def load_items(keys: list[UUID]) -> list[Item | None]:
        return _by_id(await batches.items_by_ids(tenant_id, keys), keys)

    async def load_steps(keys: list[UUID]) -> list[list[Step]]:
        return _by_item(await items_repo.steps_of_items(tenant_id, keys), keys)

    async def load_decisions(keys: list[UUID]) -> list[list[Decision]]:
        decisions = await items_repo.decisions_of_items(tenant_id, keys)
        # Oldest first; within one instant (a frozen clock) a later revision is the later one.
        decisions.sort(key=lambda d: (d.created_at, d.seq))
        return _by_item(decisions, keys)

    async def load_templates(keys: list[UUID]) -> list[TemplateVersion | None]:
        return _by_id(await batches.templates_by_ids(tenant_id, keys), keys)

    templates: DataLoader[UUID, TemplateVersion | None] = DataLoader(load_templates, cache=cache)

    async def load_definitions(keys: list[UUID]) -> list[TemplateDefinition | None]:
        rows = await templates.load_many(keys)
        return [definition_of(r, services.settings) if r else None for r in rows]

    async def load_display_names(keys: list[str]) -> list[str | None]:
        names = await directory_repo.display_names(tenant_id, keys)
        return [names.get(k) for k in keys]

    async def load_rules(keys: list[str]) -> list[list[RedactionRule]]:
        # One tenant per loader: every key is the loader's own tenant.
        rules = await redaction_services.rules_of(tenant_id)
        return [rules for _ in keys]

    return Loaders(
        redaction_rules=DataLoader(load_rules, cache=cache),
        items=DataLoader(load_items, cache=cache),
        steps_by_item=DataLoader(load_steps, cache=cache),
        decisions_by_item=DataLoader(load_decisions, cache=cache),
        templates=templates,
        # Parsing is CPU, not I/O: cache it even when rows are not cached.
        definitions=DataLoader(load_definitions, cache=True),
        display_names=DataLoader(load_display_names, cache=cache),
    )


def release_loaders(loaders: Loaders) -> None:
    """Drop what the request's loaders hold (their cached futures and pending batch, with the
    rows in them) once the request is answered. The loaders themselves sit in reference cycles
    (each one's batch and load function refer back to it), so without this their rows outlive
    the request until the garbage collector walks them (docs/architecture.md, "Inbox pages and
    the garbage collector")."""
    for loader in (
        loaders.items,
        loaders.steps_by_item,
        loaders.decisions_by_item,
        loaders.templates,
        loaders.definitions,
        loaders.display_names,
        loaders.redaction_rules,
    ):
        loader.clear_all()
        loader.batch = None


def loaders_of(info: Info[SignoffContext, Any]) -> Loaders:
    """The loaders of this request (made on first use, for the caller's tenant)."""
    context = info.context
    loaders: Loaders | None = context.cache.get("loaders")
    if loaders is None:
        cache = context.websocket is None and info.operation.operation == OperationType.QUERY
        loaders = make_loaders(actor_of(info).tenant_id, context.services, cache=cache)
        context.cache["loaders"] = loaders
    return loaders


async def definition_for(
    loaders: Loaders, services: ServiceContext, item: Item
) -> TemplateDefinition:
    """The definition an item runs: its own plan's, or its template version's (batched)."""
    if item.plan is not None:
        return parse_template(item.plan, template_limits(services.settings))
    definition = await loaders.definitions.load(item.template_id)
    if definition is None:
        raise LookupError(f"template {item.template_id} of item {item.id} not found")
    return definition


async def definitions_for(
    loaders: Loaders, services: ServiceContext, items: Sequence[Item]
) -> list[TemplateDefinition]:
    """The definitions of several items at once (`definition_for` of each, one batch)."""
    template_ids = list(dict.fromkeys(i.template_id for i in items if i.plan is None))
    versions = await loaders.definitions.load_many(template_ids)
    found = dict(zip(template_ids, versions, strict=True))
    out = []
    for item in items:
        if item.plan is not None:
            out.append(parse_template(item.plan, template_limits(services.settings)))
            continue
        definition = found.get(item.template_id)
        if definition is None:
            raise LookupError(f"template {item.template_id} of item {item.id} not found")
        out.append(definition)
    return out

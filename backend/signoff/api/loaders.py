"""DataLoaders: one statement per kind of row per request, however many objects a page holds.

They live in `SignoffContext.cache`, made on first use, bound to the caller's tenant. On HTTP
queries they cache for the request; on mutations and websockets (a context that outlives one
operation) they only batch, so that nothing read before a change is served after it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from graphql import OperationType
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from signoff.api.context import SignoffContext, actor_of
from signoff.db import batches
from signoff.db import items as items_repo
from signoff.domain.templates import TemplateDefinition, parse_template
from signoff.services.context import ServiceContext
from signoff.services.templates import definition_of, template_limits

Row = dict[str, Any]


@dataclass(frozen=True)
class Loaders:
    """The request's loaders, all scoped to one tenant."""

    items: DataLoader[UUID, Row | None]
    steps_by_item: DataLoader[UUID, list[Row]]
    decisions_by_item: DataLoader[UUID, list[Row]]
    templates: DataLoader[UUID, Row | None]
    definitions: DataLoader[UUID, TemplateDefinition | None]


def _by_id(rows: Sequence[Row], keys: Sequence[UUID]) -> list[Row | None]:
    found = {row["id"]: row for row in rows}
    return [found.get(k) for k in keys]


def _grouped(rows: Sequence[Row], keys: Sequence[UUID], column: str) -> list[list[Row]]:
    groups: dict[UUID, list[Row]] = defaultdict(list)
    for row in rows:
        groups[row[column]].append(row)
    return [groups.get(k, []) for k in keys]


def make_loaders(tenant_id: str, services: ServiceContext, *, cache: bool) -> Loaders:
    """Fresh loaders for one tenant."""

    async def load_items(keys: list[UUID]) -> list[Row | None]:
        return _by_id(await batches.items_by_ids(tenant_id, keys), keys)

    async def load_steps(keys: list[UUID]) -> list[list[Row]]:
        return _grouped(await items_repo.steps_of_items(tenant_id, keys), keys, "item_id")

    async def load_decisions(keys: list[UUID]) -> list[list[Row]]:
        rows = await items_repo.decisions_of_items(tenant_id, keys)
        # Oldest first; within one instant (a frozen clock) a later revision is the later one.
        rows.sort(key=lambda r: (r["created_at"], r["seq"]))
        return _grouped(rows, keys, "item_id")

    async def load_templates(keys: list[UUID]) -> list[Row | None]:
        return _by_id(await batches.templates_by_ids(tenant_id, keys), keys)

    templates: DataLoader[UUID, Row | None] = DataLoader(load_templates, cache=cache)

    async def load_definitions(keys: list[UUID]) -> list[TemplateDefinition | None]:
        rows = await templates.load_many(keys)
        return [definition_of(r, services.settings) if r else None for r in rows]

    return Loaders(
        items=DataLoader(load_items, cache=cache),
        steps_by_item=DataLoader(load_steps, cache=cache),
        decisions_by_item=DataLoader(load_decisions, cache=cache),
        templates=templates,
        # Parsing is CPU, not I/O: cache it even when rows are not cached.
        definitions=DataLoader(load_definitions, cache=True),
    )


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
    loaders: Loaders, services: ServiceContext, item: Row
) -> TemplateDefinition:
    """The definition an item runs: its own plan's, or its template version's (batched)."""
    if item.get("plan") is not None:
        return parse_template(item["plan"], template_limits(services.settings))
    definition = await loaders.definitions.load(item["template_id"])
    if definition is None:
        raise LookupError(f"template {item['template_id']} of item {item['id']} not found")
    return definition

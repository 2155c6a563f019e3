"""Template use cases: save a draft, publish it, load a directory of YAML templates."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml

from signoff.db import templates as template_repo
from signoff.domain.actors import Actor
from signoff.domain.errors import DomainError, ErrorCode, not_found
from signoff.domain.limits import TemplateLimits
from signoff.domain.permissions import Permission
from signoff.domain.records import TemplateStatus, TemplateVersion
from signoff.domain.templates import TemplateDefinition, parse_template, template_to_dict
from signoff.services import permissions
from signoff.services.context import ServiceContext
from signoff.services.uow import Guards, UnitOfWork, run_once, unit_of_work
from signoff.settings import Settings


def template_limits(settings: Settings) -> TemplateLimits:
    """The template limits configured for this deployment."""
    return TemplateLimits(
        max_steps=settings.max_steps_per_template,
        max_dependency_depth=settings.max_dependency_depth,
        max_payload_bytes=settings.max_payload_bytes,
    )


class DefinitionCache:
    """Parsed definitions of template versions that never change again (published or retired),
    by tenant, version id and limits; the least recently used go first past `size`. The
    definitions are shared: frozen, and never to be modified by a caller."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, UUID, TemplateLimits], TemplateDefinition] = (
            OrderedDict()
        )
        self.parses = 0
        """How many definitions were parsed (misses), for tests and diagnostics."""

    def get(self, key: tuple[str, UUID, TemplateLimits]) -> TemplateDefinition | None:
        """The cached definition of `key`, or None."""
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def parse(self, row: TemplateVersion, limits: TemplateLimits) -> TemplateDefinition:
        """Parse `row`'s definition, keeping it when the version can no longer change."""
        self.parses += 1
        definition = parse_template(row.definition, limits)
        if row.status != TemplateStatus.DRAFT:
            self._entries[(row.tenant_id, row.id, limits)] = definition
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return definition

    def clear(self) -> None:
        """Forget every definition."""
        self._entries.clear()


DEFINITIONS = DefinitionCache()


def definition_of(row: TemplateVersion, settings: Settings) -> TemplateDefinition:
    """The parsed definition of a stored template version (parsed once per published version
    and limits, then cached)."""
    limits = template_limits(settings)
    if row.status == TemplateStatus.DRAFT:
        return DEFINITIONS.parse(row, limits)
    cached = DEFINITIONS.get((row.tenant_id, row.id, limits))
    return cached if cached is not None else DEFINITIONS.parse(row, limits)


async def stored_definition(
    tenant_id: str, template_id: UUID, settings: Settings
) -> TemplateDefinition:
    """The parsed definition of a template version by id, without reading it again once it is
    cached; NOT_FOUND when the tenant has no such version."""
    cached = DEFINITIONS.get((tenant_id, template_id, template_limits(settings)))
    if cached is not None:
        return cached
    row = await template_repo.get(tenant_id, template_id)
    if row is None:
        raise not_found("template", template_id)
    return definition_of(row, settings)


async def _require_admin(actor: Actor, ctx: ServiceContext) -> None:
    await permissions.require(actor, ctx, Permission.ADMINISTER_TEMPLATES, "managing templates")


def _kept_template(row: TemplateVersion) -> dict[str, Any]:
    return {"template_id": str(row.id)}


def _replayed_template(actor: Actor) -> Callable[[dict[str, Any]], Awaitable[TemplateVersion]]:
    async def replay(kept: dict[str, Any]) -> TemplateVersion:
        row = await template_repo.get(actor.tenant_id, UUID(kept["template_id"]))
        if row is None:
            raise not_found("template", kept["template_id"])
        return row

    return replay


async def save_template(
    actor: Actor,
    ctx: ServiceContext,
    document: Mapping[str, Any],
    *,
    publish: bool = False,
    guards: Guards = Guards(),
) -> TemplateVersion:
    """Validate `document` and store it as the next version of its key (a draft unless `publish`).

    An existing draft of the same key is replaced rather than piling up versions.
    """
    await _require_admin(actor, ctx)
    defn = parse_template(document, template_limits(ctx.settings))
    normalized = template_to_dict(defn)
    async with unit_of_work(actor, ctx) as uow:
        return await run_once(
            uow,
            guards.idempotency_key,
            "saveTemplate",
            {"definition": document, "publish": publish},
            lambda: _save(actor, ctx, uow, defn, normalized, publish),
            keep=_kept_template,
            replay=_replayed_template(actor),
        )


async def _save(
    actor: Actor,
    ctx: ServiceContext,
    uow: UnitOfWork,
    defn: TemplateDefinition,
    normalized: dict[str, Any],
    publish: bool,
) -> TemplateVersion:
    latest = await template_repo.latest_version(actor.tenant_id, defn.key)
    existing = [
        r
        for r in await template_repo.list_for_tenant(actor.tenant_id, defn.key)
        if r.status == TemplateStatus.DRAFT
    ]
    now = ctx.clock.now()
    if existing:
        row = await template_repo.update_draft(
            actor.tenant_id,
            existing[0].id,
            name=defn.name,
            kind=defn.kind,
            definition=normalized,
        )
        action = "template.draft_updated"
    else:
        row = await template_repo.insert(
            actor.tenant_id,
            key=defn.key,
            version=latest + 1,
            name=defn.name,
            kind=defn.kind,
            status=TemplateStatus.DRAFT,
            definition=normalized,
            created_by=actor.user_id,
        )
        action = "template.draft_created"
    uow.record(action, data={"template_id": str(row.id), "key": defn.key, "version": row.version})
    if publish:
        row = await template_repo.publish(actor.tenant_id, row.id, now)
        uow.record(
            "template.published",
            data={"template_id": str(row.id), "key": defn.key, "version": row.version},
        )
    return row


async def publish_template(
    actor: Actor, ctx: ServiceContext, template_id: UUID, guards: Guards = Guards()
) -> TemplateVersion:
    """Publish a draft; a published version is immutable from then on."""
    await _require_admin(actor, ctx)
    async with unit_of_work(actor, ctx) as uow:
        return await run_once(
            uow,
            guards.idempotency_key,
            "publishTemplate",
            {"template_id": str(template_id)},
            lambda: _publish(actor, ctx, uow, template_id),
            keep=_kept_template,
            replay=_replayed_template(actor),
        )


async def _publish(
    actor: Actor, ctx: ServiceContext, uow: UnitOfWork, template_id: UUID
) -> TemplateVersion:
    row = await template_repo.get(actor.tenant_id, template_id, lock=True)
    if row is None:
        raise not_found("template", template_id)
    if row.status != TemplateStatus.DRAFT:
        raise DomainError(
            ErrorCode.TEMPLATE_IMMUTABLE, f"template version is already {row.status.value}"
        )
    definition_of(row, ctx.settings)  # a stored draft is re-checked against today's limits
    row = await template_repo.publish(actor.tenant_id, template_id, ctx.clock.now())
    uow.record(
        "template.published",
        data={"template_id": str(row.id), "key": row.key, "version": row.version},
    )
    return row


def read_template_files(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The YAML documents of `directory` (`*.yaml`, `*.yml`), in name order."""
    documents = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        data = yaml.safe_load(path.read_text())
        if not isinstance(data, dict):
            raise DomainError(ErrorCode.TEMPLATE_INVALID, f"{path.name}: not a mapping")
        documents.append((path, data))
    return documents


async def load_templates(
    actor: Actor, ctx: ServiceContext, directory: Path
) -> list[TemplateVersion]:
    """Publish every template of `directory` whose definition differs from its latest version.

    Loading the same directory twice changes nothing the second time.
    """
    loaded = []
    for path, document in read_template_files(directory):
        try:
            defn = parse_template(document, template_limits(ctx.settings))
        except DomainError as exc:
            exc.message = f"{path.name}: {exc.message}"
            raise
        current = await template_repo.find_published(actor.tenant_id, defn.key, None)
        if current is not None and current.definition == template_to_dict(defn):
            loaded.append(current)
            continue
        loaded.append(await save_template(actor, ctx, document, publish=True))
    return loaded

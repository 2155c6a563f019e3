"""Comment use cases: write, reply, edit (every revision kept), delete (a tombstone), read.

Whoever may read an item may read and write its comments; the item service decides who that
is. Each change is one unit of work with its audit event (`comment.created`, `comment.edited`,
`comment.deleted`), so comments are part of the item's history and of its live event stream.
The audit event carries the body's sha256, never the body: retention can purge content in
one place (`comment_revision`) while the trail still verifies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from uuid import UUID

from signoff.db import comments as repo
from signoff.db import items as items_repo
from signoff.domain.actors import Actor, Principal
from signoff.domain.comments import (
    CommentRecord,
    CommentRevisionRecord,
    added_mentions,
    body_digest,
    check_body,
    check_reason,
    require_moderator,
)
from signoff.domain.errors import DomainError, ErrorCode, invalid, not_found
from signoff.domain.permissions import Permission
from signoff.services import items as item_services
from signoff.services import permissions
from signoff.services.context import ServiceContext
from signoff.services.engine import ItemView
from signoff.services.uow import remember_result, replayed_result, unit_of_work


@dataclass(frozen=True)
class AddCommentInput:
    """A new comment: on an item, on one of its steps, or as a reply (exactly one of the three)."""

    body: str
    item_id: UUID | None = None
    step_id: UUID | None = None
    reply_to_id: UUID | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class EditCommentInput:
    """A new body for a comment."""

    comment_id: UUID
    body: str
    reason: str | None = None
    expected_version: int | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class DeleteCommentInput:
    """Delete a comment: it stays in its thread as a tombstone."""

    comment_id: UUID
    reason: str | None = None
    expected_version: int | None = None
    idempotency_key: str | None = None


def _fingerprint(inp: Any) -> dict[str, Any]:
    data = asdict(inp)
    data.pop("idempotency_key", None)
    return data


def _step_ids(view: ItemView) -> set[UUID]:
    return {s.id for s in view.steps}


async def _readable_item(actor: Actor, ctx: ServiceContext, item_id: UUID) -> ItemView:
    """The item, when the actor may read it (NOT_FOUND otherwise: the item service decides)."""
    return await item_services.get_item(actor, ctx, item_id)


async def _anchor(
    actor: Actor, ctx: ServiceContext, inp: AddCommentInput
) -> tuple[UUID, UUID | None, CommentRecord | None]:
    """(item, step, replied-to comment) of a new comment, each checked readable."""
    given = [x for x in (inp.item_id, inp.step_id, inp.reply_to_id) if x is not None]
    if len(given) != 1:
        raise invalid("give exactly one of itemId, stepId and replyToId", "itemId")
    if inp.reply_to_id is not None:
        parent = await repo.get_comment(actor.tenant_id, inp.reply_to_id)
        if parent is None:
            raise not_found("comment", inp.reply_to_id)
        await _readable_item(actor, ctx, parent.item_id)
        return parent.item_id, parent.step_id, parent
    if inp.step_id is not None:
        item_id = await items_repo.item_id_of_step(actor.tenant_id, inp.step_id)
        if item_id is None:
            raise not_found("step", inp.step_id)
        view = await _readable_item(actor, ctx, item_id)
        if inp.step_id not in _step_ids(view):
            raise not_found("step", inp.step_id)
        return item_id, inp.step_id, None
    assert inp.item_id is not None
    await _readable_item(actor, ctx, inp.item_id)
    return inp.item_id, None, None


async def add_comment(actor: Actor, ctx: ServiceContext, inp: AddCommentInput) -> CommentRecord:
    """Write a comment or a reply; `@mentions` in it are notified (to those who may read the
    item) by the notification planner from the `comment.created` event."""
    settings = ctx.settings
    body, mentions = check_body(
        inp.body, max_chars=settings.comment_max_chars, max_mentions=settings.comment_max_mentions
    )
    async with unit_of_work(actor, ctx) as uow:
        replay = await replayed_result(uow, inp.idempotency_key, "addComment", _fingerprint(inp))
        if replay is not None:
            return await _existing(actor, UUID(replay["comment_id"]))
        item_id, step_id, parent = await _anchor(actor, ctx, inp)
        if await repo.count_of_item(actor.tenant_id, item_id) >= settings.comment_max_per_item:
            raise DomainError(
                ErrorCode.LIMIT_EXCEEDED,
                f"an item holds at most {settings.comment_max_per_item} comments",
            )
        digest = body_digest(body)
        comment_id = await repo.insert_comment(
            {
                "tenant_id": actor.tenant_id,
                "item_id": item_id,
                "step_id": step_id,
                "thread_id": parent.thread_id if parent else None,
                "reply_to_id": parent.id if parent else None,
                "author_id": actor.user_id,
                "body": body,
                "body_sha256": digest,
                "mentions": mentions,
                "now": ctx.clock.now(),
            }
        )
        comment = await _existing(actor, comment_id)
        uow.record(
            "comment.created",
            item_id=item_id,
            step_id=step_id,
            data=_event_data(comment, mentioned=mentions),
        )
        await remember_result(uow, inp.idempotency_key, {"comment_id": str(comment_id)})
        return comment


async def edit_comment(actor: Actor, ctx: ServiceContext, inp: EditCommentInput) -> CommentRecord:
    """Replace a comment's body, keeping every earlier body as a revision. Only the author, or
    an admin with a reason, may; people newly mentioned are notified."""
    settings = ctx.settings
    body, mentions = check_body(
        inp.body, max_chars=settings.comment_max_chars, max_mentions=settings.comment_max_mentions
    )
    reason = check_reason(inp.reason)
    async with unit_of_work(actor, ctx) as uow:
        replay = await replayed_result(uow, inp.idempotency_key, "editComment", _fingerprint(inp))
        if replay is not None:
            return await _existing(actor, inp.comment_id)
        comment, moderated = await _locked_for_change(actor, ctx, inp.comment_id, reason, "edit")
        _check_version(comment, inp.expected_version)
        if comment.deleted:
            raise DomainError(ErrorCode.ILLEGAL_TRANSITION, "a deleted comment cannot be edited")
        digest = body_digest(body)
        if digest == comment.body_sha256:
            return comment  # nothing changed: no revision, no event
        now = ctx.clock.now()
        revision = comment.revision + 1
        await repo.insert_revision(
            actor.tenant_id,
            comment.id,
            revision,
            body=body,
            digest=digest,
            mentions=mentions,
            editor_id=actor.user_id,
            reason=reason,
            now=now,
        )
        await repo.update_comment(comment.id, {"revision": revision}, now)
        edited = await _existing(actor, comment.id)
        uow.record(
            "comment.edited",
            item_id=comment.item_id,
            step_id=comment.step_id,
            reason=reason,
            data={
                **_event_data(edited, mentioned=added_mentions(comment.mentions, mentions)),
                "previous_sha256": comment.body_sha256,
                **_moderation(comment, moderated),
            },
        )
        await remember_result(uow, inp.idempotency_key, {"comment_id": str(comment.id)})
        return edited


async def delete_comment(
    actor: Actor, ctx: ServiceContext, inp: DeleteCommentInput
) -> CommentRecord:
    """Turn a comment into a tombstone: it keeps its place in the thread (replies stay), its
    body is no longer shown, its revisions stay for admins and retention. Only the author, or
    an admin with a reason, may."""
    reason = check_reason(inp.reason)
    async with unit_of_work(actor, ctx) as uow:
        replay = await replayed_result(uow, inp.idempotency_key, "deleteComment", _fingerprint(inp))
        if replay is not None:
            return await _existing(actor, inp.comment_id)
        comment, moderated = await _locked_for_change(actor, ctx, inp.comment_id, reason, "delete")
        _check_version(comment, inp.expected_version)
        if comment.deleted:
            raise DomainError(ErrorCode.ILLEGAL_TRANSITION, "the comment is already deleted")
        now = ctx.clock.now()
        await repo.update_comment(comment.id, {"deleted_at": now, "deleted_by": actor.user_id}, now)
        deleted = await _existing(actor, comment.id)
        uow.record(
            "comment.deleted",
            item_id=comment.item_id,
            step_id=comment.step_id,
            reason=reason,
            data={**_event_data(deleted, mentioned=[]), **_moderation(comment, moderated)},
        )
        await remember_result(uow, inp.idempotency_key, {"comment_id": str(comment.id)})
        return deleted


async def get_comment(actor: Actor, ctx: ServiceContext, comment_id: UUID) -> CommentRecord:
    """One comment, when the actor may read its item."""
    comment = await repo.get_comment(actor.tenant_id, comment_id)
    if comment is None:
        raise not_found("comment", comment_id)
    await _readable_item(actor, ctx, comment.item_id)
    return comment


async def list_comments(
    actor: Actor,
    ctx: ServiceContext,
    item_id: UUID,
    *,
    step_id: UUID | None = None,
    after_seq: int | None = None,
    limit: int = 50,
    before_seq: int | None = None,
    from_end: bool = False,
) -> list[CommentRecord]:
    """A page of an item's comments (or one step's) in the order they were written: forwards
    after `after_seq`, or with `from_end` the last `limit` before `before_seq`."""
    view = await _readable_item(actor, ctx, item_id)
    if step_id is not None and step_id not in _step_ids(view):
        raise not_found("step", step_id)
    return await repo.comments_of_item(
        actor.tenant_id,
        item_id,
        step_id=step_id,
        after_seq=after_seq,
        limit=limit,
        before_seq=before_seq,
        from_end=from_end,
    )


async def comment_revisions(
    actor: Actor, ctx: ServiceContext, comment_id: UUID
) -> list[CommentRevisionRecord]:
    """Every body of a comment, oldest first (the original is never lost). A deleted comment's
    revisions are shown to holders of `moderate_comments` only."""
    comment = await get_comment(actor, ctx, comment_id)
    if comment.deleted and not await permissions.may(actor, ctx, Permission.MODERATE_COMMENTS):
        return []
    return await repo.revisions_of(actor.tenant_id, comment_id)


def visible_body(comment: CommentRecord) -> str | None:
    """The body readers see: none for a tombstone."""
    return None if comment.deleted else comment.body


async def mention_readers(
    ctx: ServiceContext, tenant_id: str, item_id: UUID, people: list[Principal]
) -> list[Principal]:
    """Those of the mentioned `people` who may read the item (a mention never reveals an item
    to someone who could not read it)."""
    readers = []
    for principal in people:
        try:
            await item_services.get_item(Actor(principal), ctx, item_id)
        except DomainError as exc:
            if exc.code != ErrorCode.NOT_FOUND:
                raise
            continue
        readers.append(principal)
    return readers


# --------------------------------------------------------------------------- helpers


async def _existing(actor: Actor, comment_id: UUID) -> CommentRecord:
    comment = await repo.get_comment(actor.tenant_id, comment_id)
    if comment is None:
        raise not_found("comment", comment_id)
    return comment


async def _locked_for_change(
    actor: Actor, ctx: ServiceContext, comment_id: UUID, reason: str | None, what: str
) -> tuple[CommentRecord, bool]:
    comment = await repo.get_comment(actor.tenant_id, comment_id, lock=True)
    if comment is None:
        raise not_found("comment", comment_id)
    await _readable_item(actor, ctx, comment.item_id)
    moderator = actor.user_id != comment.author_id and await permissions.may(
        actor, ctx, Permission.MODERATE_COMMENTS
    )
    moderated = require_moderator(actor.principal, comment, moderator, reason, what)
    return comment, moderated


def _check_version(comment: CommentRecord, expected: int | None) -> None:
    if expected is not None and expected != comment.version:
        raise DomainError(
            ErrorCode.VERSION_CONFLICT,
            f"comment is at version {comment.version}, not {expected}",
            "guards.expectedVersion",
            details={"current_version": comment.version},
        )


def _event_data(comment: CommentRecord, *, mentioned: list[str]) -> dict[str, Any]:
    """What the audit trail keeps of a comment change: ids, thread, digest, never the body."""
    return {
        "comment_id": str(comment.id),
        "thread_id": str(comment.thread_id),
        "reply_to_id": str(comment.reply_to_id) if comment.reply_to_id else None,
        "author_id": comment.author_id,
        "revision": comment.revision,
        "version": comment.version,
        "body_sha256": comment.body_sha256,
        "mentions": list(comment.mentions),
        "mentioned": mentioned,
    }


def _moderation(comment: CommentRecord, moderated: bool) -> dict[str, Any]:
    return {"moderated": True, "author_id": comment.author_id} if moderated else {}

"""GraphQL types and queries of comments. Resolvers map records; the service decides."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import strawberry
from strawberry.types import Info

from signoff.api import ids
from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.errors import CodedError
from signoff.api.event_cursors import EVENT_CURSOR_DESCRIPTION, encode_cursor
from signoff.api.paging import After, Before, First, Last, PageInfo, page_args
from signoff.api.types import Node, Person, person
from signoff.db import feed
from signoff.domain.comments import CommentRecord, CommentRevisionRecord
from signoff.domain.errors import DomainError, ErrorCode
from signoff.services import comments as comment_services

DEFAULT_PAGE_SIZE = 50
_CURSOR_TYPE = "CommentCursor"


@strawberry.type(description="One body of a comment: as first written (revision 1) or edited.")
class CommentRevision:
    revision: int = strawberry.field(description="1 for the original, then one per edit.")
    body: str | None = strawberry.field(
        description="The text; null once removed by a retention rule (the digest remains)."
    )
    body_sha256: str = strawberry.field(description="sha256 (hex) of the text's UTF-8 bytes.")
    mentions: list[str] = strawberry.field(description="User ids `@mentioned` in this text.")
    editor_id: str = strawberry.field(description="Who wrote this revision.")
    reason: str | None = strawberry.field(description="Why it was edited, when a reason was given.")
    created_at: datetime = strawberry.field(description="When this revision was written.")

    @classmethod
    def from_record(cls, record: CommentRevisionRecord) -> CommentRevision:
        """Map a revision record."""
        return cls(
            revision=record.revision,
            body=record.body,
            body_sha256=record.body_sha256,
            mentions=list(record.mentions),
            editor_id=record.editor_id,
            reason=record.reason,
            created_at=record.created_at,
        )


@strawberry.type(description="A comment on an item or one of its steps, or a reply in a thread.")
class Comment(Node):
    id: strawberry.ID = strawberry.field(description="Global id.")
    item_id: strawberry.ID = strawberry.field(description="Global id of the item.")
    step_id: strawberry.ID | None = strawberry.field(
        description="Global id of the step, for a comment on a step."
    )
    thread_id: strawberry.ID = strawberry.field(
        description="Global id of the thread's first comment (its own id for a thread's root)."
    )
    reply_to_id: strawberry.ID | None = strawberry.field(
        description="Global id of the comment this one answers; null for a thread's root."
    )
    author_id: str = strawberry.field(description="Who wrote it.")
    body: str | None = strawberry.field(
        description="Current text; null when the comment was deleted (or its text purged)."
    )
    body_sha256: str = strawberry.field(description="sha256 (hex) of the current text.")
    mentions: list[str] = strawberry.field(description="User ids `@mentioned` in the current text.")
    revision: int = strawberry.field(description="Number of the current revision (1: unedited).")
    version: int = strawberry.field(
        description="Bumped on every change; pass as `expectedVersion` to guard an edit or delete."
    )
    edited: bool = strawberry.field(description="Whether the text changed after it was written.")
    deleted: bool = strawberry.field(description="Whether the comment was deleted (a tombstone).")
    deleted_at: datetime | None = strawberry.field(description="When it was deleted.")
    deleted_by: str | None = strawberry.field(description="Who deleted it.")
    created_at: datetime = strawberry.field(description="When it was written.")
    updated_at: datetime = strawberry.field(description="When it last changed.")
    raw_id: strawberry.Private[UUID]

    @strawberry.field(description="Who wrote it, with their display name.")
    async def author(self, info: Info[SignoffContext, Any]) -> Person:
        return await person(info, self.author_id)

    @strawberry.field(
        description="Every revision, oldest first: the original is never lost. Empty for a "
        "deleted comment unless the caller holds moderate_comments."
    )
    async def revisions(self, info: Info[SignoffContext, Any]) -> list[CommentRevision]:
        try:
            records = await comment_services.comment_revisions(
                actor_of(info), services_of(info), self.raw_id
            )
        except DomainError as exc:
            raise CodedError(exc) from None
        return [CommentRevision.from_record(r) for r in records]

    @classmethod
    def from_record(cls, record: CommentRecord) -> Comment:
        """Map a comment record (a tombstone shows no text)."""
        return cls(
            id=strawberry.ID(ids.encode("Comment", record.id)),
            item_id=strawberry.ID(ids.encode("WorkflowItem", record.item_id)),
            step_id=strawberry.ID(ids.encode("Step", record.step_id)) if record.step_id else None,
            thread_id=strawberry.ID(ids.encode("Comment", record.thread_id)),
            reply_to_id=strawberry.ID(ids.encode("Comment", record.reply_to_id))
            if record.reply_to_id
            else None,
            author_id=record.author_id,
            body=comment_services.visible_body(record),
            body_sha256=record.body_sha256,
            mentions=[] if record.deleted else list(record.mentions),
            revision=record.revision,
            version=record.version,
            edited=record.edited,
            deleted=record.deleted,
            deleted_at=record.deleted_at,
            deleted_by=record.deleted_by,
            created_at=record.created_at,
            updated_at=record.updated_at,
            raw_id=record.id,
        )


@strawberry.type(description="One comment in a page of comments.")
class CommentEdge:
    cursor: str = strawberry.field(description="Opaque position; pass as `after` to go on.")
    node: Comment = strawberry.field(description="The comment.")


@strawberry.type(description="A page of an item's comments, in the order they were written.")
class CommentConnection:
    edges: list[CommentEdge] = strawberry.field(description="The comments of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page is.")
    event_cursor: str = strawberry.field(description=EVENT_CURSOR_DESCRIPTION)

    @strawberry.field(description="The comments of this page without their cursors.")
    def nodes(self) -> list[Comment]:
        return [edge.node for edge in self.edges]


def _cursor(seq: int) -> str:
    return ids.encode(_CURSOR_TYPE, seq)


def _after(cursor: str, field: str = "after") -> int:
    type_name, raw = ids.decode(cursor, field)
    if type_name != _CURSOR_TYPE or not raw.isdigit():
        raise DomainError(ErrorCode.INVALID_INPUT, "not a comment cursor", field)
    return int(raw)


@strawberry.type
class CommentQueries:
    @strawberry.field(
        description="Comments of an item the caller may read (replies included, each naming "
        "its thread), oldest first; only one step's with `stepId`."
    )
    async def comments(
        self,
        info: Info[SignoffContext, Any],
        item_id: Annotated[strawberry.ID, strawberry.argument(description="The item.")],
        step_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Only this step's comments.")
        ] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> CommentConnection:
        actor = actor_of(info)
        services = services_of(info)
        try:
            page = page_args(
                first, after, last, before, services.settings.max_page_size, DEFAULT_PAGE_SIZE
            )
            raw_item = ids.decode_uuid(item_id, "WorkflowItem", "itemId")
            raw_step = ids.decode_uuid(step_id, "Step", "stepId") if step_id else None
            after_seq = _after(after) if after else None
            before_seq = _after(before, "before") if before else None
            async with feed.snapshot_read(actor.tenant_id) as head:
                records = await comment_services.list_comments(
                    actor,
                    services,
                    raw_item,
                    step_id=raw_step,
                    after_seq=after_seq,
                    limit=page.size + 1,
                    before_seq=before_seq,
                    from_end=page.backwards,
                )
        except DomainError as exc:
            raise CodedError(exc) from None
        shown, more = page.trim(records)
        edges = [CommentEdge(cursor=_cursor(r.seq), node=Comment.from_record(r)) for r in shown]
        return CommentConnection(
            edges=edges,
            page_info=page.info([e.cursor for e in edges], more),
            event_cursor=encode_cursor(actor.tenant_id, head),
        )

    @strawberry.field(description="One comment by global id; null when absent or not visible.")
    async def comment(
        self,
        info: Info[SignoffContext, Any],
        id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the comment.")],
    ) -> Comment | None:
        actor = actor_of(info)
        try:
            record = await comment_services.get_comment(
                actor, services_of(info), ids.decode_uuid(id, "Comment")
            )
        except DomainError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                return None
            raise CodedError(exc) from None
        return Comment.from_record(record)

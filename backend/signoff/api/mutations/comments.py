"""Writing, editing and deleting comments."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from signoff.api import ids
from signoff.api.comments import Comment
from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.errors import UserError, user_error
from signoff.api.guards import GuardsInput, guards_field, key_guards, versioned_guards
from signoff.domain.comments import CommentRecord
from signoff.domain.errors import DomainError
from signoff.services import comments as comment_services


@strawberry.type(description="Result of a mutation on a comment: the comment, or why not.")
class CommentPayload:
    comment: Comment | None = strawberry.field(description="The comment after the change.")
    errors: list[UserError] = strawberry.field(description="Empty on success.")


@strawberry.input(
    description="A new comment. Give exactly one of `itemId` (on the item), `stepId` (on one "
    "of its steps) and `replyToId` (an answer in that comment's thread)."
)
class AddCommentInput:
    body: str = strawberry.field(
        description="The text (plain text; `@user` mentions notify those who may read the item)."
    )
    item_id: strawberry.ID | None = strawberry.field(default=None, description="The item.")
    step_id: strawberry.ID | None = strawberry.field(default=None, description="The step.")
    reply_to_id: strawberry.ID | None = strawberry.field(
        default=None, description="The comment this one answers."
    )
    guards: GuardsInput | None = guards_field(versioned=False)


@strawberry.input(description="A new text for a comment; the earlier ones stay as revisions.")
class EditCommentInput:
    comment_id: strawberry.ID = strawberry.field(description="The comment.")
    body: str = strawberry.field(description="The new text.")
    reason: str | None = strawberry.field(
        default=None, description="Why; required when a moderator edits someone else's comment."
    )
    guards: GuardsInput | None = guards_field(versioned=True)


@strawberry.input(description="Delete a comment: it stays in its thread as a tombstone.")
class DeleteCommentInput:
    comment_id: strawberry.ID = strawberry.field(description="The comment.")
    reason: str | None = strawberry.field(
        default=None, description="Why; required when a moderator deletes someone else's comment."
    )
    guards: GuardsInput | None = guards_field(versioned=True)


async def _payload(call: Callable[[], Awaitable[CommentRecord]]) -> CommentPayload:
    try:
        record = await call()
    except DomainError as exc:
        return CommentPayload(comment=None, errors=[user_error(exc)])
    return CommentPayload(comment=Comment.from_record(record), errors=[])


def _optional(value: strawberry.ID | None, type_name: str, field: str) -> Any:
    return ids.decode_uuid(value, type_name, field) if value is not None else None


@strawberry.type
class CommentMutations:
    @strawberry.mutation(description="Comment on an item or a step, or reply in a thread.")
    async def add_comment(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            AddCommentInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> CommentPayload:
        actor = actor_of(info)

        async def call() -> CommentRecord:
            guards = key_guards(input.guards)
            return await comment_services.add_comment(
                actor,
                services_of(info),
                comment_services.AddCommentInput(
                    body=input.body,
                    item_id=_optional(input.item_id, "WorkflowItem", "itemId"),
                    step_id=_optional(input.step_id, "Step", "stepId"),
                    reply_to_id=_optional(input.reply_to_id, "Comment", "replyToId"),
                    idempotency_key=guards.idempotency_key,
                ),
            )

        return await _payload(call)

    @strawberry.mutation(
        description="Change a comment's text (its author, or a holder of moderate_comments with a "
        "reason); every earlier text stays readable in `revisions`."
    )
    async def edit_comment(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            EditCommentInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> CommentPayload:
        actor = actor_of(info)

        async def call() -> CommentRecord:
            guards = versioned_guards(input.guards)
            return await comment_services.edit_comment(
                actor,
                services_of(info),
                comment_services.EditCommentInput(
                    comment_id=ids.decode_uuid(input.comment_id, "Comment", "commentId"),
                    body=input.body,
                    reason=input.reason,
                    expected_version=guards.expected_version,
                    idempotency_key=guards.idempotency_key,
                ),
            )

        return await _payload(call)

    @strawberry.mutation(
        description="Delete a comment (its author, or a holder of moderate_comments with a "
        "reason): a tombstone keeps its place in the thread."
    )
    async def delete_comment(
        self,
        info: Info[SignoffContext, Any],
        input: Annotated[
            DeleteCommentInput, strawberry.argument(description="The input of the mutation.")
        ],
    ) -> CommentPayload:
        actor = actor_of(info)

        async def call() -> CommentRecord:
            guards = versioned_guards(input.guards)
            return await comment_services.delete_comment(
                actor,
                services_of(info),
                comment_services.DeleteCommentInput(
                    comment_id=ids.decode_uuid(input.comment_id, "Comment", "commentId"),
                    reason=input.reason,
                    expected_version=guards.expected_version,
                    idempotency_key=guards.idempotency_key,
                ),
            )

        return await _payload(call)

"""piccolo table classes of comments (DDL: migration 2026-11-29T14:00)."""

from __future__ import annotations

from piccolo.columns import UUID, Array, BigSerial, ForeignKey, Integer, Text, Timestamptz
from piccolo.columns.column_types import OnDelete
from piccolo.table import Table

from signoff.db.engine import ENGINE
from signoff.db.tables import Step, Tenant, WorkflowItem


class Comment(Table, tablename="comment", db=ENGINE):
    """A comment's metadata: where it is, which thread, who wrote it, whether it was deleted."""

    id = UUID(primary_key=True)
    seq = BigSerial()
    tenant_id = ForeignKey(Tenant, on_delete=OnDelete.restrict, null=False)
    item_id = ForeignKey(WorkflowItem, on_delete=OnDelete.restrict, null=False)
    step_id = ForeignKey(Step, on_delete=OnDelete.restrict, null=True, default=None)
    thread_id = UUID()
    reply_to_id = UUID(null=True, default=None)
    author_id = Text()
    revision = Integer(default=1)
    version = Integer(default=1)
    deleted_at = Timestamptz(null=True, default=None)
    deleted_by = Text(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class CommentRevision(Table, tablename="comment_revision", db=ENGINE):
    """One body of a comment, as written or edited; the content retention may purge."""

    id = BigSerial(primary_key=True)
    tenant_id = ForeignKey(Tenant, on_delete=OnDelete.restrict, null=False)
    comment_id = ForeignKey(Comment, on_delete=OnDelete.restrict, null=False)
    revision = Integer()
    body = Text(null=True, default=None)
    body_sha256 = Text()
    mentions = Array(Text())
    editor_id = Text()
    reason = Text(null=True, default=None)
    created_at = Timestamptz()
    purged_at = Timestamptz(null=True, default=None)


COLLAB_TABLES: tuple[type[Table], ...] = (Comment, CommentRevision)

"""piccolo table classes of comments and evidence (DDL: migrations 2026-11-29T14:00, T14:10)."""

from __future__ import annotations

from piccolo.columns import UUID, Array, BigInt, BigSerial, ForeignKey, Integer, Text, Timestamptz
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


class EvidenceUpload(Table, tablename="evidence_upload", db=ENGINE):
    """A short-lived slot an evidence file is uploaded through (its id becomes the evidence's)."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(Tenant, on_delete=OnDelete.restrict, null=False)
    item_id = ForeignKey(WorkflowItem, on_delete=OnDelete.restrict, null=False)
    step_id = ForeignKey(Step, on_delete=OnDelete.restrict, null=True, default=None)
    uploader_id = Text()
    uploader_roles = Array(Text())
    uploader_groups = Array(Text())
    name = Text()
    content_type = Text()
    size = BigInt()
    sha256 = Text(null=True, default=None)
    description = Text(null=True, default=None)
    status = Text()
    storage_key = Text()
    expires_at = Timestamptz()
    created_at = Timestamptz()
    updated_at = Timestamptz()


class Evidence(Table, tablename="evidence", db=ENGINE):
    """An evidence file's metadata; the content is in the object store under `storage_key`."""

    id = UUID(primary_key=True)
    seq = BigSerial()
    tenant_id = ForeignKey(Tenant, on_delete=OnDelete.restrict, null=False)
    item_id = ForeignKey(WorkflowItem, on_delete=OnDelete.restrict, null=False)
    step_id = ForeignKey(Step, on_delete=OnDelete.restrict, null=True, default=None)
    source = Text()
    name = Text()
    content_type = Text()
    size = BigInt()
    sha256 = Text()
    description = Text(null=True, default=None)
    description_sha256 = Text(null=True, default=None)
    uploaded_by = Text()
    created_at = Timestamptz()
    storage_key = Text(null=True, default=None)
    purged_at = Timestamptz(null=True, default=None)
    redaction_due_at = Timestamptz(null=True, default=None)


class IncidentReview(Table, tablename="incident_review", db=ENGINE):
    """What an incident review is about: a trace, a decision, or a decided item it reopens."""

    item_id = ForeignKey(WorkflowItem, on_delete=OnDelete.restrict, null=False, primary_key=True)
    tenant_id = ForeignKey(Tenant, on_delete=OnDelete.restrict, null=False)
    source_ref = Text()
    source_kind = Text()
    subject = Text(null=True, default=None)
    reviewed_item_id = UUID(null=True, default=None)
    snapshot_evidence_id = UUID(null=True, default=None)
    created_at = Timestamptz()


COLLAB_TABLES: tuple[type[Table], ...] = (
    Comment,
    CommentRevision,
    EvidenceUpload,
    Evidence,
    IncidentReview,
)

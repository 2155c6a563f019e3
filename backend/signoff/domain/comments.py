"""Comment rules without I/O: bodies, mentions, digests, and who may change a comment."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from signoff.domain.actors import Principal
from signoff.domain.errors import DomainError, ErrorCode, invalid

MAX_REASON = 4000
MAX_MENTION = 100

# `@` at the start or after a character that cannot end a word or an address, then a user id:
# letters, digits and `_ . - + @` (so that `@alice@example.com` names that user). An address
# such as `bob@example.com` is no mention, because `@` follows a word character there.
_MENTION = re.compile(r"(?<![\w@.+-])@([A-Za-z0-9][\w.+@-]*)")
_TRAILING = ".-@+"
# C0 controls other than tab, line feed and carriage return (PostgreSQL refuses NUL outright).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class CommentRecord:
    """A comment with the content of its current revision (None when purged or deleted)."""

    id: UUID
    seq: int
    tenant_id: str
    item_id: UUID
    step_id: UUID | None
    thread_id: UUID
    reply_to_id: UUID | None
    author_id: str
    revision: int
    version: int
    body: str | None
    body_sha256: str
    mentions: tuple[str, ...]
    deleted_at: datetime | None
    deleted_by: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def deleted(self) -> bool:
        """Whether the comment is a tombstone."""
        return self.deleted_at is not None

    @property
    def edited(self) -> bool:
        """Whether the body was changed after it was first written."""
        return self.revision > 1


@dataclass(frozen=True)
class CommentRevisionRecord:
    """One body of a comment as written (revision 1) or edited."""

    comment_id: UUID
    revision: int
    body: str | None
    body_sha256: str
    mentions: tuple[str, ...]
    editor_id: str
    reason: str | None
    created_at: datetime
    purged_at: datetime | None


def parse_mentions(body: str) -> list[str]:
    """The user ids `@mentioned` in `body`, each once, in order of first appearance.

    Sentence punctuation after a name (`@alice.`, `@bob-`) is not part of it.
    """
    found: dict[str, None] = {}
    for match in _MENTION.finditer(body):
        name = match.group(1).rstrip(_TRAILING)
        if name and len(name) <= MAX_MENTION:
            found.setdefault(name, None)
    return list(found)


def check_body(body: str, *, max_chars: int, max_mentions: int) -> tuple[str, list[str]]:
    """A trimmed, bounded body and its mentions; INVALID_INPUT otherwise."""
    text = body.strip()
    if not text:
        raise invalid("a comment needs a body", "body")
    if _CONTROL.search(text):
        raise invalid("a comment may not contain control characters", "body")
    if len(text) > max_chars:
        raise invalid(f"a comment is at most {max_chars} characters", "body")
    mentions = parse_mentions(text)
    if len(mentions) > max_mentions:
        raise invalid(f"a comment mentions at most {max_mentions} people", "body")
    return text, mentions


def check_reason(reason: str | None) -> str | None:
    """A trimmed, bounded optional reason."""
    text = (reason or "").strip()
    if _CONTROL.search(text):
        raise invalid("a reason may not contain control characters", "reason")
    if len(text) > MAX_REASON:
        raise invalid(f"reason is longer than {MAX_REASON} characters", "reason")
    return text or None


def body_digest(body: str) -> str:
    """sha256 (hex) of a body's UTF-8 bytes: what the audit trail keeps of the content."""
    return hashlib.sha256(body.encode()).hexdigest()


def added_mentions(before: Sequence[str], after: Sequence[str]) -> list[str]:
    """Mentions in `after` that `before` did not have (only those are notified on an edit)."""
    known = set(before)
    return [m for m in after if m not in known]


def require_moderator(
    principal: Principal,
    comment: CommentRecord,
    moderator: bool,
    reason: str | None,
    what: str,
) -> bool:
    """Only the author, or a `moderator` (holder of `moderate_comments`), may `what` (edit,
    delete) a comment; a moderator acting on someone else's comment must give a reason.
    Returns whether it is such a moderation."""
    if principal.user_id == comment.author_id:
        return False
    if not moderator:
        raise DomainError(
            ErrorCode.FORBIDDEN,
            f"only the author or a holder of the moderate_comments permission may {what} it",
        )
    if not reason:
        raise DomainError(
            ErrorCode.JUSTIFICATION_REQUIRED,
            f"a reason is required to {what} someone else's comment",
            "reason",
        )
    return True

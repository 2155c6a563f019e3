"""Proving the audit trail over GraphQL: verifying the caller's tenant's chain (auditors)."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from signoff.api.context import SignoffContext, actor_of, services_of
from signoff.api.enums import described_enum
from signoff.api.errors import CodedError
from signoff.domain.audit import BreakKind
from signoff.domain.errors import DomainError
from signoff.services import audit as audit_services

described_enum(
    BreakKind,
    "Why the audit chain does not verify at an event.",
    {
        BreakKind.MISSING: "An event is absent: the numbers skip it, or the head names events "
        "that are not there.",
        BreakKind.LINK: "The event's previous hash is not its predecessor's hash (events removed "
        "or reordered).",
        BreakKind.HASH: "The event's hash is not the link of its previous hash, tenant, seq and "
        "content digest.",
        BreakKind.CONTENT: "The event's content no longer matches its digest (changed outside a "
        "redaction).",
    },
    name="ChainBreakKind",
)


@strawberry.type(description="The first event at which the audit chain does not verify.")
class ChainBreak:
    seq: int = strawberry.field(description="The event's position in the chain.")
    kind: BreakKind = strawberry.field(description="What is wrong there.")
    detail: str = strawberry.field(description="The same, in words.")


@strawberry.type(description="What verifying the tenant's audit chain found.")
class AuditChainVerification:
    ok: bool = strawberry.field(description="Whether every event checked verifies.")
    from_seq: int = strawberry.field(description="The first event checked.")
    head_seq: int = strawberry.field(
        description="The last event checked: the head when the check started (0: no events)."
    )
    head_hash: str = strawberry.field(
        description="Hash of that event; keep it elsewhere to detect events removed later."
    )
    first_break: ChainBreak | None = strawberry.field(
        description="The first broken link, if any: every event before it verifies."
    )


@strawberry.type
class AuditQueries:
    @strawberry.field(
        description="Verify the caller's tenant's audit chain from `fromSeq` to its head: links, "
        "numbering and content digests (redacted events by their links). Needs export_audit."
    )
    async def verify_audit_chain(
        self,
        info: Info[SignoffContext, Any],
        from_seq: Annotated[
            int, strawberry.argument(description="First event to check (its predecessor anchors).")
        ] = 1,
    ) -> AuditChainVerification:
        try:
            report = await audit_services.verify_chain(actor_of(info), services_of(info), from_seq)
        except DomainError as exc:
            raise CodedError(exc) from None
        broken = report.broken
        return AuditChainVerification(
            ok=report.ok,
            from_seq=report.from_seq,
            head_seq=report.head_seq,
            head_hash=report.head_hash,
            first_break=(
                ChainBreak(seq=broken.seq, kind=broken.kind, detail=broken.detail)
                if broken
                else None
            ),
        )

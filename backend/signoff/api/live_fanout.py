"""The live subscriptions (`inboxChanged`, `itemsChanged`, `itemEvents`) served by the tenant's
reader: per event, each distinct result is computed and encoded once, and each subscriber's
work is a filter check and a socket write.

A subscription's resolver checks its arguments, then hands the stream over (`api/push.py`).
Its operation task then only catches up (replays the events after its cursor that precede the
live feed, for this stream alone) and ends: a live stream holds no task and no suspended
GraphQL operation, only its `LiveStream`. Live batches are served by `LiveFanout.deliver`,
which the tenant's reader in this process awaits for every batch (`RealtimeHub.consumer`):

1. the rows the batch touches are read once (`BatchState`);
2. for every stream, in memory: what each event means for it (`LiveStream.changes`: for an
   inbox, the rule of `realtime/changes.py`; for a list of items, `item_list_change`; for an
   item, its events), whether the caller may read the item, what of its payload is hidden;
   `inboxChanged` streams of one cohort (same roles, groups, selection, operation id) together,
   each event judged once for the members it does not name (`InboxStream.judge_cohort`);
3. for every distinct (pushed object, selection) the GraphQL selection runs once and its
   result is encoded to JSON once;
4. every stream's `next` frame is its operation's prefix and suffix around that JSON, offered
   to its socket's `SocketWriter` (no task, no queue unless the socket is congested).

A stream whose socket cannot keep up (its writer overflowed) or whose catch-up falls too far
behind gets the `ResyncRequired` message (with the last event handed to its socket) and is
completed by a short task of its own (`_finish`); so is an `itemEvents` stream whose caller
may no longer read its item (without the marker). Nothing buffers without bound. The client's
`complete` and the socket's close cancel the stream's `PushTarget.ended`, which removes it.
"""

from __future__ import annotations

import json
import weakref
from collections import deque
from collections.abc import Awaitable
from typing import Any
from uuid import UUID

from signoff.api.context import tenant_scope_of
from signoff.api.live_types import BatchState, judgement_class, resync_marker
from signoff.api.push import Frame, OperationFrames, PushTarget, SocketWriter, encode
from signoff.api.shared_results import SharingStats, selection_key
from signoff.domain.actors import Actor
from signoff.realtime.changes import ChangeKind
from signoff.realtime.hub import FeedBatch, RealtimeHub
from signoff.services.context import ServiceContext

CONSUMER = "live"

REMEMBERED_ITEMS = 32
"""How many of its most recent items an `inboxChanged` stream remembers the last kind of (to
send one LEFT per transaction, and UPDATED for an item it reported as in the inbox): what a
socket holds must not grow with the inbox. Measured with tracemalloc (50 sockets, 150 items
each): 11.6 KiB per socket with the former bound of 10,000, growing ~80 bytes per item, and
4.3 KiB with 32."""

PushKey = tuple[Any, ...]
"""What a pushed object depends on, beginning with its event's `seq`: equal keys (of streams
with the same selection) get the same message."""

_UNJUDGED = object()


class Slot:
    """One message of a batch, for every stream planned to get it: its key, the first such
    stream (whose selection and context make it), and its frame once made."""

    __slots__ = ("frame", "key", "seq", "stream")

    def __init__(self, key: PushKey, stream: LiveStream) -> None:
        self.key = key
        self.seq: int = key[0]
        self.stream = stream
        self.frame: Frame | None = None


class WritePlan:
    """What one batch writes: for each stream, its slots in order; one slot per key, selection,
    `OperationFrames` and judgement class (their message is the same text)."""

    __slots__ = ("slots", "writes")

    def __init__(self) -> None:
        self.slots: dict[tuple[PushKey, Any, OperationFrames, Any], Slot] = {}
        self.writes: list[tuple[LiveStream, list[Slot]]] = []

    def slot(self, stream: LiveStream, key: PushKey) -> Slot:
        """The slot of `key` for streams like `stream` (its selection, frames and judgement
        class)."""
        index = (key, stream.selection, stream.frames, stream.judgement_class())
        slot = self.slots.get(index)
        if slot is None:
            slot = self.slots[index] = Slot(key, stream)
        return slot

    def add(self, stream: LiveStream, keys: list[PushKey]) -> None:
        """Write the messages of `keys` to `stream`, in order."""
        if keys:
            self.writes.append((stream, [self.slot(stream, key) for key in keys]))


class LiveStream:
    """One live subscription: who asks, where it is in the feed, its socket. A kind of
    subscription says what each event means for it (`changes`) and builds what is pushed
    (`build`)."""

    cohort: Any = None
    """Streams with the same cohort (not None) are judged together (`judge_cohort`): the
    same as each one's `changes`, with what they share worked out once."""

    __slots__ = (
        "actor",
        "context",
        "cursor",
        "ending",
        "executor",
        "finished",
        "frames",
        "held",
        "live",
        "selection",
        "target",
        "writer",
    )

    def __init__(self, actor: Actor, start: int, target: PushTarget, limit: int) -> None:
        self.actor = actor
        self.cursor = start
        """The last event this stream has judged (its frames are with its writer)."""
        self.target = target
        self.context = target.executor.context_value
        """The subscription's GraphQL context (its socket's): the selection runs in it."""
        self.executor = target.executor
        """What runs the selection: the operation's own executor until the fan-out gives the
        stream the one shared by every stream of its selection (`LiveFanout.add`)."""
        self.selection = selection_key(target.executor)
        target.executor = None
        self.frames = OperationFrames.of(target.operation_id, target.extensions)
        self.writer = SocketWriter(target.send, limit, start)
        self.live = False
        """Served by `LiveFanout.deliver`; until then batches are held for its catch-up."""
        self.held: deque[FeedBatch] | None = None
        """Live batches kept for the catch-up (made when the first one arrives, dropped when
        the stream is live: an empty deque is ~0.8 KiB per socket)."""
        self.ending = False
        """The stream is to end (fell behind, or the hub stops): nothing more is written but
        what ends it."""
        self.finished = False
        """The stream has nothing more to send (set by `changes`): it ends without a resync
        marker."""

    def changes(self, batch: FeedBatch, state: BatchState) -> list[PushKey]:
        """The keys of what each event of `batch` after the cursor pushes to this stream (in
        memory, against the batch's rows, after `BatchState.prepare_redaction`); moves the
        cursor past the batch."""
        raise NotImplementedError

    @staticmethod
    def judge_cohort(
        batch: FeedBatch, state: BatchState, members: list[Any], plan: WritePlan
    ) -> None:
        """Plan for every stream of one cohort what `changes` would give it (moving their
        cursors past the batch)."""
        raise NotImplementedError

    async def build(self, state: BatchState, event: dict[str, Any], key: PushKey) -> object:
        """The object pushed for `key` (made once for every stream with the same key and
        selection, by the first of them)."""
        raise NotImplementedError

    def follow(self, actor: Actor) -> None:
        """Judge from now on for `actor`: the socket's token was refreshed (its roles and
        groups apply to what is pushed next, docs/realtime.md)."""
        self.actor = actor

    def judgement_class(self) -> tuple[Any, ...]:
        """Who the stream's caller is besides their user id (`judgement_class`): a pushed
        result is shared only by callers of one class, because fields below a pushed object
        may answer by the caller's roles (`AuditEvent.clientAddr` by `read_audit_details`)."""
        return judgement_class(self.actor.principal)

    def hold(self, batch: FeedBatch, limit: int) -> None:
        """Keep a live batch for the catch-up; too many: end with a resync marker."""
        if self.ending:
            return
        held = self.held
        if held is None:
            held = self.held = deque()
        if held and sum(len(b) for b in held) + len(batch) > limit:
            self.held = None
            self.end()
            return
        held.append(batch)

    def end(self) -> None:
        """Stop serving the stream; a live one is finished at once (`LiveFanout.finish`), one
        catching up when its catch-up returns."""
        self.ending = True

    @property
    def resync_seq(self) -> int:
        """Where a resubscription must resume: the last frame handed to the socket when frames
        were dropped, else the last event judged (its frames were all taken)."""
        return self.writer.sent_seq if self.writer.overflowed else self.cursor


class InboxStream(LiveStream):
    """One `inboxChanged` subscription."""

    __slots__ = ("cohort", "last", "user")

    def __init__(self, actor: Actor, start: int, target: PushTarget, limit: int) -> None:
        super().__init__(actor, start, target, limit)
        self.last: dict[UUID, ChangeKind] = {}
        """The kind last reported for each of its most recent items, oldest first (a plain
        dict: an `OrderedDict` of 32 items was ~2 KiB more per socket)."""
        self.follow(actor)

    def judgement_class(self) -> tuple[Any, ...]:
        judged_as: tuple[Any, ...] = self.cohort[1]
        return judged_as

    def follow(self, actor: Actor) -> None:
        super().follow(actor)
        principal = actor.principal
        self.user = principal.user_id
        self.cohort = (InboxStream, judgement_class(principal), self.selection, self.frames)

    def kind_to_send(self, item_id: UUID, kind: ChangeKind) -> ChangeKind | None:
        """The kind of change this stream reports for a change of `kind` to `item_id` (None:
        nothing), remembered for the item's next change."""
        last = self.last
        previous = last.get(item_id)
        if kind == ChangeKind.LEFT and previous == ChangeKind.LEFT:
            return None  # one transaction can end a step, then the item: one LEFT
        if kind == ChangeKind.ENTERED and previous in (ChangeKind.ENTERED, ChangeKind.UPDATED):
            kind = ChangeKind.UPDATED
        if previous is not None:
            del last[item_id]  # (re-entered below: the most recent last)
        last[item_id] = kind
        if len(last) > REMEMBERED_ITEMS:
            del last[next(iter(last))]
        return kind

    def changes(self, batch: FeedBatch, state: BatchState) -> list[PushKey]:
        """How each event of `batch` after the cursor changed the caller's inbox (in memory,
        against the batch's rows); moves the cursor past the batch."""
        principal = self.actor.principal
        out: list[PushKey] = []
        for event in batch:
            seq = event["seq"]
            item_id = event["item_id"]
            if seq <= self.cursor or item_id not in state.items:
                continue
            judged = state.judge(event, principal)
            if judged is None:
                continue
            change, readable, hidden = judged
            kind = self.kind_to_send(item_id, change.kind)
            if kind is not None:
                out.append((seq, kind, change.reason, change.claim, readable, hidden))
        self.cursor = max(self.cursor, batch[-1]["seq"])
        return out

    @staticmethod
    def judge_cohort(
        batch: FeedBatch, state: BatchState, members: list[InboxStream], plan: WritePlan
    ) -> None:
        """What `changes` gives each member, judged once per event for the members the event
        does not name (`BatchState.judge`: their judgement is their class's, which every
        member shares), and one slot per event and kind for all of them: a member's own work
        is its cursor, the kind it reports (`kind_to_send`) and a list of slots."""
        end = batch[-1]["seq"]
        events = [e for e in batch if e["item_id"] in state.items]
        named = [state.named(e) for e in events]
        shared: list[Any] = [_UNJUDGED] * len(events)
        slots_of: list[dict[ChangeKind, Slot]] = [{} for _ in events]
        writes = plan.writes
        for stream in members:
            cursor = stream.cursor
            user = stream.user
            slots: list[Slot] | None = None
            for i, event in enumerate(events):
                seq = event["seq"]
                if seq <= cursor:
                    continue
                own = user in named[i]
                judged: Any = shared[i] if not own else _UNJUDGED
                if judged is _UNJUDGED:
                    judged = state.judge(event, stream.actor.principal)
                    if not own:
                        shared[i] = judged
                if judged is None:
                    continue
                change, readable, hidden = judged
                kind = stream.kind_to_send(event["item_id"], change.kind)
                if kind is None:
                    continue
                slot = None if own else slots_of[i].get(kind)
                if slot is None:
                    key = (seq, kind, change.reason, change.claim, readable, hidden)
                    slot = plan.slot(stream, key)
                    if not own:
                        slots_of[i][kind] = slot
                if slots is None:
                    slots = [slot]
                else:
                    slots.append(slot)
            if end > cursor:
                stream.cursor = end
            if slots is not None:
                writes.append((stream, slots))

    async def build(self, state: BatchState, event: dict[str, Any], key: PushKey) -> object:
        _, kind, reason, claim, readable, hidden = key
        return await state.inbox_change(event, kind, reason, claim, readable, hidden)


def plan_writes(batch: FeedBatch, state: BatchState, streams: list[LiveStream]) -> WritePlan:
    """What `batch` writes to each of `streams` (in memory, against the batch's rows, after
    `BatchState.prepare_redaction`), moving their cursors past it: each stream's `changes`;
    streams of one cohort together (`judge_cohort`: the same messages)."""
    plan = WritePlan()
    cohorts: dict[Any, list[LiveStream]] = {}
    for stream in streams:
        if stream.ending:
            continue
        # The socket's actor now: a refreshed token replaces it (`api/ws_sessions.py`).
        context = stream.context
        if context is not None:
            actor = context.cache.get("actor")
            if actor is not None and actor is not stream.actor:
                stream.follow(actor)
        cohort = stream.cohort
        if cohort is None:
            plan.add(stream, stream.changes(batch, state))
            continue
        members = cohorts.get(cohort)
        if members is None:
            cohorts[cohort] = [stream]
        else:
            members.append(stream)
    for members in cohorts.values():
        if len(members) == 1:  # nothing to share
            plan.add(members[0], members[0].changes(batch, state))
        else:
            members[0].judge_cohort(batch, state, members, plan)
    return plan


class LiveFanout:
    """The live streams of one tenant in this process, served by its reader."""

    def __init__(self, hub: RealtimeHub, tenant_id: str, services: ServiceContext) -> None:
        self.hub = hub
        self.tenant_id = tenant_id
        self.services = services
        self.streams: set[LiveStream] = set()
        self.executors: weakref.WeakValueDictionary[Any, Any] = weakref.WeakValueDictionary()
        """One executor per selection, shared by its streams (kept while any holds it)."""

    def __len__(self) -> int:
        return len(self.streams)

    def add(self, stream: LiveStream) -> None:
        """Register a stream (held until its catch-up makes it live). It lets go of its
        operation's executor for the one of its selection: graphql-core's plans of an operation
        are ~3.4 KiB, kept once per selection instead of once per socket; the selection runs
        in each stream's own context (`run_selection`), so the shared executor holds no
        socket's (`LiveExecutor.detached`)."""
        shared = self.executors.get(stream.selection)
        if shared is None:
            shared = self.executors[stream.selection] = stream.executor.detached()
        stream.executor = shared
        self.streams.add(stream)

    def remove(self, stream: LiveStream) -> None:
        """Forget a stream; the last one detaches the fan-out from the tenant's reader."""
        if stream not in self.streams:
            return
        self.streams.discard(stream)
        stream.writer.cancel()
        if not self.streams:
            self.hub.release(self.tenant_id, CONSUMER, self)

    def end(self, stream: LiveStream) -> None:
        """End `stream` (it fell behind, or the hub stops); a live one is finished now."""
        if stream.ending:
            return
        stream.end()
        if stream.live:
            self.finish(stream)

    def finish(self, stream: LiveStream) -> None:
        """Send what ends an ended stream and complete its operation, in a task of its own
        (counted among the hub's running tasks until it is done)."""
        self.hub.spawn(_finish(self, stream), name="signoff-inbox-end")

    def close(self) -> None:
        """The hub stops: end every stream."""
        for stream in list(self.streams):
            self.end(stream)

    async def deliver(self, batch: FeedBatch) -> None:
        """Serve one live batch to every live stream; hold it for those catching up."""
        live = []
        for stream in self.streams:
            if stream.live:
                live.append(stream)
            else:
                stream.hold(batch, self.hub.max_queued_events)  # (may end it)
        if live:
            await self.render(batch, live)

    async def render(self, batch: FeedBatch, streams: list[LiveStream]) -> None:
        """Write the batch's inbox changes to `streams`' sockets."""
        if not any(e["item_id"] for e in batch):
            for stream in streams:
                stream.cursor = max(stream.cursor, batch[-1]["seq"])
            return
        state = await BatchState.of(batch, self.tenant_id, self.services)
        await state.prepare_redaction()
        plan = plan_writes(batch, state, streams)
        if plan.writes:
            await self._write(state, batch, plan)
        for stream in streams:
            if stream.finished:
                self.end(stream)

    async def _write(self, state: BatchState, batch: FeedBatch, plan: WritePlan) -> None:
        events = {e["seq"]: e for e in batch}
        computed = SharingStats.computed
        # One frame per message text: streams of operations with the same id and extensions
        # (the same `OperationFrames`), selection and judgement class get the very same bytes.
        for slot in plan.slots.values():
            stream = slot.stream
            key = slot.key

            def encode_once(
                key: PushKey = key, stream: LiveStream = stream
            ) -> Awaitable[tuple[str, str | None, object]]:
                return self._encode(state, events[key[0]], key, stream)

            # (the operation is kept with its text, so that its id names no other meanwhile)
            shared = ("live-json", key, stream.selection, stream.judgement_class())
            data, errors, _ = await batch.shared(shared, encode_once)
            slot.frame = Frame(stream.frames.next_text(data, errors))
        written = 0
        for stream, slots in plan.writes:
            if stream.ending:
                continue
            writer = stream.writer
            for slot in slots:
                if not writer.offer(slot.frame, slot.seq):  # type: ignore[arg-type]
                    self.end(stream)
                    break
                written += 1
        SharingStats.reused += max(written - (SharingStats.computed - computed), 0)

    async def _encode(
        self, state: BatchState, event: dict[str, Any], key: PushKey, stream: LiveStream
    ) -> tuple[str, str | None, object]:
        pushed = await stream.build(state, event, key)
        data, errors = await run_selection(stream.executor, pushed, stream.context)
        return data, errors, stream.executor.operation


async def run_selection(executor: Any, root: object, context: Any = None) -> tuple[str, str | None]:
    """The subscription's selection over `root` (once), in `context` (default: the
    executor's), as the JSON of the `next` payload's data and errors (None: no errors), errors
    finished as the schema finishes every result."""
    SharingStats.computed += 1
    if context is None:
        context = executor.context_value
    with tenant_scope_of(context):
        result = executor.execute_event(root, context)
        if executor.is_awaitable(result):
            result = await result
    if not result.errors:
        return encode(result.data), None
    schema = executor.strawberry_schema
    schema.process_errors(result.errors)
    finished = schema._finish(result)
    return encode(finished.data), json.dumps(
        [e.formatted for e in finished.errors], separators=(",", ":")
    )


async def serve(hub: RealtimeHub, services: ServiceContext, stream: LiveStream) -> None:
    """Serve `stream` from its cursor on: catch up alone (in the calling task, the
    operation's), then hand the stream to the tenant's fan-out and return. From then on it
    lives without a task until it ends: it falls behind, has nothing more to send, or the hub
    stops (the fan-out completes it), or `target.ended` is cancelled (the client completed it,
    the socket closed)."""
    target = stream.target
    tenant_id = stream.actor.tenant_id
    fanout = hub.consumer(tenant_id, CONSUMER, lambda: LiveFanout(hub, tenant_id, services))
    fanout.add(stream)
    try:
        # The rows read here (the catch-up's) are the caller's tenant's, under row-level
        # security.
        with tenant_scope_of(stream.context):
            await _catch_up(hub, fanout, stream)
    except BaseException:
        fanout.remove(stream)
        raise
    target.ended.add_done_callback(lambda _ended: fanout.remove(stream))
    if stream.ending or hub.closed:
        stream.ending = True
        fanout.finish(stream)


async def _catch_up(hub: RealtimeHub, fanout: LiveFanout, stream: LiveStream) -> None:
    tenant_id = fanout.tenant_id
    # Every batch after `live_from` reaches the stream (held until it is live); what lies up
    # to it is committed and visible, so it is read from the table.
    live_from = await hub.live_cursor(tenant_id)
    async for batch in hub.backlog(tenant_id, stream.cursor, live_from):
        if stream.ending:
            return
        await fanout.render(batch, [stream])
    stream.cursor = max(stream.cursor, live_from)
    while stream.held and not stream.ending:
        await fanout.render(stream.held.popleft(), [stream])
    # No await between the last held batch and this: the next batch is served live.
    stream.held = None
    stream.live = not stream.ending


async def _finish(fanout: LiveFanout, stream: LiveStream) -> None:
    """End a stream that fell behind (`ResyncRequired`, then `complete`) or whose hub stops
    (`complete`), after the frames its socket took; nothing when the socket is gone (its
    handler's shutdown cancels `ended`, which removes the stream)."""
    target = stream.target
    writer = stream.writer
    try:
        await writer.drained()
        if target.ended.done() or (writer.closed and not writer.overflowed):
            return
        if not fanout.hub.closed and not stream.finished:
            marker = resync_marker(fanout.tenant_id, stream.resync_seq)
            data, errors = await run_selection(stream.executor, marker, stream.context)
            await writer.write_last(stream.frames.next_text(data, errors))
        if target.ended.done():  # the client completed it meanwhile
            return
        target.complete()
        await writer.write_last(target.complete_text())
    finally:
        fanout.remove(stream)
        if not target.ended.done():
            target.ended.set_result(None)

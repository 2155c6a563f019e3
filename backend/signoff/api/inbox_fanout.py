"""`inboxChanged` served by the tenant's reader: per event, each distinct result is computed and
encoded once, and each subscriber's work is a filter check and a socket write.

A subscription's resolver checks its cursor, then hands the stream over (`api/push.py`). Its
operation task then only catches up (replays the events after its cursor that precede the live
feed, for this stream alone) and ends: a live stream holds no task and no suspended GraphQL
operation, only its `InboxStream`. Live batches are served by `InboxFanout.deliver`, which the
tenant's reader in this process awaits for every batch (`RealtimeHub.consumer`):

1. the rows the batch touches are read once (`BatchState`, shared with `itemEvents`);
2. for every stream, in memory: which events change the caller's inbox and how (the rule of
   `realtime/changes.py`), whether the caller may read the item, what of its payload is
   hidden (`InboxStream.changes`);
3. for every distinct (pushed object, selection) the GraphQL selection runs once and its
   result is encoded to JSON once;
4. every stream's `next` frame is its operation's prefix and suffix around that JSON, offered
   to its socket's `SocketWriter` (no task, no queue unless the socket is congested).

A stream whose socket cannot keep up (its writer overflowed) or whose catch-up falls too far
behind gets the `ResyncRequired` message (with the last event handed to its socket) and is
completed by a short task of its own (`_finish`); nothing buffers without bound. The client's
`complete` and the socket's close cancel the stream's `PushTarget.ended`, which removes it.
"""

from __future__ import annotations

import json
from collections import OrderedDict, deque
from collections.abc import Awaitable
from typing import Any
from uuid import UUID

from signoff.api.context import tenant_scope_of
from signoff.api.live_types import BatchState, Hidden, resync_marker
from signoff.api.push import OperationFrames, PushTarget, SocketWriter, encode
from signoff.api.shared_results import SharingStats, selection_key
from signoff.domain.actors import Actor
from signoff.realtime.changes import ChangeKind, ChangeReason
from signoff.realtime.hub import FeedBatch, RealtimeHub
from signoff.services.context import ServiceContext

CONSUMER = "inboxChanged"

REMEMBERED_ITEMS = 32
"""How many of its most recent items an `inboxChanged` stream remembers the last kind of (to
send one LEFT per transaction, and UPDATED for an item it reported as in the inbox): what a
socket holds must not grow with the inbox. Measured with tracemalloc (50 sockets, 150 items
each): 11.6 KiB per socket with the former bound of 10,000, growing ~80 bytes per item, and
4.3 KiB with 32."""

ChangeKey = tuple[int, ChangeKind, ChangeReason, bool, Hidden]
"""What an `InboxChange` pushed for an event depends on: (seq, kind, reason, readable, hidden)."""


class InboxStream:
    """One `inboxChanged` subscription: who asks, where it is in the feed, its socket."""

    __slots__ = (
        "actor",
        "cursor",
        "ending",
        "executor",
        "frames",
        "held",
        "last",
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
        self.executor = target.executor
        self.selection = selection_key(target.executor)
        self.frames = OperationFrames(target.operation_id, target.extensions)
        self.writer = SocketWriter(target.send, limit, start)
        self.last: OrderedDict[UUID, ChangeKind] = OrderedDict()
        self.live = False
        """Served by `InboxFanout.deliver`; until then batches are held for its catch-up."""
        self.held: deque[FeedBatch] = deque()
        self.ending = False
        """The stream is to end (fell behind, or the hub stops): nothing more is written but
        what ends it."""

    def changes(self, batch: FeedBatch, state: BatchState) -> list[ChangeKey]:
        """How each event of `batch` after the cursor changed the caller's inbox (in memory,
        against the batch's rows); moves the cursor past the batch."""
        principal = self.actor.principal
        out: list[ChangeKey] = []
        last = self.last
        for event in batch:
            seq = event["seq"]
            item_id = event["item_id"]
            if seq <= self.cursor or item_id not in state.items:
                continue
            judged = state.judge(event, principal)
            if judged is None:
                continue
            change, readable, hidden = judged
            kind = change.kind
            previous = last.get(item_id)
            if kind == ChangeKind.LEFT and previous == ChangeKind.LEFT:
                continue  # one transaction can end a step, then the item: one LEFT
            if kind == ChangeKind.ENTERED and previous in (ChangeKind.ENTERED, ChangeKind.UPDATED):
                kind = ChangeKind.UPDATED
            last[item_id] = kind
            last.move_to_end(item_id)
            if len(last) > REMEMBERED_ITEMS:
                last.popitem(last=False)
            out.append((seq, kind, change.reason, readable, hidden))
        self.cursor = max(self.cursor, batch[-1]["seq"])
        return out

    def hold(self, batch: FeedBatch, limit: int) -> None:
        """Keep a live batch for the catch-up; too many: end with a resync marker."""
        if self.ending:
            return
        if sum(len(b) for b in self.held) + len(batch) > limit and self.held:
            self.held.clear()
            self.end()
            return
        self.held.append(batch)

    def end(self) -> None:
        """Stop serving the stream; a live one is finished at once (`InboxFanout.finish`), one
        catching up when its catch-up returns."""
        self.ending = True

    @property
    def resync_seq(self) -> int:
        """Where a resubscription must resume: the last frame handed to the socket when frames
        were dropped, else the last event judged (its frames were all taken)."""
        return self.writer.sent_seq if self.writer.overflowed else self.cursor


class InboxFanout:
    """The `inboxChanged` streams of one tenant in this process, served by its reader."""

    def __init__(self, hub: RealtimeHub, tenant_id: str, services: ServiceContext) -> None:
        self.hub = hub
        self.tenant_id = tenant_id
        self.services = services
        self.streams: set[InboxStream] = set()

    def __len__(self) -> int:
        return len(self.streams)

    def add(self, stream: InboxStream) -> None:
        """Register a stream (held until its catch-up makes it live)."""
        self.streams.add(stream)

    def remove(self, stream: InboxStream) -> None:
        """Forget a stream; the last one detaches the fan-out from the tenant's reader."""
        if stream not in self.streams:
            return
        self.streams.discard(stream)
        stream.writer.cancel()
        if not self.streams:
            self.hub.release(self.tenant_id, CONSUMER, self)

    def end(self, stream: InboxStream) -> None:
        """End `stream` (it fell behind, or the hub stops); a live one is finished now."""
        if stream.ending:
            return
        stream.end()
        if stream.live:
            self.finish(stream)

    def finish(self, stream: InboxStream) -> None:
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

    async def render(self, batch: FeedBatch, streams: list[InboxStream]) -> None:
        """Write the batch's inbox changes to `streams`' sockets."""
        if not any(e["item_id"] for e in batch):
            for stream in streams:
                stream.cursor = max(stream.cursor, batch[-1]["seq"])
            return
        state = await BatchState.of(batch, self.tenant_id, self.services)
        await state.prepare_redaction()
        events = {e["seq"]: e for e in batch}
        plans: list[tuple[InboxStream, list[ChangeKey]]] = []
        wanted: dict[tuple[ChangeKey, Any], InboxStream] = {}
        for stream in streams:
            if stream.ending:
                continue
            keys = stream.changes(batch, state)
            if keys:
                plans.append((stream, keys))
                for key in keys:
                    wanted.setdefault((key, stream.selection), stream)
        if not plans:
            return
        texts: dict[tuple[ChangeKey, Any], tuple[str, str | None]] = {}
        computed = SharingStats.computed
        for (key, selection), stream in wanted.items():

            def encode_once(
                key: ChangeKey = key, stream: InboxStream = stream
            ) -> Awaitable[tuple[str, str | None, object]]:
                return self._encode(state, events[key[0]], key, stream)

            # (the operation is kept with its text, so that its id names no other meanwhile)
            data, errors, _ = await batch.shared(("inbox-json", key, selection), encode_once)
            texts[key, selection] = (data, errors)
        written = 0
        for stream, keys in plans:
            if stream.ending:
                continue
            writer = stream.writer
            frames = stream.frames
            for key in keys:
                data, errors = texts[key, stream.selection]
                if not writer.offer(frames.next_text(data, errors), key[0]):
                    self.end(stream)
                    break
                written += 1
        SharingStats.reused += max(written - (SharingStats.computed - computed), 0)

    async def _encode(
        self, state: BatchState, event: dict[str, Any], key: ChangeKey, stream: InboxStream
    ) -> tuple[str, str | None, object]:
        _, kind, reason, readable, hidden = key
        change = await state.inbox_change(event, kind, reason, readable, hidden)
        data, errors = await run_selection(stream.executor, change)
        return data, errors, stream.executor.operation


async def run_selection(executor: Any, root: object) -> tuple[str, str | None]:
    """The subscription's selection over `root` (once), as the JSON of the `next` payload's
    data and errors (None: no errors), errors finished as the schema finishes every result."""
    SharingStats.computed += 1
    with tenant_scope_of(executor.context_value):
        result = executor.execute_event(root)
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


async def serve(
    hub: RealtimeHub, services: ServiceContext, actor: Actor, start: int, target: PushTarget
) -> None:
    """Serve one `inboxChanged` stream from event `start` on: catch up alone (in the calling
    task, the operation's), then hand the stream to the tenant's fan-out and return. From then
    on it lives without a task until it ends: it falls behind or the hub stops (the fan-out
    completes it), or `target.ended` is cancelled (the client completed it, the socket
    closed)."""
    tenant_id = actor.tenant_id
    fanout = hub.consumer(tenant_id, CONSUMER, lambda: InboxFanout(hub, tenant_id, services))
    stream = InboxStream(actor, start, target, hub.max_queued_events)
    fanout.add(stream)
    try:
        # The rows read here (the catch-up's) are the caller's tenant's, under row-level
        # security.
        with tenant_scope_of(target.executor.context_value):
            await _catch_up(hub, fanout, stream)
    except BaseException:
        fanout.remove(stream)
        raise
    target.ended.add_done_callback(lambda _ended: fanout.remove(stream))
    if stream.ending or hub.closed:
        stream.ending = True
        fanout.finish(stream)


async def _catch_up(hub: RealtimeHub, fanout: InboxFanout, stream: InboxStream) -> None:
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
    stream.live = not stream.ending


async def _finish(fanout: InboxFanout, stream: InboxStream) -> None:
    """End a stream that fell behind (`ResyncRequired`, then `complete`) or whose hub stops
    (`complete`), after the frames its socket took; nothing when the socket is gone (its
    handler's shutdown cancels `ended`, which removes the stream)."""
    target = stream.target
    writer = stream.writer
    try:
        await writer.drained()
        if target.ended.done() or (writer.closed and not writer.overflowed):
            return
        if not fanout.hub.closed:
            marker = resync_marker(fanout.tenant_id, stream.resync_seq)
            data, errors = await run_selection(stream.executor, marker)
            await writer.write_last(stream.frames.next_text(data, errors))
        if target.ended.done():  # the client completed it meanwhile
            return
        target.complete()
        await writer.write_last(target.complete_text())
    finally:
        fanout.remove(stream)
        if not target.ended.done():
            target.ended.set_result(None)

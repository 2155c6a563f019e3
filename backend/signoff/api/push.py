"""Pushing frames to a websocket without a task or a JSON encoding per message.

A subscription that the realtime layer serves itself (`api/live_fanout.py`) leaves
strawberry's per-event machinery by a hand-over: its resolver yields one `Handover`; the
executor (`api/shared_results.py::LiveExecutor`) attaches itself to it instead of running
the selection, and the websocket handler (`api/ws_sessions.py`) hands it a `PushTarget`: the
operation's id, the extension results strawberry would add to every message, the socket, and
the operation's end. `serve(target)` runs in the operation's task only until the stream is in
the hands of whoever serves it; then that task ends and the operation lives on without one:
its messages are written with `OperationFrames` (the `next` message around pre-encoded JSON, a
`Frame` shared by every socket given the same text) and a `SocketWriter`, and the server
completes it through the target (`complete`) when the stream ends. The client's `complete` and
the socket's close cancel `PushTarget.ended`.

A `SocketWriter` writes a frame's bytes, encoded once, straight to the connection's transport
when the socket is uvicorn's websockets-sansio connection, open, uncongested and without a
compression extension (`direct_output`); otherwise through the socket's ASGI send, started at
once and finished by a task only when the socket is congested.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import OPEN

Send = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]

TRANSPORT_SEND = "signoff.transport_send"
"""Scope key of the server's own ASGI send of a websocket (`keep_transport_send`): frames
written through it skip the middlewares' send wrappers, which do nothing for data frames."""


def encode(value: object) -> str:
    """JSON as the GraphQL endpoint writes it (compact, ASCII)."""
    return json.dumps(value, separators=(",", ":"))


def keep_transport_send(app: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """ASGI wrapper (outermost) that records a websocket's own send in its scope."""

    async def recording(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            scope[TRANSPORT_SEND] = send
        await app(scope, receive, send)

    return recording


class Handover:
    """Yielded by a subscription's resolver to be served outside strawberry's per-event path.

    `serve(target)` runs in the operation's task (awaited by the websocket handler) until the
    stream is handed to whoever serves it; when it returns, the task ends without completing
    the operation, which stays registered until `target.ended` is done (see `PushTarget`). When
    it raises, the handler ends the operation as strawberry does for any failed operation."""

    __slots__ = ("executor", "serve")

    def __init__(self, serve: Callable[[PushTarget], Awaitable[None]]) -> None:
        self.serve = serve
        self.executor: Any = None
        """The subscription's executor (set while graphql-core runs the hand-over)."""


class PushTarget:
    """Where a handed-over subscription writes (its socket, operation id and executor), and
    how its operation ends.

    `ended` is cancelled when the operation ends from the client's side (its `complete`, the
    socket closing); whoever serves the stream stops then. When the server ends the stream, it
    calls `complete()` (the operation's id is free again from then on), writes
    `complete_text()` after its last frame, and sets `ended`'s result."""

    __slots__ = ("_forget", "ended", "executor", "extensions", "operation_id", "send")

    def __init__(
        self,
        send: Send,
        operation_id: str,
        extensions: Any,
        executor: Any,
        ended: asyncio.Future[None] | None = None,
        forget: Callable[[], None] | None = None,
    ) -> None:
        self.send = send
        self.operation_id = operation_id
        self.extensions = extensions
        self.executor = executor
        self.ended: asyncio.Future[None] = (
            ended if ended is not None else asyncio.get_running_loop().create_future()
        )
        self._forget = forget

    def complete(self) -> None:
        """Unregister the operation from its socket's handler (before its `complete` is sent,
        as the protocol's handler does): its id may be used again."""
        if self._forget is not None:
            self._forget()
            self._forget = None

    def complete_text(self) -> str:
        """The operation's graphql-transport-ws `complete` message."""
        return '{"id":' + encode(self.operation_id) + ',"type":"complete"}'


def text_frame(payload: bytes) -> bytes:
    """A whole, unmasked websocket text frame (what a server sends) carrying `payload`."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


class Frame:
    """One message, written to any number of sockets: its text, and its websocket frame
    (`wire`), made once for all of them."""

    __slots__ = ("text", "wire")

    def __init__(self, text: str) -> None:
        self.text = text
        self.wire = text_frame(text.encode())
        """The message as a whole websocket text frame."""


_FRAMES: weakref.WeakValueDictionary[tuple[str, str], OperationFrames] = (
    weakref.WeakValueDictionary()
)


class OperationFrames:
    """graphql-transport-ws messages of one operation around pre-encoded JSON: the same text
    as encoding the whole message (`{"id","type","payload":{"data","errors","extensions"}}`),
    with the shared part encoded once for every subscriber. Operations with the same id and
    extensions share one (`of`): their messages are the same text."""

    __slots__ = ("__weakref__", "_head", "_tail")

    def __init__(self, operation_id: str, extensions: Any) -> None:
        self._head = '{"id":' + encode(operation_id) + ',"type":"next","payload":{"data":'
        self._tail = (',"extensions":' + encode(extensions) if extensions else "") + "}}"

    @classmethod
    def of(cls, operation_id: str, extensions: Any) -> OperationFrames:
        """The frames of an operation with this id and these extensions (shared while used)."""
        key = (operation_id, encode(extensions) if extensions else "")
        frames = _FRAMES.get(key)
        if frames is None:
            frames = _FRAMES[key] = cls(operation_id, extensions)
        return frames

    def next_text(self, data_json: str, errors_json: str | None = None) -> str:
        """The `next` message whose payload's data (and errors) are already JSON."""
        errors = ',"errors":' + errors_json if errors_json is not None else ""
        return self._head + data_json + errors + self._tail


class _Rest:
    """The rest of a coroutine that was started by hand and suspended on `yielded`: awaiting
    it drives the coroutine on exactly as the awaiting task would have from the start (what
    Python 3.12's eager tasks do)."""

    __slots__ = ("coro", "yielded")

    def __init__(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self.coro = coro
        self.yielded = yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, yielded = self.coro, self.yielded
        while True:
            try:
                value = yield yielded
            except BaseException as exc:  # cancellation reaches the coroutine, as in a task
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    yielded = coro.send(value)
                except StopIteration as stop:
                    return stop.value

    def close(self) -> None:
        """End the coroutine where it stands if it did not finish (its `finally` runs)."""
        self.coro.close()


WEBSOCKET_OPTIONS: dict[str, Any] = {
    # The connection class `direct_output` writes frames to.
    "ws": "websockets-sansio",
    # No per-message compression: every socket is given the same frames, and compressing them
    # would be done per socket and message (a compressor's CPU per message, and a compressor
    # and decompressor per connection: ~43 KiB of zlib state at uvicorn's settings, by zlib's
    # own formula), for JSON messages of a few hundred bytes.
    "ws_per_message_deflate": False,
}
"""uvicorn's websocket options for the API (`signoff serve`, and the tests' servers)."""

DirectOutput = Callable[[bytes], bool]
"""Writes a whole frame to a socket now and says True, or says False when it cannot now."""


def direct_output(send: Send) -> DirectOutput | None:
    """A writer of whole frames straight to the transport of the connection whose ASGI send is
    `send`, when that is uvicorn's websockets-sansio connection without a negotiated extension
    (a compressed connection must compress each frame); None otherwise.

    It writes only while the connection is open, not congested, and has nothing of its own
    waiting to be written: then the frame's bytes are exactly what the connection's own
    `websocket.send` would write (`test_push.py` compares them), without its coroutines,
    frame objects and copies per socket."""
    protocol = getattr(send, "__self__", None)
    if not isinstance(protocol, WebSocketsSansIOProtocol) or protocol.conn.extensions:
        return None
    conn = protocol.conn
    writable = protocol.writable
    transport = protocol.transport

    def write(frame: bytes) -> bool:
        if (
            not writable.is_set()
            or protocol.close_sent
            or protocol.disconnected
            or conn.state is not OPEN
            or conn.writes
            or conn.expect_continuation_frame
            or transport.is_closing()
        ):
            return False
        transport.write(frame)
        return True

    return write


class SocketWriter:
    """One subscription's frames to its socket, in order, never waiting in the caller.

    `offer` writes the frame at once: straight to the transport (`direct_output`) or by
    starting the socket's ASGI send; an uncongested socket takes it before `offer` returns (no
    task, no queue). When the socket's buffer is full the send suspends: a task finishes it
    and the frames offered meanwhile wait in a queue of at most `limit`; past that the queue
    is dropped and the writer is `overflowed` (the subscriber must resynchronise from
    `sent_seq`, the last frame handed to the socket)."""

    __slots__ = (
        "_direct",
        "_idle",
        "_queue",
        "_send",
        "_task",
        "closed",
        "limit",
        "overflowed",
        "sent_seq",
    )

    def __init__(self, send: Send, limit: int, sent_seq: int) -> None:
        self._send = send
        self._direct = direct_output(send)
        # made when a congested socket first needs it (an empty deque is ~0.8 KiB a socket)
        self._queue: deque[tuple[Frame, int | None]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._idle: asyncio.Event | None = None
        self.limit = limit
        self.sent_seq = sent_seq
        self.overflowed = False
        self.closed = False
        """The socket refused a frame (it is gone)."""

    @property
    def direct(self) -> bool:
        """Frames go straight to the connection's transport when it can take them now."""
        return self._direct is not None

    @property
    def busy(self) -> bool:
        """A send is suspended on a congested socket."""
        return self._task is not None

    def offer(self, frame: Frame, seq: int | None = None) -> bool:
        """Write `frame` (the message of event `seq`) after the frames before it; False when it
        was not taken (the writer overflowed or the socket is gone)."""
        if self.overflowed or self.closed:
            return False
        if self._task is not None:
            queue = self._queue
            if queue is None:
                queue = self._queue = deque()
            if len(queue) >= self.limit:
                self._queue = None
                self.overflowed = True
                return False
            queue.append((frame, seq))
            return True
        if self._direct is not None and self._direct(frame.wire):
            if seq is not None:
                self.sent_seq = seq
            return True
        self._start(frame, seq)
        return not self.closed

    def _start(self, frame: Frame, seq: int | None) -> None:
        if seq is not None:
            self.sent_seq = seq
        coro = self._send({"type": "websocket.send", "text": frame.text})
        try:
            yielded = coro.send(None)
        except StopIteration:
            return
        except Exception:
            self.closed = True
            return
        rest = _Rest(coro, yielded)
        task = self._task = asyncio.ensure_future(self._finish(rest))
        task.add_done_callback(lambda _task: self._settled(task, rest))

    async def _finish(self, rest: _Rest) -> None:
        try:
            await rest
            while self._queue:
                frame, seq = self._queue.popleft()
                if seq is not None:
                    self.sent_seq = seq
                await self._send({"type": "websocket.send", "text": frame.text})
            self._queue = None
        except Exception:
            self.closed = True
            self._queue = None
        # Not busy from here on, with no await since the queue was seen empty: a frame offered
        # before the task's done callbacks run is written by `offer`, not left in the queue.
        self._task = None
        if self._idle is not None:
            self._idle.set()

    def _settled(self, task: asyncio.Future[None], rest: _Rest) -> None:
        rest.close()  # a task cancelled before it resumed the send ends it all the same
        if self._task is task:  # (it was cancelled)
            self._task = None
            if self._idle is not None:
                self._idle.set()

    async def drained(self) -> None:
        """Wait until every frame taken was handed to the socket."""
        while self._task is not None:
            if self._idle is None:
                self._idle = asyncio.Event()
            self._idle.clear()
            await self._idle.wait()

    async def write_last(self, text: str) -> None:
        """Write `text` after everything taken (dropped frames stay dropped), waiting for the
        socket; for the final messages of a subscription."""
        await self.drained()
        if self.closed:
            return
        try:
            await self._send({"type": "websocket.send", "text": text})
        except Exception:
            self.closed = True

    def cancel(self) -> None:
        """Stop writing (the subscription ended): queued frames are dropped."""
        self._queue = None
        self.closed = True
        if self._task is not None:
            self._task.cancel()

"""Frames pushed without strawberry's per-event path: the same text as encoding the whole
message, and a writer that keeps order, never waits in its caller and never buffers without
bound."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import OP_TEXT
from websockets.frames import Frame as WebSocketFrame

from signoff.api.push import Frame, OperationFrames, SocketWriter, encode, text_frame

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    op_id=st.text(),
    data=st.dictionaries(st.text(), JSON_VALUES, max_size=5),
    errors=st.none() | st.lists(st.dictionaries(st.text(), JSON_VALUES, max_size=3), max_size=2),
    extensions=st.none() | st.dictionaries(st.text(), JSON_VALUES, max_size=3),
)
def test_a_frame_is_the_encoding_of_the_whole_message(
    op_id: str, data: dict[str, Any], errors: list[Any] | None, extensions: dict[str, Any] | None
) -> None:
    # what strawberry's handler sends: data, then errors and extensions when there are any
    payload: dict[str, Any] = {"data": data}
    if errors:
        payload["errors"] = errors
    if extensions:
        payload["extensions"] = extensions
    message = {"id": op_id, "type": "next", "payload": payload}
    frames = OperationFrames(op_id, extensions)
    text = frames.next_text(encode(data), encode(errors) if errors else None)
    assert text == json.dumps(message, separators=(",", ":"))


@settings(max_examples=200, deadline=None)
@given(
    size=st.sampled_from([0, 1, 125, 126, 127, 65535, 65536, 70000]) | st.integers(0, 70000),
    fill=st.binary(min_size=1, max_size=8),
)
def test_a_direct_frame_is_the_frame_the_connection_would_write(size: int, fill: bytes) -> None:
    payload = (fill * (size // len(fill) + 1))[:size]
    # what `websockets` serialises for a server's unfragmented text frame, uncompressed
    expected = WebSocketFrame(OP_TEXT, payload).serialize(mask=False, extensions=[])
    assert text_frame(payload) == expected


class Socket:
    """A socket's ASGI send as uvicorn's is: it writes at once unless the socket's buffer is
    full, then waits until it drains (`writable`)."""

    def __init__(self) -> None:
        self.writable = asyncio.Event()
        self.writable.set()
        self.written: list[str] = []
        self.suspended = 0
        self.gone = False

    async def send(self, message: dict[str, Any]) -> None:
        if not self.writable.is_set():
            self.suspended += 1
        await self.writable.wait()
        if self.gone:
            raise OSError("client disconnected")
        self.written.append(message["text"])


async def test_an_uncongested_socket_takes_each_frame_in_the_call() -> None:
    socket = Socket()
    writer = SocketWriter(socket.send, limit=3, sent_seq=0)
    for n in range(1, 50):
        assert writer.offer(Frame(f"f{n}"), n)
        # written before `offer` returned: no task, no queue
        assert socket.written[-1] == f"f{n}" and not writer.busy
    assert writer.sent_seq == 49


@settings(max_examples=100, deadline=None)
@given(
    limit=st.integers(1, 5),
    plan=st.lists(st.sampled_from(["frame", "block", "unblock", "tick", "drain"]), max_size=40),
)
def test_frames_keep_their_order_and_a_congested_writer_is_bounded(
    limit: int, plan: list[str]
) -> None:
    async def run() -> None:
        socket = Socket()
        writer = SocketWriter(socket.send, limit=limit, sent_seq=0)
        taken: list[str] = []
        seq = 0
        for step in plan:
            if step == "block":
                socket.writable.clear()
            elif step == "unblock":  # the socket drains while frames keep coming
                socket.writable.set()
            elif step == "tick":  # the finishing task runs a step (frames offered in between)
                await asyncio.sleep(0)
            elif step == "drain":
                socket.writable.set()
                await writer.drained()
            else:
                seq += 1
                if writer.offer(Frame(f"f{seq}"), seq):
                    taken.append(f"f{seq}")
                if writer.overflowed:
                    break
            # never more than the in-flight frame and `limit` queued
            assert len(taken) - len(socket.written) <= limit + 1
        socket.writable.set()
        await writer.drained()
        if writer.overflowed:
            # what was handed to the socket arrives, in order, and the resync point is its last
            assert socket.written == taken[: len(socket.written)]
            assert writer.sent_seq == int(socket.written[-1][1:]) if socket.written else 0
            assert not writer.offer(Frame("late"), seq + 1)
        else:
            assert socket.written == taken
            assert writer.sent_seq == seq

    asyncio.run(run())


async def test_a_writer_overflows_past_its_limit_and_writes_its_last_frame_after_the_rest() -> None:
    socket = Socket()
    writer = SocketWriter(socket.send, limit=2, sent_seq=0)
    socket.writable.clear()
    assert writer.offer(Frame("f1"), 1)  # in flight, waiting for the socket
    assert writer.busy and socket.suspended == 1
    assert writer.offer(Frame("f2"), 2) and writer.offer(Frame("f3"), 3)  # queued
    assert not writer.offer(Frame("f4"), 4)  # past the limit: the queue is dropped
    assert writer.overflowed and writer.sent_seq == 1
    last = asyncio.create_task(writer.write_last("marker"))
    await asyncio.sleep(0)
    assert socket.written == []
    socket.writable.set()
    await last
    assert socket.written == ["f1", "marker"]


async def test_a_gone_socket_closes_the_writer() -> None:
    socket = Socket()
    writer = SocketWriter(socket.send, limit=2, sent_seq=0)
    socket.gone = True
    assert not writer.offer(Frame("f1"), 1)
    assert writer.closed
    assert not writer.offer(Frame("f2"), 2)


@pytest.mark.parametrize("resumed_first", [False, True])
async def test_cancelling_a_writer_ends_the_suspended_send(resumed_first: bool) -> None:
    ended = asyncio.Event()
    gate = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        try:
            await gate.wait()
        finally:
            ended.set()

    writer = SocketWriter(send, limit=2, sent_seq=0)
    assert writer.offer(Frame("f1"), 1) and writer.busy
    if resumed_first:  # the finishing task has taken over the send
        await asyncio.sleep(0)
    writer.cancel()
    await asyncio.wait_for(writer.drained(), 5)
    assert ended.is_set()
    assert not writer.busy and writer.closed

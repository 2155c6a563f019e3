"""The fan-out benchmark's cheap websocket client reads what a real server sends.

Its frames are parsed by hand, so the parser is checked against frames wherever the byte
stream happens to be cut, and the whole client against a real `websockets` server: the
handshake, text and binary messages of every length class, a server ping answered, a close.
"""

from __future__ import annotations

import asyncio
import time

from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.server import serve
from websockets.frames import Frame, Opcode
from websockets.typing import Subprotocol

from signoff.bench import wsclient


def _server_frame(opcode: int, payload: bytes) -> bytes:
    return Frame(Opcode(opcode), payload).serialize(mask=False, extensions=[])


data_frames = st.tuples(
    st.sampled_from([wsclient.TEXT, wsclient.BINARY]),
    st.one_of(
        st.binary(max_size=130),
        st.integers(125, 70_000).map(lambda n: bytes([n % 251]) * n),
    ),
)
pings = st.tuples(st.just(wsclient.PING), st.binary(max_size=125))
messages = st.lists(st.one_of(data_frames, pings), max_size=6)


@given(messages, st.lists(st.integers(0, 200_000), max_size=8))
def test_frames_survive_any_cut_of_the_stream(sent, cuts):
    stream = b"".join(_server_frame(op, payload) for op, payload in sent)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    reader = wsclient.FrameReader()
    got = []
    previous = 0
    for point in [*points, len(stream)]:
        got += reader.feed(stream[previous:point])
        previous = point
    assert got == sent


@given(st.sampled_from([wsclient.TEXT, wsclient.CLOSE]), st.binary(max_size=70_000))
def test_client_frames_are_masked_and_decode_to_the_payload(opcode, payload):
    data = wsclient.frame(opcode, payload)
    # websockets' own parser, as a server runs it
    parsed = _drive(Frame.parse(_reader(data), mask=True, max_size=None, extensions=[]))
    assert data[1] & 0x80
    assert (parsed.opcode, parsed.data) == (Opcode(opcode), payload)


def _reader(data: bytes):
    position = 0

    def read_exact(n: int):
        nonlocal position
        chunk = data[position : position + n]
        position += n
        return chunk
        yield  # a generator, as websockets' parser expects

    return read_exact


def _drive(generator):
    try:
        while True:
            next(generator)
    except StopIteration as done:
        return done.value


async def test_a_real_server_session():
    pinged = asyncio.Event()
    received: list[str] = []

    async def handler(ws):
        await ws.send("hello fanout-7")
        await ws.send(b"\x00" * 70_000)
        await ws.send("x" * 300)
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 10)
        pinged.set()
        received.append(await ws.recv())
        await ws.close()

    frames: list[tuple[int, bytes]] = []
    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        socket = await wsclient.connect(
            f"ws://127.0.0.1:{port}/", lambda op, data, _at: frames.append((op, data)), time.time
        )
        await asyncio.wait_for(pinged.wait(), 10)
        socket.send(wsclient.TEXT, b'{"type":"pong"}')
        await asyncio.wait_for(socket.closed, 10)
    assert frames == [
        (wsclient.TEXT, b"hello fanout-7"),
        (wsclient.BINARY, b"\x00" * 70_000),
        (wsclient.TEXT, b"x" * 300),
    ]
    assert received == ['{"type":"pong"}']


async def test_a_refused_handshake_raises():
    async def handler(ws):  # pragma: no cover - never reached
        await ws.close()

    async with serve(handler, "127.0.0.1", 0, subprotocols=[Subprotocol("only-this")]) as server:
        port = server.sockets[0].getsockname()[1]
        try:
            await wsclient.connect(
                f"ws://127.0.0.1:{port}/", lambda *_: None, time.time, subprotocol="other"
            )
        except ConnectionError:
            pass
        else:  # pragma: no cover
            raise AssertionError("a refused handshake must raise")

"""A response's head and body leave in one write (signoff/http_server.py): uvicorn's own
protocol, fed real request bytes, over a transport that records what is written to it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from signoff.cli import server_options
from signoff.http_server import HeldHeadTransport, OneWriteHttpToolsProtocol
from signoff.settings import Settings

REQUEST = b"GET /thing HTTP/1.1\r\nHost: x\r\n\r\n"


class RecordingTransport(asyncio.Transport):
    """The socket's side: every write recorded, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.protocol: Any = None

    def write(self, data: Any) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        extra = {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}
        return extra.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol


async def serve_one(app: Any, request: bytes = REQUEST) -> RecordingTransport:
    """`app` answers `request` through the protocol; what reached the socket."""
    config = uvicorn.Config(app, http=OneWriteHttpToolsProtocol, lifespan="off", log_level="error")
    config.load()
    state = ServerState()
    protocol = OneWriteHttpToolsProtocol(config=config, server_state=state, app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(request)
    while state.tasks:
        await asyncio.gather(*list(state.tasks))
    await asyncio.sleep(0)  # the loop turn after the response (a held head would go now)
    return transport


def responder(*bodies: bytes, pause: bool = False) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        length = sum(len(b) for b in bodies)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(length).encode())],
            }
        )
        for i, body in enumerate(bodies):
            if pause:
                await asyncio.sleep(0)
            await send(
                {"type": "http.response.body", "body": body, "more_body": i < len(bodies) - 1}
            )

    return app


async def test_a_response_goes_out_in_one_write() -> None:
    transport = await serve_one(responder(b'{"data":1}'))
    assert len(transport.writes) == 1
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 10" in head
    assert body == b'{"data":1}'


async def test_a_head_whose_body_waits_goes_out_on_the_next_turn_in_order() -> None:
    # a streamed response that awaits before each chunk: the head is not held back longer
    # than one turn of the loop, and the bytes keep uvicorn's order
    transport = await serve_one(responder(b"ab", b"cd", b"ef", pause=True))
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK")
    assert transport.writes[0].endswith(b"\r\n\r\n")
    assert b"".join(transport.writes).endswith(b"\r\n\r\nabcdef")


async def test_the_held_head_is_written_before_the_connection_closes() -> None:
    loop = asyncio.get_running_loop()
    raw = RecordingTransport()
    held = HeldHeadTransport(raw, loop)
    held.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    assert raw.writes == []
    held.close()
    assert raw.writes == [b"HTTP/1.1 400 Bad Request\r\n\r\n"] and raw.closed
    await asyncio.sleep(0)  # the cancelled flush writes nothing more
    assert len(raw.writes) == 1


async def test_nothing_is_written_to_a_closed_connection() -> None:
    loop = asyncio.get_running_loop()
    raw = RecordingTransport()
    held = HeldHeadTransport(raw, loop)
    held.write(b"HTTP/1.1 200 OK\r\n\r\n")
    raw.closed = True  # the peer went away
    await asyncio.sleep(0)
    assert raw.writes == []


async def test_a_websocket_gets_the_connections_own_transport() -> None:
    upgrade = (
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        await receive()
        await send({"type": "websocket.close", "code": 1000})

    transport = await serve_one(app, upgrade)
    assert transport.protocol is not None  # upgraded
    assert transport.protocol.transport is transport


@pytest.mark.parametrize("environment", ["development", "production"])
def test_the_server_is_configured_with_the_one_write_protocol(environment: str) -> None:
    options = server_options(Settings(environment=environment, jwt_secret="x" * 40), 8123)
    assert options["http"] is OneWriteHttpToolsProtocol

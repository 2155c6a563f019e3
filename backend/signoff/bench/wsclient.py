"""A websocket client that costs the benchmark as little as possible.

The fan-out scenario opens thousands of sockets from client processes on the same 2 cores as
the server it measures. A full client (`websockets.connect`) spends tens of microseconds of
Python per received message (a reader task, a message queue, UTF-8 decoding, JSON parsing),
and with 40,000 messages a second the clients, not the server, set the latency. This one is an
`asyncio.Protocol`: the opening handshake is written by hand, a received frame is parsed for
its header only, and its payload is handed over as bytes; the caller looks only for what it
counts. It answers pings and nothing else. Both sides of the scenario (signoff and the plain
broadcast) use it, so the client's cost is the same on both.

Server frames are unmasked (RFC 6455 5.1); frames this client sends are masked with a random
key, as the RFC asks of clients.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    size = len(payload)
    if size < 126:
        header = bytes([0x80 | opcode, 0x80 | size])
    elif size < 1 << 16:
        header = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + size.to_bytes(8, "big")
    mask = os.urandom(4)
    key = int.from_bytes((mask * (size // 4 + 1))[:size], "big")
    masked = (int.from_bytes(payload, "big") ^ key).to_bytes(size, "big") if size else b""
    return header + mask + masked


class FrameReader:
    """Splits a server's byte stream into (opcode, payload) frames, wherever the chunks end.

    Fragmented messages are handed over frame by frame (the servers measured here do not
    fragment); a masked server frame is refused."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The frames completed by `data`."""
        buffer = self._buffer
        buffer += data
        frames = []
        start, end = 0, len(buffer)
        while end - start >= 2:
            first, second = buffer[start], buffer[start + 1]
            if second & 0x80:
                raise ValueError("a server frame must not be masked")
            size, offset = second & 0x7F, start + 2
            if size == 126:
                if end - offset < 2:
                    break
                size, offset = int.from_bytes(buffer[offset : offset + 2], "big"), offset + 2
            elif size == 127:
                if end - offset < 8:
                    break
                size, offset = int.from_bytes(buffer[offset : offset + 8], "big"), offset + 8
            if end - offset < size:
                break
            frames.append((first & 0x0F, bytes(buffer[offset : offset + size])))
            start = offset + size
        if start:
            del buffer[:start]
        return frames


Handler = Callable[[int, bytes, float], None]
"""Called with (opcode, payload, arrival time from `time.time()`) for every data frame."""


class RawWebSocket(asyncio.Protocol):
    """One client connection; `on_frame` sees every text or binary frame as it arrives."""

    def __init__(self, on_frame: Handler, clock: Callable[[], float]) -> None:
        self._on_frame = on_frame
        self._clock = clock
        self._reader = FrameReader()
        self._head = b""
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, only alike
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.opened.done():
            self._head += data
            head, sep, rest = self._head.partition(b"\r\n\r\n")
            if not sep:
                return
            status = head.split(b"\r\n", 1)[0]
            if status.split(b" ")[1:2] != [b"101"]:
                self.opened.set_exception(ConnectionError(status.decode(errors="replace")))
                self._close()
                return
            self.opened.set_result(None)
            data = rest
        now = self._clock()
        for opcode, payload in self._reader.feed(data):
            if opcode in (TEXT, BINARY):
                self._on_frame(opcode, payload, now)
            elif opcode == PING:
                self.send(PONG, payload)
            elif opcode == CLOSE:
                self.send(CLOSE, payload[:2])
                self._close()

    def send(self, opcode: int, payload: bytes) -> None:
        """Send one frame (nothing once the connection is closed)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame(opcode, payload))

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)


async def connect(
    url: str,
    on_frame: Handler,
    clock: Callable[[], float],
    *,
    subprotocol: str | None = None,
    within: float = 120.0,
) -> RawWebSocket:
    """Open `url` (ws://host:port/path) and complete the opening handshake within `within`
    seconds."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    _, protocol = await asyncio.wait_for(
        loop.create_connection(lambda: RawWebSocket(on_frame, clock), host, port), within
    )
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {parts.path or '/'} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocol:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    assert protocol.transport is not None
    protocol.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    try:
        await asyncio.wait_for(asyncio.shield(protocol.opened), within)
    except BaseException:
        protocol._close()
        raise
    return protocol
